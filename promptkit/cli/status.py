"""promptkit status: a prompt's score per version, whether it has plateaued, and what tuning would take."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from promptkit.cli.common import FiniteFloat, console, project_of

BAR = 30


def chart(points: list[Any], metric: str) -> Table:
    """One bar per version, scaled between the lowest and highest score."""
    table = Table(title=f"{metric} per version", title_justify="left", box=None, show_header=False)
    table.add_column("version")
    table.add_column("bar")
    table.add_column(metric, justify="right")
    table.add_column("run", style="dim")
    if not points:
        return table
    low, high = min(p.value for p in points), max(p.value for p in points)
    floor = max(0.0, low - (high - low or 0.05))
    for p in points:
        width = 1 + round((BAR - 1) * (p.value - floor) / max(1e-9, high - floor))
        table.add_row(p.label, "█" * width, f"{p.value:.1%}" if 0 <= p.value <= 1 else f"{p.value:.4g}", p.run_id)
    return table


@click.command("status")
@click.argument("ref")
@click.option("--suite", help="Eval suite name or YAML file (default: the one naming the prompt).")
@click.option("--window", type=click.IntRange(min=1), default=3, show_default=True, help="Versions judged for a plateau.")
@click.option("--margin", type=FiniteFloat(), default=0.01, show_default=True, help="Minimum gain (0.01 = one point).")
@click.option("--alpha", type=FiniteFloat(), default=0.05, show_default=True, help="Significance level of the gain.")
@click.option("--estimate/--no-estimate", default=None, help="Tuning estimates (default: when plateaued).")
@click.pass_context
def status(ctx: click.Context, ref: str, suite: str | None, window: int, margin: float, alpha: float,
           estimate: bool | None) -> None:
    """Show prompt REF's history on its suite and whether to escalate to fine-tuning."""
    from promptkit.tune.advice import advise
    from promptkit.tune.plateau import plateau

    project = project_of(ctx)
    version = project.library.resolve(ref)
    the_suite = project.suite(suite) if suite else project.suite_for(version)
    verdict = plateau(project, version.name, the_suite, window=window, margin=margin, alpha=alpha)
    console.print(f"[bold]{version.name}[/bold] on suite {the_suite.name} (split {the_suite.config.split or 'all'})")
    if verdict.points:
        console.print(chart(verdict.points, verdict.metric))
    else:
        console.print(f"no finished runs of published versions on this suite yet: run 'promptkit eval {version.name}@vN'")
    state = "[yellow]plateaued[/yellow]" if verdict.plateaued else "[green]not plateaued[/green]"
    console.print(f"{state}: {verdict.reason}")
    if estimate is False or (estimate is None and not verdict.plateaued):
        return
    if verdict.plateaued:
        console.print(f"recommendation: escalate to fine-tuning, e.g. 'promptkit tune {ref} --backend lora'")
    advice = advise(project, version, the_suite)
    table = Table(title="tuning estimates", title_justify="left")
    for column in ("backend", "model", "examples", "tokens", "epochs", "time here", "cost", "note"):
        table.add_column(column, justify="right" if column in ("examples", "tokens", "epochs") else "left")
    for e in advice.estimates:
        minutes = f"{e.seconds / 60:.1f} min" if e.seconds is not None else "-"
        cost = f"${e.cost:.2f}" if e.cost is not None else "?"
        table.add_row(e.backend, e.model, str(e.examples), f"{e.tokens:,}", str(e.epochs),
                      minutes if e.backend == "lora" else "hosted", cost, e.note)
    console.print(table)
    for backend, problem in advice.problems.items():
        console.print(f"[yellow]{backend}: {problem}[/yellow]")
