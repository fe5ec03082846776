"""promptkit optimize: verbalizers, calibration and few-shot rules in versions; a search that never
sees test rows; proposer rounds against a local double; budget stops and resume; the published
version is an ordinary version."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from promptkit.errors import ConfigError
from promptkit.library.spec import PromptSpec
from promptkit.project import Project
from promptkit.providers import Provider
from promptkit.results import Request, Response
from tests.helpers.cli import run_cli
from tests.helpers.projects import copy_project, write_jsonl

GOOD = ["great", "love", "excellent", "best", "wonderful", "superb"]
BAD = ["awful", "broken", "worst", "terrible", "rude", "waste"]
THINGS = ["phone", "pizza", "service", "battery", "screen", "waiter", "case", "delivery", "room", "app"]


def rows(n: int, offset: int = 0) -> list[dict[str, str]]:
    out = []
    for i in range(offset, offset + n):
        thing = THINGS[i % len(THINGS)]
        if i % 2:
            out.append({"text": f"The {thing} was {GOOD[i % len(GOOD)]}, row {i}.", "label": "positive"})
        else:
            out.append({"text": f"The {thing} was {BAD[i % len(BAD)]}, row {i}.", "label": "negative"})
    return out


class LeaningProvider(Provider):
    """Scores 'positive' by good words, but leans to 'positive' by 2 nats (a bias calibration removes);
    an instruction mentioning 'carefully' makes it read the words twice as hard. Records every prompt."""

    name = "fake"
    supports_scoring = True

    def __init__(self, model: str = "leaning", **options: Any):
        super().__init__(model, **options)
        self.prompts: list[str] = []

    def _complete(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            prompt = r.text or "\n".join(m["content"] for m in r.messages or [])
            self.prompts.append(prompt)
            last = prompt.lower().rsplit("\n\n", 1)[-1]
            weight = 2.0 if "carefully" in prompt else 1.0
            good = sum(w in last for w in GOOD) - sum(w in last for w in BAD)
            scores = {}
            for text in r.labels or []:
                positive = text.strip().lower() in ("positive", "good", "great")
                scores[text] = (weight * good + 2.0) if positive else -weight * good * 0.2
            best = max(scores, key=scores.__getitem__)
            out.append(Response(output=best, scores=scores, tokens_in=len(prompt) // 4, tokens_out=1))
        return out


def split_project(tmp_path: Path) -> Path:
    copy_project(tmp_path)
    data = [{**r, "split": "train"} for r in rows(120)] + [{**r, "split": "test"} for r in rows(60, offset=500)]
    write_jsonl(tmp_path / "evals" / "data" / "sentiment.jsonl", data)
    return tmp_path


# -- the version format --------------------------------------------------------------------------------

def test_labels_mapping_is_labels_plus_verbalizers_and_calibration_decides() -> None:
    spec = PromptSpec.model_validate({"slots": {"task": "{{ text }}"}, "labels": {"positive": "great", "negative": "terrible"},
                                      "calibration": {"positive": -1.5}})
    assert spec.labels == ["positive", "negative"] and spec.answers == ["great", "terrible"]
    prediction, named = spec.decide({"great": -1.0, "terrible": -2.0})
    assert named == {"positive": -1.0, "negative": -2.0}
    assert prediction == "negative"  # -1.0 - 1.5 < -2.0
    for bad in ({"labels": ["a", "b"], "calibration": {"c": 1.0}}, {"labels": {"a": "x", "b": "x"}},
                {"verbalizers": {"a": "x"}}):
        with pytest.raises(ValueError):
            PromptSpec.model_validate({"slots": {"task": "{{ text }}"}, **bad})


def test_verbalizers_score_answer_texts_and_report_label_names(tmp_path: Path) -> None:
    from promptkit.evaluate import build_request, plan_eval, score_example

    root = split_project(tmp_path)
    prompt = root / "prompts" / "sentiment" / "prompt.yaml"
    prompt.write_text(prompt.read_text().replace("labels: [negative, positive]",
                                                 "labels: {negative: terrible, positive: great}\n"
                                                 "calibration: {positive: -0.5}\n"
                                                 "examples: [{text: Nice., output: positive}]"))
    project = Project(root)
    version = project.library.resolve("sentiment@working")
    plan = plan_eval(project, version, model="fake:x")
    request = build_request(plan, plan.examples[0])
    assert request.labels == ["terrible", "great"]
    assert "Review: Nice.\nSentiment: great" in (request.text or "")  # few-shot answers use the verbalizer
    result = score_example(plan, plan.examples[0], Response(output="great", scores={"terrible": -1.0, "great": -0.7}))
    assert result.prediction == "negative" and result.scores == {"negative": -1.0, "positive": -0.7}


def test_diff_shows_verbalizers_calibration_and_selection_rule(tmp_path: Path) -> None:
    from promptkit.library.diff import diff_versions
    from promptkit.optimize.run import as_version

    project = Project(split_project(tmp_path))
    base = project.library.resolve("sentiment@v1")
    spec = PromptSpec.model_validate({**base.spec.model_dump(exclude_defaults=True),
                                      "verbalizers": {"positive": "good", "negative": "bad"},
                                      "calibration": {"negative": 0.0, "positive": -1.2},
                                      "fewshot": {"k": 2, "pool": [{"text": "ok", "output": "positive"}]}})
    parts = {d.part: d for d in diff_versions(base, as_version(base, spec))}
    for part in ("verbalizers", "calibration", "fewshot"):
        assert parts[part].status == "added" and any("+" in line for line in parts[part].lines)
    assert parts["task"].status == "unchanged"


def test_fitted_bias_undoes_a_lean() -> None:
    from promptkit.optimize.calibrate import cross_fitted_accuracy, fit_bias

    class R:
        def __init__(self, pos: float, expected: str):
            self.scores, self.expected = {"negative": 0.0, "positive": pos}, expected

    # positive always leads by 2, but by more when the row is positive
    results = [R(3.0, "positive") if i % 2 else R(1.0, "negative") for i in range(40)]
    bias = fit_bias(results, ["negative", "positive"])
    assert bias["negative"] == 0.0 and -3.0 < bias["positive"] < -1.0
    assert cross_fitted_accuracy(results, ["negative", "positive"]) == (40, 40)


# -- the search ------------------------------------------------------------------------------------------

def _optimize(root: Path, provider: Provider, **kw: Any) -> Any:
    from promptkit.optimize import OptimizeOptions, optimize

    project = Project(root)
    version = project.library.resolve("sentiment@v1")
    options = OptimizeOptions(**{"rounds": 0, "fewshot_k": (), "validation_size": 60, "first_rung": 20,
                                 **kw.pop("options", {})})
    return optimize(project, version, project.suite("sentiment"), provider, options, **kw)


@pytest.mark.parametrize("source", ["split field", "eval-data"])
def test_search_never_sees_a_test_row(tmp_path: Path, source: str) -> None:
    root = split_project(tmp_path)
    kw: dict[str, Any] = {}
    if source == "split field":
        tests = [r["text"] for r in rows(60, offset=500)]
    else:
        kw["train_data"] = write_jsonl(tmp_path / "train.jsonl", rows(100, offset=1000))
        kw["eval_data"] = write_jsonl(tmp_path / "test.jsonl", rows(40, offset=2000))
        tests = [r["text"] for r in rows(40, offset=2000)]
    provider = LeaningProvider()
    seen_in_search: list[str] = []

    def event(kind: str, info: dict[str, Any]) -> None:
        if kind == "phase" and info["name"] == "test":
            seen_in_search.extend(provider.prompts)

    result = _optimize(root, provider, options={"fewshot_k": (2,), "embeddings": False}, event=event, **kw)
    assert result.test is not None, result.verdict  # the search reached the test step
    assert seen_in_search and not [t for t in tests if any(t in p for p in seen_in_search)]
    validation = set(result.state.settings["validation_ids"])
    assert not validation & {e.id for e in _test_examples(root, kw)}


def _test_examples(root: Path, kw: dict[str, Any]) -> list[Any]:
    from promptkit.evaluate import plan_eval

    project = Project(root)
    return plan_eval(project, project.library.resolve("sentiment@v1"), data=kw.get("eval_data")).examples


def test_overlap_with_test_rows_is_refused(tmp_path: Path) -> None:
    root = split_project(tmp_path)
    copied = "  ".join(rows(1, offset=2000)[0]["text"].upper().split())  # other case and spacing: still the row
    train = write_jsonl(tmp_path / "train.jsonl", [*rows(40), {"text": copied, "label": "negative"}])
    test = write_jsonl(tmp_path / "test.jsonl", rows(20, offset=2000))
    with pytest.raises(ConfigError, match="also appear in the test rows"):
        _optimize(root, LeaningProvider(), train_data=train, eval_data=test)
    proc = run_cli("optimize", "sentiment", "--model", "fake:x", "--train-data", str(train), "--eval-data", str(test),
                   cwd=root)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "train.jsonl" in proc.stderr


def test_calibration_wins_and_is_published_with_its_record(tmp_path: Path) -> None:
    root = split_project(tmp_path)
    result = _optimize(root, LeaningProvider())
    assert result.published is not None, result.verdict
    spec = result.published.spec
    assert spec.calibration and spec.calibration["positive"] < 0
    assert result.test.winner > result.test.current and result.test.p_value < 0.05
    record = json.loads(json.dumps(__import__("yaml").safe_load(result.published.source.read_text())["optimized"]))
    assert record["from"] == "sentiment@v1" and record["data_hash"] and record["candidates_tried"] >= 3
    assert all("low" in row and "high" in row for row in record["validation"])


def test_nothing_better_publishes_nothing(tmp_path: Path) -> None:
    class Perfect(LeaningProvider):
        def _complete(self, requests: Sequence[Request]) -> list[Response]:
            out = []
            for r in requests:
                last = (r.text or r.messages[-1]["content"]).lower().rsplit("\n\n", 1)[-1]  # type: ignore[index]
                positive = any(w in last for w in GOOD)
                scores = {t: float(positive == (i == 1)) for i, t in enumerate(r.labels or [])}
                out.append(Response(output=max(scores, key=scores.__getitem__), scores=scores))
            return out

    root = split_project(tmp_path)
    before = sorted((root / "prompts" / "sentiment" / "versions").iterdir())
    result = _optimize(root, Perfect())
    assert result.published is None and "nothing beat" in result.verdict
    assert sorted((root / "prompts" / "sentiment" / "versions").iterdir()) == before


def test_budget_stop_then_resume(tmp_path: Path) -> None:
    from promptkit.cache import ResponseCache

    root = split_project(tmp_path)
    cache = ResponseCache(root / ".promptkit" / "cache.db")
    first = _optimize(root, LeaningProvider(), options={"max_evals": 50}, cache=cache)
    assert first.state.status == "stopped" and first.state.stopped_by == "max-evals 50"
    assert first.state.evals <= 50
    path = first.state.path
    assert json.loads(path.read_text())["status"] == "stopped"
    provider = LeaningProvider()
    second = _optimize(root, provider, resume=True, cache=cache)
    assert second.state.status == "finished" and second.state.evals > first.state.evals
    done_before = {c["key"]: c["scores"] for c in json.loads(path.read_text())["candidates"]}
    assert len(done_before) >= len(first.state.candidates)
    # what the first session scored came from the cache: the second asked the model only for the rest
    asked = second.state.evals - first.state.evals
    assert asked <= len(provider.prompts) <= asked + 2 * 60  # (+ test rows the first session's test did not cover)
    with pytest.raises(ConfigError, match="no optimize run to resume"):
        _optimize(root, LeaningProvider(), resume=True, options={"seed": 7})


# -- the command line, the proposer double, the published version ------------------------------------------

def test_proposer_rounds_end_to_end_over_http(tmp_path: Path) -> None:
    from tests.helpers.proposer_server import ProposerServer

    root = split_project(tmp_path)
    out = tmp_path / "out.json"
    instructions = tmp_path / "instructions.txt"
    instructions.write_text("# one per paragraph\nClassify the review.\n\nIs the customer happy?\n")
    with ProposerServer() as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "test-key"}
        proc = run_cli("optimize", "sentiment@v1", "--model", "openai:fixed", "--proposer", "openai:proposer",
                       "--rounds", "2", "--fewshot-k", "0", "--validation-size", "40", "--instructions",
                       str(instructions), "--output", str(out), cwd=root, env=env)
        assert proc.returncode == 0, proc.stderr
        asked = [p for p in server.prompts if "You improve prompts" in p]  # (chat-style candidates generate too)
        assert len(asked) == 2 and "Sentiment:" in asked[0] and "expected" in asked[0]
    report = json.loads(out.read_text())
    origins = {row["origin"].split(" + ")[0] for row in report["leaderboard"]}
    assert {"proposer round 1 #1", "proposer round 2 #1", "instruction from file #1"} <= origins
    assert [c["round"] for c in report["proposer_calls"]] == [1, 2]
    assert all(c["proposed"] for c in report["proposer_calls"])
    assert "validation leaderboard" in proc.stdout


def test_optimized_version_is_an_ordinary_version(tmp_path: Path) -> None:
    from promptkit.optimize.publish import publish
    from promptkit.tune.trainset import build_trainset

    root = split_project(tmp_path)
    project = Project(root)
    base = project.library.resolve("sentiment@v1")
    pool = [{"text": r["text"], "output": r["label"]} for r in rows(6, offset=3000)]
    spec = PromptSpec.model_validate({**base.spec.model_dump(exclude_defaults=True),
                                      "verbalizers": {"positive": "good", "negative": "bad"},
                                      "calibration": {"negative": 0.0, "positive": -0.4},
                                      "examples": [pool[0]]})
    version = publish(base, spec, {"winner": "test"})
    ref = version.ref
    env = {"PROMPTKIT_CACHE_DIR": os.environ["PROMPTKIT_CACHE_DIR"]}
    show = run_cli("prompt", "show", ref, "--model", "fake:x", cwd=root, env=env)
    assert show.returncode == 0 and "good" in show.stdout, show.stderr
    diff = run_cli("prompt", "diff", "sentiment@v1", ref, cwd=root, env=env)
    assert diff.returncode == 0 and "verbalizers" in diff.stdout and "calibration" in diff.stdout
    evaluated = run_cli("eval", ref, "--model", "fake:x", "--output", str(tmp_path / "r.json"), cwd=root, env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    predictions = {r["prediction"] for r in json.loads((tmp_path / "r.json").read_text())["examples"]}
    assert predictions <= {"positive", "negative"}
    suite = root / "evals" / "sentiment.yaml"
    suite.write_text(suite.read_text().replace("model: smollm2", "model: fake:x"))
    bless = run_cli("baseline", "bless", ref, cwd=root, env=env)
    assert bless.returncode == 0, bless.stderr
    check = run_cli("check", cwd=root, env=env)
    assert "sentiment" in check.stdout + check.stderr and check.returncode in (0, 1)
    trainset = build_trainset(project, project.library.resolve(ref), project.suite("sentiment"))
    shot = f"Review: {pool[0]['text']}\nSentiment: bad\n\n"  # the few-shot answer in its verbalizer
    assert trainset.rows and all((row.request.text or "").startswith(shot) for row in trainset.rows)


@pytest.mark.model
def test_similar_fewshot_rule_renders_nearest_examples_with_minilm(tmp_path: Path) -> None:
    from promptkit.optimize.run import as_version

    project = Project(split_project(tmp_path))
    base = project.library.resolve("sentiment@v1")
    pool = [{"text": "The pizza was cold and soggy.", "output": "negative"},
            {"text": "My phone battery died fast.", "output": "negative"},
            {"text": "Lovely pizza, crisp crust.", "output": "positive"}]
    spec = PromptSpec.model_validate({**base.spec.model_dump(exclude_defaults=True),
                                      "fewshot": {"select": "similar", "k": 2, "pool": pool}})
    rendered = as_version(base, spec).template.render({"text": "Great pizza with a crisp crust."})
    text = rendered.text or ""
    assert "Lovely pizza" in text and "cold and soggy" in text and "battery" not in text
    assert text.index("cold and soggy") < text.index("Lovely pizza")  # nearest last, next to the input


@pytest.mark.model
def test_optimize_with_the_embedded_model(tmp_path: Path) -> None:
    """The real model end to end on the repo's small split dataset (20 train rows, 60 test rows)."""
    copy_project(tmp_path)
    out = tmp_path / "out.json"
    proc = run_cli("optimize", "sentiment@v1", "--fewshot-k", "0", "--rounds", "0", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert len(report["leaderboard"]) >= 4 and report["estimate"]["validation_rows"] == 13
    assert report["verdict"]
