"""Plateau detection from the run store, the paired McNemar test, and `tune` refusing early."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptkit.data import file_hash
from promptkit.models import resolve_model
from promptkit.project import Project
from promptkit.results import ExampleResult, MetricValue
from promptkit.runs import RunStore
from tests.helpers.cli import run_cli
from tests.helpers.projects import tune_project


def _record(project: Project, version: int, correct: list[bool], suite: str = "review") -> str:
    store = RunStore(project.runs_path)
    path = project.suite(suite).dataset_path()
    run_id = store.create_run({"prompt": f"review@v{version}", "prompt_hash": f"h{version}", "suite": suite,
                               "split": "test", "dataset_hash": file_hash(path), "examples": len(correct),
                               "model": "smollm2", "provider": "hf", "base_model": resolve_model("smollm2").model})
    store.add_results(run_id, [ExampleResult(id=f"e{i}", index=i, input={}, expected="positive", output="",
                                             prediction=None, correct=ok) for i, ok in enumerate(correct)])
    store.finish_run(run_id, [MetricValue("accuracy", sum(correct) / len(correct))])
    store.close()
    return run_id


def test_mcnemar_exact() -> None:
    from promptkit.stats import mcnemar
    from promptkit.stats import mcnemar_two_sided as mcnemar_exact

    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert abs(mcnemar_exact(0, 10) - 2 * 0.5**10) < 1e-12
    assert mcnemar_exact(10, 60) < 1e-8
    result = mcnemar([{"id": "a", "correct": True}, {"id": "b", "correct": False}],
                     [{"id": "a", "correct": False}, {"id": "b", "correct": True}, {"id": "c", "correct": True}])
    assert (result.n, result.a_only, result.b_only) == (2, 1, 1)


def test_plateau_rules(tmp_path: Path) -> None:
    from promptkit.tune.plateau import plateau

    project = Project(tune_project(tmp_path))
    suite = project.suite("review")
    assert not plateau(project, "review", suite).plateaued  # no history
    _record(project, 1, [True] * 50 + [False] * 50)
    _record(project, 2, [True] * 80 + [False] * 20)
    verdict = plateau(project, "review", suite)
    assert not verdict.plateaued and "needs 4" in verdict.reason
    _record(project, 3, [True] * 80 + [False] * 20)
    _record(project, 4, [True] * 80 + [False] * 20)
    # v2..v4 vs v1: a big, significant gain -> still improving
    assert not plateau(project, "review", suite).plateaued
    _record(project, 5, [True] * 81 + [False] * 19)
    verdict = plateau(project, "review", suite)  # v3..v5 vs best earlier (v2): +1 point, margin 1 point
    assert verdict.gain is not None and abs(verdict.gain - 0.01) < 1e-9
    verdict = plateau(project, "review", suite, margin=0.02)
    assert verdict.plateaued and "margin" in verdict.reason
    _record(project, 6, [True] * 84 + [False] * 16)  # +4 points but not significant on 100 pairs
    verdict = plateau(project, "review", suite)
    assert verdict.plateaued and "not significantly" in verdict.reason and verdict.test is not None
    assert [p.label for p in verdict.points] == ["v1", "v2", "v3", "v4", "v5", "v6"]


def test_tune_refuses_when_not_plateaued(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    result = run_cli("tune", "review", "--backend", "lora", cwd=root)
    assert result.returncode == 1, result.stderr
    assert "has not plateaued" in result.stderr and "--force" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.model  # the lora estimate tokenizes with the embedded model
def test_status_shows_chart_and_estimates(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    project = Project(root)
    for v, n in ((1, 70), (2, 80), (3, 80), (4, 80), (5, 80)):
        _record(project, v, [True] * n + [False] * (100 - n))
    result = run_cli("status", "review", "--window", "3", cwd=root, env={"COLUMNS": "160"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "v1" in out and "v5" in out and "█" in out and "80.0%" in out
    assert "plateaued" in out and "escalate" in out
    assert "lora" in out and "openai" in out and "16" in out and "min" in out and "$" in out


@pytest.mark.parametrize("window", [1, 2])
def test_window_is_configurable(tmp_path: Path, window: int) -> None:
    from promptkit.tune.plateau import plateau

    project = Project(tune_project(tmp_path))
    for v in (1, 2, 3):
        _record(project, v, [True] * 70 + [False] * 30)
    assert plateau(project, "review", project.suite("review"), window=window).plateaued


def test_status_chart_without_estimates(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    project = Project(root)
    for v, n in ((1, 60), (2, 75)):
        _record(project, v, [True] * n + [False] * (100 - n))
    result = run_cli("status", "review", cwd=root, env={"COLUMNS": "160"})
    assert result.returncode == 0, result.stderr
    assert "v1" in result.stdout and "75.0%" in result.stdout and "not plateaued" in result.stdout
    assert "tuning estimates" not in result.stdout
