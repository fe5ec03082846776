"""Issue 11/17 items of the gate's statistics: BLEU on short answers, latency as measured, the
check's output (points, deduplicated examples, F1's flipped list) and its use of the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptkit.metrics.text import Bleu
from promptkit.metrics.usage import Latency
from promptkit.results import ExampleResult
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import toy_project, write_toy_prompt


def result(output: str, expected: str, i: int = 0, latency: float = 0.0, cached: bool = False) -> ExampleResult:
    return ExampleResult(id=str(i), index=i, input={"text": "q"}, expected=expected, output=output, prediction=output,
                         correct=output == expected, latency=latency, cached=cached)


# -- BLEU -------------------------------------------------------------------------------------------

def test_bleu_on_short_answers_is_not_a_confident_zero() -> None:
    answers = ["Paris", "Rome", "Madrid", "Berlin", "Oslo"]
    rows = [result(a if i < 4 else "Lisbon", a, i) for i, a in enumerate(answers)]  # 80% exact match
    [bleu] = Bleu().compute(rows, None)
    assert bleu.per_example == [1.0, 1.0, 1.0, 1.0, 0.0]
    # one-token answers: corpus BLEU on unigrams (effective order), the precision 4/5
    assert bleu.value == pytest.approx(0.8)
    assert bleu.low is not None and bleu.high is not None and bleu.low < bleu.value <= bleu.high <= 1.0
    assert bleu.high > 0
    two_words = [result("New York", "New York", 0), result("Los Angeles", "Los Angeles", 1)]
    assert Bleu().compute(two_words, None)[0].value == pytest.approx(1.0)


# -- latency ----------------------------------------------------------------------------------------

def test_fully_cached_run_has_no_latency_not_zero() -> None:
    rows = [result("a", "a", i, latency=0.0, cached=True) for i in range(5)]
    assert Latency().compute(rows, None) == []


def test_cached_examples_are_left_out_of_latency() -> None:
    rows = [result("a", "a", i, latency=0.1 * (i + 1)) for i in range(4)] + [result("a", "a", 9, 0.0, cached=True)]
    values = {v.name: v for v in Latency().compute(rows, None)}
    assert values["latency_p50"].value == pytest.approx(0.25) and values["latency_p50"].n == 4
    assert values["latency_p50"].note == "per call, over 4 calls; 1 cached examples left out"


def test_local_batches_count_once_per_batch_with_an_honest_interval() -> None:
    # two batches of 8, each 1.6 s shared by its examples: two timings, not 16
    rows = [result("a", "a", i, latency=0.2 if i < 8 else 0.3) for i in range(16)]
    values = {v.name: v for v in Latency().compute(rows, None)}
    p95 = values["latency_p95"]
    assert p95.n == 2 and p95.note is not None and p95.note.startswith("per batch, amortised per example")
    assert p95.value == pytest.approx(0.295)
    one_batch = {v.name: v for v in Latency().compute(rows[:8], None)}
    assert one_batch["latency_p95"].low is None  # one timing: no interval claimed


def test_check_does_not_hold_an_unmeasured_latency_to_its_limit(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=20, thresholds={"max_latency_p95": 10.0})
    assert run_cli_in_process(root, "check", "--no-store").exit_code == 0  # first run: calls the model, latency measured
    second = run_cli_in_process(root, "check", "--no-store", "--json", str(root / "r.json"))
    assert second.exit_code == 0, second.output
    suite = json.loads((root / "r.json").read_text())["suites"][0]
    assert "20 of 20 examples from the response cache" in " ".join(suite["notes"])
    assert "latency_p95 not checked" in " ".join(suite["notes"])
    assert not any(c["metric"] == "latency_p95" for c in suite["checks"])
    measured = run_cli_in_process(root, "check", "--no-store", "--no-cache", "--json", str(root / "r.json"))
    checks = json.loads((root / "r.json").read_text())["suites"][0]["checks"]
    assert measured.exit_code == 0 and any(c["metric"] == "latency_p95" and c["passed"] for c in checks)


# -- check output -----------------------------------------------------------------------------------

FLIP_SIX = 'Review: {{ text | replace("great place #0.", "awful place #0.") | replace("great place #2.", "awful place #2.")' \
           ' | replace("great place #4.", "awful place #4.") | replace("great place #6.", "awful place #6.")' \
           ' | replace("great place #8.", "awful place #8.") | replace("great place #10.", "awful place #10.") }}'


def test_check_output_lists_f1_flips_once_in_points(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=60)
    assert run_cli_in_process(root, "baseline", "bless", "toy", "--no-store").exit_code == 0
    write_toy_prompt(root, FLIP_SIX)
    result = run_cli_in_process(root, "check", "--no-store", "--json", str(root / "r.json"), "--markdown", str(root / "c.md"))
    assert result.exit_code == 1, result.output
    assert "accuracy dropped 10.0 pt (100.0% -> 90.0%)" in result.output
    assert "dropped 10.0%" not in result.output
    checks = {c["metric"]: c for c in json.loads((root / "r.json").read_text())["suites"][0]["checks"]}
    assert not checks["f1_macro"]["passed"]
    assert [r["index"] for r in checks["f1_macro"]["flipped"]] == [0, 2, 4, 6, 8, 10]  # F1 lists its flips
    # each example printed once, with the metrics that fell
    assert result.output.count("flipped #4 ") == 1
    assert "accuracy right -> wrong; f1_macro right -> wrong" in result.output
    markdown = (root / "c.md").read_text()
    assert markdown.count("| 4 |") == 1 and "6 example(s) got worse (accuracy, f1_macro)" in markdown
    assert "Δ 95% [-16.7 pt, -3.3 pt]" in markdown and "raw 0.0156, Holm-adjusted" in markdown


def test_check_reads_the_cache_by_default(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=10)
    first = run_cli_in_process(root, "check", "--no-store")
    assert first.exit_code == 0 and "from the response cache" not in first.output
    second = run_cli_in_process(root, "check", "--no-store")
    assert "10 of 10 examples from the response cache" in second.output
    third = run_cli_in_process(root, "check", "--no-store", "--no-cache")
    assert "from the response cache" not in third.output


def _flip(indices: range) -> str:
    return "Review: {{ text" + "".join(f' | replace("great place #{i}.", "awful place #{i}.")' for i in indices) + " }}"


def test_cli_60_examples_90_to_80_fails_and_an_equal_copy_passes(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=60)
    write_toy_prompt(root, _flip(range(0, 12, 2)))  # 6 of 60 wrong: 90%
    assert run_cli_in_process(root, "baseline", "bless", "toy", "--no-store").exit_code == 0
    write_toy_prompt(root, _flip(range(0, 12, 2)) + " ")  # a whitespace edit: equal quality
    assert run_cli_in_process(root, "check", "--no-store").exit_code == 0
    write_toy_prompt(root, _flip(range(0, 24, 2)))  # 12 wrong: 80%
    result = run_cli_in_process(root, "check", "--no-store")
    assert result.exit_code == 1 and "accuracy dropped 10.0 pt (90.0% -> 80.0%)" in result.output


def test_terminal_and_html_say_latency_na_for_a_fully_cached_run(tmp_path: Path) -> None:
    from rich.console import Console

    from promptkit.evaluate import compute_metrics
    from promptkit.report.html import latency_section
    from promptkit.report.terminal import metrics_table
    from tests.helpers.sample_runs import classification_run

    run = classification_run(tmp_path)
    for r in run.results:
        r.cached, r.latency = True, 0.0
    run.metrics = compute_metrics(run.plan, run.results)
    console = Console(record=True, width=200)
    console.print(metrics_table(run))
    text = console.export_text()
    assert "latency_p50" not in text and "0 ms" not in text
    assert any("latency" in line and "n/a" in line for line in text.splitlines())
    assert "latency n/a" in latency_section(run)
