"""promptkit runs: the run history in .promptkit/runs.db."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from promptkit.cli.common import console, err_console, project_of
from promptkit.compare import Comparison, compare, side_of_record
from promptkit.config import check_writable
from promptkit.errors import PromptkitError
from promptkit.report.data import json_text, write_text
from promptkit.report.format import printable
from promptkit.report.html import html_report, plain
from promptkit.report.run_view import prompt_renderer, view_of_record
from promptkit.report.terminal import cell, changed_table, comparison_table, safe_markup, stored_metrics_table
from promptkit.runs import RunRecord, RunStore, process_alive

SHOW_CHANGED = 20


@click.group()
def runs() -> None:
    """Browse recorded runs."""


@runs.command("list")
@click.option("--prompt", help="Only runs of this prompt name.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="Show at most N runs.")
@click.pass_context
def list_runs(ctx: click.Context, prompt: str | None, limit: int) -> None:
    """List recent runs."""
    store = ctx.with_resource(RunStore(project_of(ctx).runs_path))
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for column in ("created", "prompt", "model", "examples", "accuracy", "cached"):
        table.add_column(column)
    for run in store.runs(limit=limit, prompt=prompt):
        accuracy = run.metric("accuracy")
        done = store.count_results(run.id)
        total = run.settings.get("examples")
        table.add_row(cell(run.id), _status(run), cell(run.created.replace("T", " ")[:16]), cell(run.settings.get("prompt")),
                      cell(run.settings.get("model")), str(total) if done == total else f"{done}/{total}",
                      f"{accuracy:.1%}" if accuracy is not None else "-", str(run.extra.get("cache_hits", "-")))
    console.print(table)


@runs.command("show")
@click.argument("run_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the run's HTML report (the same page `promptkit view` shows).")
@click.pass_context
def show_run(ctx: click.Context, run_id: str, output: Path | None) -> None:
    """Show one run's settings and metrics (with 95% intervals)."""

    if output is not None:
        if output.suffix.lower() not in (".html", ".htm"):
            raise PromptkitError(f"runs show writes an HTML report, not {output.suffix or '(no suffix)'!r}",
                                 where=str(output), hint="name the file .html")
        check_writable(output)
    project = project_of(ctx)
    store = ctx.with_resource(RunStore(project.runs_path))
    run = store.run(run_id)
    console.print(f"[bold]run {safe_markup(run.id)}[/bold] · {_status(run)} · created {safe_markup(run.created)} · "
                  f"finished {safe_markup(run.finished or '-')}")
    console.print(f"  results: {store.count_results(run.id)} of {safe_markup(run.settings.get('examples'))}")
    for key, value in [*run.settings.items(), *run.extra.items()]:
        console.print(printable(f"  {key}: {plain(value)}"), markup=False)
    console.print(stored_metrics_table(run.metrics))
    if output is not None:

        write_text(output, html_report(view_of_record(run, store.results(run.id), prompt_renderer(project, run.settings))))
        err_console.print(f"report: {output}", markup=False)


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Also write the comparison as JSON.")
@click.pass_context
def compare_runs(ctx: click.Context, run_ids: tuple[str, ...], output: Path | None) -> None:
    """Compare recorded runs side by side (the first is the baseline)."""

    if len(run_ids) < 2:
        raise click.UsageError("give at least two run ids")
    if output is not None:  # the same check as eval's: a comparison is JSON, whatever the name says
        if output.suffix.lower() != ".json":
            raise PromptkitError(f"runs compare writes JSON, not {output.suffix or '(no suffix)'!r}", where=str(output),
                                 hint="name the file .json")
        check_writable(output)
    store = ctx.with_resource(RunStore(project_of(ctx).runs_path))
    records = [store.run(run_id) for run_id in run_ids]
    comparison = compare([side_of_record(r, store.results(r.id), r.id) for r in records])
    print_comparison(comparison)
    if output is not None:
        write_text(output, json_text(comparison.to_dict(), indent=2))
        err_console.print(f"comparison: {output}", markup=False)


def _status(run: RunRecord) -> str:
    """'running' only while its process lives; a killed run shows as resumable."""
    if run.status == "running" and not process_alive(run):
        return "killed (resumable)"
    return run.status


def print_comparison(comparison: Comparison) -> None:
    """One side-by-side metrics table with deltas, then the examples whose outcome changed."""

    for warning in comparison.warnings:
        err_console.print(f"warning: {printable(warning)}", style="yellow", markup=False, soft_wrap=True)
    console.print(comparison_table(comparison))
    changed = comparison.changed
    console.print(f"{len(changed)} of {comparison.common} examples changed outcome")
    if not changed:
        return
    console.print(changed_table(comparison, SHOW_CHANGED))
    if len(changed) > SHOW_CHANGED:
        console.print(f"... and {len(changed) - SHOW_CHANGED} more (see --output)")
