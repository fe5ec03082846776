"""promptkit status: a prompt's score per version, whether it has plateaued, and what tuning would take."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from promptkit.cli.common import FiniteFloat, console, project_of
from promptkit.report.format import printable
from promptkit.report.terminal import cell, safe_markup
from promptkit.stats import ALPHA
from promptkit.tune.advice import advise
from promptkit.tune.plateau import plateau

BAR = 30


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if 0 <= value <= 1 else f"{value:.4g}"


def chart(points: list[Any], metric: str) -> Table:
    """One row per version: a bar scaled between the lowest and highest score, the score, its 95% interval."""
    table = Table(title=Text(printable(f"{metric} per version"), style="table.title"), title_justify="left", box=None)
    for column in ("version", "", cell(metric), "95% interval", "examples", "run"):
        table.add_column(column, justify="right" if isinstance(column, Text) or column == "examples" else "left",
                         style="dim" if column == "run" else None)
    if not points:
        return table
    low, high = min(p.value for p in points), max(p.value for p in points)
    floor = max(0.0, low - (high - low or 0.05))
    for p in points:
        width = 1 + round((BAR - 1) * (p.value - floor) / max(1e-9, high - floor))
        interval = f"{_pct(p.low)} - {_pct(p.high)}" if p.low is not None and p.high is not None else "-"
        table.add_row(p.label, "█" * width, _pct(p.value), interval, str(p.examples), cell(p.run_id))
    return table


def verdict_lines(verdict: Any) -> list[str]:
    """The verdict with its numbers: the comparison judged, the gain, and the paired test."""
    state = "[yellow]plateaued[/yellow]" if verdict.plateaued else "[green]not plateaued[/green]"
    lines = [f"verdict: {state}: {safe_markup(verdict.reason)}"]
    if verdict.base is not None and verdict.top is not None and verdict.gain is not None:
        lines.append(f"gain: {verdict.gain * 100:+.1f} points of {safe_markup(verdict.metric)}: "
                     f"best of the last {verdict.window} ({verdict.top.label}, {_pct(verdict.top.value)}) vs best before them "
                     f"({verdict.base.label}, {_pct(verdict.base.value)}); margin {verdict.margin * 100:.1f} points")
    test = verdict.test
    if test is not None and verdict.base is not None and verdict.top is not None:
        lines.append(f"paired McNemar {verdict.base.label} -> {verdict.top.label} on {test.n} shared examples: "
                     f"{test.b_only} fixed, {test.a_only} broken, p={test.p_value:.3g} "
                     f"({'significant' if test.significant(verdict.alpha) else 'not significant'} at {verdict.alpha:g})")
    return lines


@click.command("status")
@click.argument("ref")
@click.option("--suite", help="Eval suite name or YAML file (default: the one naming the prompt).")
@click.option("--model", "-m", help="Judge the runs of this model (default: the suite's model).")
@click.option("--window", type=click.IntRange(min=1), default=3, show_default=True, help="Versions judged for a plateau.")
@click.option("--margin", type=FiniteFloat(0), default=0.01, show_default=True, help="Minimum gain (0.01 = one point).")
@click.option("--alpha", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=ALPHA, show_default=True,
              help="Significance level of the gain.")
@click.option("--estimate/--no-estimate", default=None, help="Tuning estimates (default: when plateaued).")
@click.pass_context
def status(ctx: click.Context, ref: str, suite: str | None, model: str | None, window: int, margin: float,
           alpha: float, estimate: bool | None) -> None:
    """Show prompt REF's history on its suite and whether to escalate to fine-tuning."""

    project = project_of(ctx)
    version = project.library.resolve(ref)
    the_suite = project.suite(suite) if suite else project.suite_for(version)
    verdict = plateau(project, version.name, the_suite, window=window, margin=margin, alpha=alpha, model=model,
                      version=version)
    # suite names, splits and model specs come from files and the command line: '[/x]' in one is text
    console.print(f"[bold]{version.name}[/bold] on suite {safe_markup(the_suite.name)} "
                  f"(split {safe_markup(the_suite.config.split or 'all')}), model {safe_markup(verdict.model)}", emoji=False)
    if verdict.points:
        console.print(chart(verdict.points, verdict.metric))
    else:
        console.print(f"no finished runs of published versions of {version.name} on suite {safe_markup(the_suite.name)} "
                      f"with model {safe_markup(verdict.model)} yet: run 'promptkit eval {version.name}@vN'", emoji=False)
    if verdict.other_models:
        others = ", ".join(f"{spec} ({n} version{'s' if n != 1 else ''})" for spec, n in sorted(verdict.other_models.items()))
        console.print(f"[dim]also scored on other models, not judged here: {safe_markup(others)}; "
                      f"see 'promptkit status {safe_markup(ref)} --model SPEC'[/dim]", emoji=False)
    for line in verdict_lines(verdict):
        console.print(line, emoji=False)
    if estimate is False or (estimate is None and not verdict.plateaued):
        return
    if verdict.plateaued:
        console.print(f"recommendation: escalate to fine-tuning, e.g. 'promptkit tune {safe_markup(ref)} --backend lora'")
    advice = advise(project, version, the_suite)
    table = Table(title="tuning estimates", title_justify="left")
    for column in ("backend", "model", "examples", "tokens", "epochs", "time here", "cost", "note"):
        table.add_column(column, justify="right" if column in ("examples", "tokens", "epochs") else "left")
    for e in advice.estimates:
        minutes = f"{e.seconds / 60:.1f} min" if e.seconds is not None else "-"
        cost = f"${e.cost:.2f}" if e.cost is not None else "?"
        table.add_row(cell(e.backend), cell(e.model), str(e.examples), f"{e.tokens:,}", str(e.epochs),
                      minutes if e.backend == "lora" else "hosted", cost, cell(e.note))
    console.print(table)
    for backend, problem in advice.problems.items():
        console.print(f"[yellow]{safe_markup(backend)}: {safe_markup(problem)}[/yellow]", emoji=False)
