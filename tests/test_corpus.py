"""Malformed inputs (tests/corpus/cases.yaml) through the real CLI: exit 2, one line naming
the file and place, never a traceback. All cases run once, in parallel subprocesses."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.cli import run_cli_in_process
from tests.helpers.error_corpus import CaseResult, load_cases, run_corpus

CASES = load_cases()


@pytest.fixture(scope="module")
def corpus_results() -> dict[str, CaseResult]:
    return run_corpus(CASES)


def _param(case: dict[str, Any]) -> Any:
    marks = [pytest.mark.xfail(reason=case["xfail"], strict=False)] if case.get("xfail") else []
    return pytest.param(case["id"], id=case["id"], marks=marks)


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case_id", [_param(c) for c in CASES])
def test_case(case_id: str, corpus_results: dict[str, CaseResult]) -> None:
    result = corpus_results[case_id]
    assert result.ok, f"{case_id}: {'; '.join(result.problems)}\nstderr: {result.stderr[-1500:]}"
    assert result.seconds < 30, f"{case_id} took {result.seconds:.1f}s"


def test_success_paths_keep_their_exit_codes() -> None:
    """The one-line usage-error handling leaves --help, --version and normal runs alone."""
    assert run_cli_in_process(None, "--help").exit_code == 0
    assert run_cli_in_process(None, "--version").exit_code == 0
    assert run_cli_in_process(None, "eval", "--help").exit_code == 0
    result = run_cli_in_process(None, "eval", "--nope")
    assert result.exit_code == 2 and "Traceback" not in result.output
