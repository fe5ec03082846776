"""promptkit runs: the run history in .promptkit/runs.db."""

from __future__ import annotations

import click
from rich.table import Table

from promptkit.cli.common import console, project_of
from promptkit.runs import RunStore


@click.group()
def runs() -> None:
    """Browse recorded runs."""


@runs.command("list")
@click.option("--prompt", help="Only runs of this prompt name.")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def list_runs(ctx: click.Context, prompt: str | None, limit: int) -> None:
    """List recent runs."""
    store = RunStore(project_of(ctx).runs_path)
    table = Table()
    for column in ("id", "created", "status", "prompt", "model", "examples", "accuracy"):
        table.add_column(column)
    for run in store.runs(limit=limit, prompt=prompt):
        accuracy = run.metric("accuracy")
        table.add_row(run.id, run.created, run.status, f"{run.settings.get('prompt')} ({run.settings.get('prompt_hash')})",
                      str(run.settings.get("model")), str(run.settings.get("examples")),
                      f"{accuracy:.1%}" if accuracy is not None else "-")
    console.print(table)


@runs.command("show")
@click.argument("run_id")
@click.pass_context
def show_run(ctx: click.Context, run_id: str) -> None:
    """Show one run's settings and metrics."""
    store = RunStore(project_of(ctx).runs_path)
    run = store.run(run_id)
    console.print(f"[bold]run {run.id}[/bold] · {run.status} · created {run.created} · finished {run.finished or '-'}")
    for key, value in run.settings.items():
        console.print(f"  {key}: {value}")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for m in run.metrics:
        table.add_row(m["name"], f"{m['value']:.4g}")
    console.print(table)
