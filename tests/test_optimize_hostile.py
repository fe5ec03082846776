"""promptkit optimize against hostile and careless input: non-finite and out-of-range flags, look-alike
labels, one-label training data, a model that fails, damaged state files, a concurrent publisher, and
text that YAML would not give back as written."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from promptkit.config import dump_yaml
from promptkit.errors import ConfigError
from promptkit.evaluate import RunFailed
from promptkit.library.spec import PromptSpec
from promptkit.library.store import PromptFolder
from promptkit.project import Project
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import write_jsonl
from tests.test_optimize import LeaningProvider, _optimize, rows, split_project


def _cli(root: Path, *args: str) -> Any:
    return run_cli_in_process(root, "optimize", "sentiment@v1", "--model", "fake:x", "--rounds", "0", *args)


# -- flags -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [("--max-cost", "nan"), ("--max-cost", "inf"), ("--fewshot-k", "33"),
                                   ("--fewshot-k", "4,-2"), ("--label", "Production"), ("--label", "abc123")])
def test_bad_flags_are_refused_before_anything_runs(tmp_path: Path, flags: tuple[str, str]) -> None:
    root = split_project(tmp_path)
    result = _cli(root, "--fewshot-k", "0", *flags, "--dry-run")
    assert result.exit_code == 2, result.output
    assert flags[0] in result.stderr or "label" in result.stderr
    assert not (root / ".promptkit" / "optimize").exists()


def test_a_valid_label_that_starts_like_a_version_is_accepted(tmp_path: Path) -> None:
    result = _cli(split_project(tmp_path), "--fewshot-k", "0", "--label", "v1-stable", "--dry-run")
    assert result.exit_code == 0, result.stderr


def test_instruction_with_a_jinja_comment_is_refused(tmp_path: Path) -> None:
    from promptkit.cli.optimize import read_instructions

    path = tmp_path / "ideas.txt"
    path.write_text("Classify the review.\n\nBe brief {# and never say why #} please.\n")
    with pytest.raises(ConfigError, match="instruction 2 contains template syntax"):
        read_instructions(path)


# -- data and model ----------------------------------------------------------------------------------------

def test_one_label_training_data_is_refused(tmp_path: Path) -> None:
    root = split_project(tmp_path)
    train = write_jsonl(tmp_path / "train.jsonl", [r for r in rows(120, offset=1000) if r["label"] == "positive"])
    test = write_jsonl(tmp_path / "test.jsonl", rows(40, offset=2000))
    # before: a bias that always answers 'positive' scored 100% on validation and was published
    with pytest.raises(ConfigError, match="at least two labels") as caught:
        _optimize(root, LeaningProvider(), train_data=train, eval_data=test)
    assert caught.value.where == str(train)
    assert sorted(p.name for p in (root / "prompts" / "sentiment" / "versions").iterdir()) == \
        ["labels.yaml", "v1.yaml", "v2.yaml"]


def test_a_model_that_fails_every_call_is_one_error(tmp_path: Path) -> None:
    root = split_project(tmp_path)
    suite = (root / "evals" / "sentiment.yaml").read_text()
    (root / "evals" / "failing.yaml").write_text(suite.replace("provider_options: {forward_batch: 64}",
                                                               "provider_options: {fail_every: 1}"))
    result = _cli(root, "--suite", "failing", "--fewshot-k", "0", "--validation-size", "40")
    assert result.exit_code == RunFailed.exit_code, result.output  # before: exit 3, TypeError formatting max-cost None
    assert "failed" in result.stderr and "injected failure" in result.stderr
    assert "internal error" not in result.stderr


# -- the state file read back by --resume -----------------------------------------------------------------

def _damage(kind: str, data: dict[str, Any]) -> Any:
    base = data["candidates"][0]
    if kind == "list":
        return []
    if kind == "null":
        return None
    if kind == "evals":
        return {**data, "evals": "many"}
    if kind == "cost":
        return {**data, "cost": float("nan")}
    if kind == "status":
        return {**data, "status": "done?"}
    if kind == "bias":
        return {**data, "candidates": [{**base, "bias": {"Positive": 1.0}}, *data["candidates"][1:]]}
    if kind == "scores":
        return {**data, "candidates": [{**base, "scores": {"20": ["a", 20]}}, *data["candidates"][1:]]}
    if kind == "key":
        return {**data, "candidates": [{**base, "key": "0" * 12}, *data["candidates"][1:]]}
    if kind == "settings":
        return {**data, "settings": []}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["list", "null", "evals", "cost", "status", "bias", "scores", "key", "settings"])
def test_damaged_state_file_is_one_error_on_resume(tmp_path: Path, kind: str) -> None:
    root = split_project(tmp_path)
    first = _optimize(root, LeaningProvider(), options={"max_evals": 50})
    assert first.state.status == "stopped"
    path = first.state.path
    path.write_text(json.dumps(_damage(kind, json.loads(path.read_text()))))
    with pytest.raises(ConfigError, match="cannot resume from the optimize state") as caught:
        _optimize(root, LeaningProvider(), resume=True)
    assert caught.value.where == str(path)


def test_state_without_the_current_version_is_one_error(tmp_path: Path) -> None:
    root = split_project(tmp_path)
    first = _optimize(root, LeaningProvider(), options={"max_evals": 50})
    path = first.state.path
    data = json.loads(path.read_text())
    base = data["candidates"][0]["key"]
    data["candidates"], data["status"] = data["candidates"][1:], "searched"
    path.write_text(json.dumps(data))
    assert all(c["key"] != base for c in data["candidates"]) and data["candidates"]
    with pytest.raises(ConfigError, match="holds no score of sentiment@v1"):  # before: KeyError, exit 3
        _optimize(root, LeaningProvider(), resume=True)


# -- publishing --------------------------------------------------------------------------------------------

def _spec(base: Any, text: str) -> PromptSpec:
    return PromptSpec.model_validate({**base.spec.model_dump(exclude_defaults=True),
                                      "examples": [{"text": text, "output": "positive"}]})


def test_publish_and_a_concurrent_new_version_get_their_own_numbers(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import promptkit.library.store as store
    import promptkit.optimize.publish as publishing

    root = split_project(tmp_path)
    base = Project(root).library.resolve("sentiment@v1")
    folder = PromptFolder(base.folder, base.name)
    ours = _spec(base, "Ours: great.")
    working = folder.working_file.read_text()
    folder.working_file.write_text(working.replace("labels:", "examples: [{text: 'Theirs.', output: positive}]\nlabels:"))
    numbered, go = threading.Event(), threading.Event()

    def slow_dump(data: Any) -> str:  # optimize has picked its number and is about to write
        numbered.set()
        go.wait(10)
        return dump_yaml(data)

    monkeypatch.setattr(store, "dump_yaml", slow_dump)
    published: list[Any] = []
    optimize = threading.Thread(target=lambda: published.append(publishing.publish(base, ours, {"winner": "ours"})))
    optimize.start()
    assert numbered.wait(10)
    new_version = threading.Thread(target=lambda: published.append(folder.publish("theirs")[0]))
    new_version.start()  # `promptkit prompt new-version` in another process, at the same moment
    time.sleep(0.5)
    go.set()
    optimize.join(30)
    new_version.join(30)
    assert len({v.number for v in published}) == 2  # before: both took v3, optimize's write replaced the other
    hashes = {v.hash for v in folder.versions()}
    assert {v.hash for v in published} <= hashes and ours.content_hash() in hashes


@pytest.mark.parametrize("text", ["It was great\x85really", "ok\x85", "a\nb\x85c"])
def test_published_version_reads_back_text_with_a_next_line_character(tmp_path: Path, text: str) -> None:
    """NEL (U+0085), as in cp1252 text read as Latin-1: PyYAML wrote it raw and read it back as a space,
    so the published version's hash no longer matched and every command refused the prompt."""
    from promptkit.optimize.publish import publish

    project = Project(split_project(tmp_path))
    base = project.library.resolve("sentiment@v1")
    spec = _spec(base, text)
    version = publish(base, spec, {"winner": text})
    assert version.spec.examples[0]["text"] == text
    assert Project(project.root).library.resolve(version.ref).hash == spec.content_hash()


