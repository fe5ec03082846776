"""promptkit check / baseline against hostile and careless input: hand-edited baselines with huge numbers or
nulled outcomes, a baseline copied from another suite or blessed on a subset, metrics that give NaN or inf,
look-alike metric names and wrong types in thresholds. Each is exit 2 naming the file, never a traceback
and never a pass. Fake models only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from promptkit.errors import ConfigError
from promptkit.gate.baseline import load_baseline
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import toy_project, write_prompt, write_toy_prompt
from tests.test_gate_generation import gen_project

FLIP_ALL = 'Review: {{ text | replace("great", "awful") }}'


def _blessed(root: Path, n: int = 20, *args: str) -> Path:
    toy_project(root, n=n)
    result = run_cli_in_process(root, "baseline", "bless", "toy", "--no-store", *args)
    assert result.exit_code == 0, result.output
    return root / "evals" / "baselines" / "toy.json"


def _check(root: Path, *args: str) -> Any:
    return run_cli_in_process(root, "check", "--no-store", *args)


def _set_thresholds(root: Path, thresholds: dict[str, Any]) -> None:
    path = root / "evals" / "toy.yaml"
    suite = yaml.safe_load(path.read_text())
    suite["thresholds"] = thresholds
    path.write_text(yaml.safe_dump(suite, sort_keys=False))


@pytest.mark.parametrize(("edit", "said"), [
    (lambda t: t.replace('"tokens": 11', '"tokens": 1' + "0" * 400, 1), "tokens must be a number"),
    (lambda t: t.replace('"correct": 1', '"correct": 1' + "0" * 400, 1), "correct must be a number"),
    (lambda t: t.replace('"repeat": 1', '"repeat": ' + "9" * 5000), "digits"),
    (lambda t: t.replace('"cost": 0', '"scores": {"x": 1e308}, "cost": 0', 1), "outside"),
])
def test_huge_numbers_in_a_baseline_are_exit_2(tmp_path: Path, edit: Any, said: str) -> None:
    # used to be OverflowError / ValueError (exit 3), or a score whose sums overflow to NaN and pass
    path = _blessed(tmp_path)
    text = path.read_text()
    path.write_text(edit(text))
    assert path.read_text() != text
    with pytest.raises(ConfigError, match=said):
        load_baseline(path)
    result = _check(tmp_path)
    assert result.exit_code == 2 and "toy.json" in result.stdout and said in result.stdout, result.output


def test_a_baseline_blessed_on_a_subset_is_stale_not_a_partial_pass(tmp_path: Path) -> None:
    # blessed with --limit 4: the check compared 4 of 40 examples and passed a drop of 50 points
    _blessed(tmp_path, 40, "--limit", "4")
    write_toy_prompt(tmp_path, FLIP_ALL)
    result = _check(tmp_path)
    assert result.exit_code == 2, result.output
    assert "stale baseline: the baseline has no outcome for 36 of the 40 examples checked" in result.stdout
    assert _check(tmp_path, "--limit", "4").exit_code == 0  # the same subset still compares


def test_a_baseline_copied_from_another_prompt_is_stale(tmp_path: Path) -> None:
    # a bad prompt's baseline copied over the good one's: same model, dataset and settings, silently compared
    path = _blessed(tmp_path, 20)
    suite = yaml.safe_load((tmp_path / "evals" / "toy.yaml").read_text())
    suite["prompt"] = "bad"
    (tmp_path / "evals" / "bad.yaml").write_text(yaml.safe_dump(suite))
    spec = yaml.safe_load((tmp_path / "prompts" / "toy" / "prompt.yaml").read_text())
    spec["slots"]["task"] = FLIP_ALL + "\nSentiment:"
    write_prompt(tmp_path, "bad", spec)
    assert run_cli_in_process(tmp_path, "baseline", "bless", "bad", "--no-store").exit_code == 0
    shutil.copy(tmp_path / "evals" / "baselines" / "bad.json", path)
    write_toy_prompt(tmp_path, FLIP_ALL)  # the regression the copied baseline would hide
    result = _check(tmp_path, "toy")
    assert result.exit_code == 2, result.output
    assert "the baseline is of suite 'bad' (prompt 'bad'), not of suite 'toy'" in result.stdout


def test_a_baseline_with_its_outcomes_nulled_cannot_pass(tmp_path: Path) -> None:
    path = _blessed(tmp_path)
    data = json.loads(path.read_text())
    for outcome in data["outcomes"].values():
        outcome["correct"] = None
    path.write_text(json.dumps(data))
    write_toy_prompt(tmp_path, FLIP_ALL)
    result = _check(tmp_path)
    assert result.exit_code == 2, result.output
    assert "toy.json" in result.stdout and "no outcome ('correct')" in result.stdout


METRIC = """from pathlib import Path

