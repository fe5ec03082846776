"""promptkit check: the CI gate over eval suites. Exit 0 pass, 1 regression, 2 configuration error."""

from __future__ import annotations

import json
from pathlib import Path

import click

from promptkit.cache import ResponseCache
from promptkit.cli.common import FiniteFloat, console, err_console, project_of
from promptkit.config import atomic_write, check_writable
from promptkit.errors import PromptkitError
from promptkit.gate.check import SuiteCheck, run_check
from promptkit.gate.decide import worse_examples
from promptkit.report.format import printable
from promptkit.report.junit import write_junit
from promptkit.report.markdown import write_markdown
from promptkit.report.terminal import safe_markup
from promptkit.runs import RunStore

SHOWN = 15  # flipped examples printed per failed check
STYLE = {"pass": "green", "fail": "bold red", "stale": "yellow", "error": "red", "no baseline": "cyan"}


def out(text: str) -> None:
    """A line holding run text (inputs, outputs, errors): no markup, control characters shown, not obeyed."""
    console.print(printable(text), markup=False, soft_wrap=True, highlight=False, emoji=False)


def print_suite(suite: SuiteCheck) -> None:
    # suite names come from file names and models from suite files: '[/x]' or an escape in one is text
    console.print(f"[{STYLE.get(suite.status, '')}]{suite.status.upper()}[/] {safe_markup(suite.suite)}: "
                  f"{safe_markup(suite.prompt)} ({safe_markup(suite.prompt_hash)}) on {safe_markup(suite.model)}, "
                  f"{suite.examples} examples", soft_wrap=True, emoji=False)
    if suite.error:
        out(f"  error: {suite.error}")
    for reason in suite.stale:
        out(f"  stale baseline: {reason}")
    for check in suite.checks:
        mark = "ok  " if check.passed else "FAIL"
        out(f"  {mark} {check.name}: {check.message or check.value}")
        if not check.passed and check.kind == "baseline":
            out(f"       {check.worse} example(s) worse, {check.fixed} better, of {check.paired} paired")
    worse = worse_examples(suite.checks)
    if worse:
        out(f"  examples that got worse ({len(worse)}, each once with the metrics that fell):")
        for row in worse[:SHOWN]:
            fell = "; ".join(f"{metric} {change}" for metric, change in row["metrics"].items())
            out(f"       flipped #{row['index']} ({row['id']}): {row['before']} -> {row['after']}, "
                f"expected {row['expected']} [{fell}]: {row['input']}")
        if len(worse) > SHOWN:
            out(f"       ... and {len(worse) - SHOWN} more (all in --json / --markdown)")
    if suite.flaky:
        out(f"  flaky examples: {len(suite.flaky)} of {suite.examples} "
                      f"(" + ", ".join(f"#{r['index']} {r['correct']:.0%}" for r in suite.flaky[:10]) + ")")
    for note in suite.notes:
        out(f"  note: {note}")


@click.command("check")
@click.argument("targets", nargs=-1)
@click.option("--changed-since", metavar="REF",
              help="Only suites whose prompt, suite file, dataset or baseline changed since git REF.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a Markdown summary here (also appended to $GITHUB_STEP_SUMMARY when set).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the full result as JSON.")
@click.option("--alpha", type=FiniteFloat(0, 1, min_open=True, max_open=True),
              help="Significance level of the paired tests (default: the suite's, else 0.05).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run each suite N times (seeds 0..N-1) for sampled decoding; reports flaky examples.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N examples of each suite.")
@click.option("--no-store", is_flag=True, help="Do not record the runs in .promptkit/runs.db.")
@click.option("--no-cache", is_flag=True,
              help="Call the model for every example. By default deterministic suites (temperature 0 or log-likelihood "
                   "scoring) reuse answers from .promptkit/cache.db, so paid models are not billed again in each CI run.")
@click.pass_context
def check_command(ctx: click.Context, targets: tuple[str, ...], changed_since: str | None, junit: Path | None,
                  markdown: Path | None, json_path: Path | None, alpha: float | None, repeat: int, limit: int | None,
                  no_store: bool, no_cache: bool) -> None:
    """Check suites (all, or TARGETS: suite names or prompt refs) against thresholds and blessed baselines."""
    project = project_of(ctx)
    for option, path in (("--junit", junit), ("--markdown", markdown), ("--json", json_path)):
        if path is not None:  # before any model call: never a device, a FIFO or an unwritable folder
            check_writable(path, option)
    store = None if no_store else ctx.with_resource(RunStore(project.runs_path))
    cache = None if no_cache else ctx.with_resource(ResponseCache(project.state_dir / "cache.db"))
    report = run_check(project, targets, changed_since=changed_since, alpha=alpha, repeat=repeat, store=store,
                       limit=limit, cache=cache, on_suite=print_suite)
    if not report.suites:
        err_console.print(printable("no suite to check" + (f" (unchanged since {changed_since}: {', '.join(report.skipped)})"
                                                           if report.skipped else "")), markup=False, emoji=False)
    if junit:
        write_junit(report, junit)
    write_markdown(report, markdown)
    if json_path:
        try:
            text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str)
            # a suite file name that is not UTF-8 holds lone surrogates: written as their JSON escape (\udcff)
            atomic_write(json_path, text.encode("utf-8", "backslashreplace"))
        except OSError as e:
            raise PromptkitError(f"cannot write the JSON report: {e.strerror or e}", where=str(json_path)) from None
    out(f"check: {report.status} (exit {report.exit_code})")
    ctx.exit(report.exit_code)