def test_a_second_optimize_with_the_same_settings_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """Both would write one state file (the last writer's), and a fresh run would wipe the other's."""
    from promptkit.fileio import file_lock

    root = split_project(tmp_path)
    assert _cli(root, "--fewshot-k", "0", "--dry-run").exit_code == 0
    (lock,) = (root / ".promptkit" / "optimize").glob("*.lock")
    with file_lock(lock, "the test's hold"):  # another process's run, as far as flock is concerned
        refused = _cli(root, "--fewshot-k", "0", "--dry-run")
    assert refused.exit_code == 2 and "another `promptkit optimize` with these settings is running" in refused.stderr
    assert _cli(root, "--fewshot-k", "0", "--dry-run").exit_code == 0


@pytest.mark.parametrize("target", ["dataset", "train", "suite"])
def test_output_that_names_an_input_is_refused_before_the_search(tmp_path: Path, target: str) -> None:
    """`--output` named the training data (or the suite's dataset, or the suite file) and the search's
    JSON replaced it once the search was done."""
    root = split_project(tmp_path)
    dataset = root / "evals" / "data" / "sentiment.jsonl"
    train = root / "train.jsonl"
    write_jsonl(train, rows(40))
    output = {"dataset": dataset, "train": train, "suite": root / "evals" / "sentiment.yaml"}[target]
    before = output.read_bytes()
    link = root / "report.json"
    link.symlink_to(output)  # by another name as well
    for name in (output, link):
        result = _cli(root, "--fewshot-k", "0", "--train-data", str(train), "--output", str(name))
        assert result.exit_code == 2, result.output
        assert "--output names the" in result.stderr
    assert output.read_bytes() == before