from promptkit.metrics import MeanMetric


class Odd(MeanMetric):
    tasks = ('generation',)
    paired = 'scores'

    def scores(self, results):
        value = float(Path(__file__).with_name('odd.txt').read_text())
        return [value if i % 2 else 1.0 for i in range(len(results))]
"""


@pytest.mark.parametrize("value", ["nan", "inf", "1e308"])
def test_non_finite_metric_values_neither_pass_nor_write_an_unreadable_baseline(tmp_path: Path, value: str) -> None:
    # used to pass ("odd 1.0 -> nan, p=0") and to bless a baseline holding NaN that no check could read
    root = gen_project(tmp_path, 10, ["rouge_l", {"name": "odd", "class": "oddmetric:Odd"}])
    (root / "oddmetric.py").write_text(METRIC)
    (root / "odd.txt").write_text("1")
    assert run_cli_in_process(root, "baseline", "bless", "echo", "--no-store").exit_code == 0
    (root / "odd.txt").write_text(value)
    result = run_cli_in_process(root, "check", "--no-store", "--no-cache")
    assert result.exit_code == 2 and "echo.yaml" in result.stdout and "metric 'odd' gave" in result.stdout, result.output
    before = (root / "evals" / "baselines" / "echo.json").read_text()
    result = run_cli_in_process(root, "baseline", "bless", "echo", "--no-store")
    assert result.exit_code == 2 and "metric 'odd' gave" in result.stderr, result.output
    assert (root / "evals" / "baselines" / "echo.json").read_text() == before
    assert load_baseline(root / "evals" / "baselines" / "echo.json") is not None


@pytest.mark.parametrize("name", ["f1", "acuracy", "accuracy "])
def test_max_drop_naming_a_metric_the_suite_does_not_compute_is_exit_2(tmp_path: Path, name: str) -> None:
    # a look-alike name was ignored: its metric held to no drop, the one meant was never relaxed
    _blessed(tmp_path)
    _set_thresholds(tmp_path, {"max_drop": {name: 0.5}})
    result = _check(tmp_path)
    assert result.exit_code == 2, result.output
    assert "toy.yaml:" in result.stdout and f"thresholds.max_drop names {name!r}" in result.stdout


@pytest.mark.parametrize("thresholds", [{"max_drop": {"accuracy": True, "f1_macro": True}}, {"max_drop": "0.9"},
                                        {"min_accuracy": "0.9"}])
def test_thresholds_of_the_wrong_type_are_exit_2(tmp_path: Path, thresholds: dict[str, Any]) -> None:
    # `max_drop: {accuracy: yes}` was read as 1.0: any drop at all passed
    _blessed(tmp_path)
    _set_thresholds(tmp_path, thresholds)
    write_toy_prompt(tmp_path, FLIP_ALL)
    result = _check(tmp_path)
    assert result.exit_code == 2, result.output
    assert "toy.yaml:" in result.stderr and "valid number" in result.stderr


def test_a_baselines_folder_that_is_a_file_is_exit_2_not_no_baseline(tmp_path: Path) -> None:
    # used to read as "no baseline": the paired comparison was skipped and a regression passed
    path = _blessed(tmp_path)
    shutil.rmtree(path.parent)
    path.parent.write_text("not a folder\n")
    write_toy_prompt(tmp_path, FLIP_ALL)
    result = _check(tmp_path)
    assert result.exit_code == 2 and "baselines folder is not a folder" in result.stdout, result.output


def test_baseline_show_lists_every_suite_past_a_damaged_baseline(tmp_path: Path) -> None:
    path = _blessed(tmp_path)
    shutil.copy(tmp_path / "evals" / "toy.yaml", tmp_path / "evals" / "toy2.yaml")
    assert run_cli_in_process(tmp_path, "baseline", "bless", "toy", "--suite", "toy2", "--no-store").exit_code == 0
    path.write_text("{ damaged")
    result = run_cli_in_process(tmp_path, "baseline", "show")
    assert result.exit_code == 2, result.output
    assert "toy: BROKEN" in result.stdout and "toy2: toy@" in result.stdout and "toy.json" in result.output
