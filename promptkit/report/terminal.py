"""Rich tables for the terminal. Only the CLI imports this module."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from promptkit.compare import Comparison
from promptkit.report.format import SHARE_KINDS, fmt, fmt_interval, printable
from promptkit.results import EvalRun, MetricValue


def cell(value: object) -> Text:
    """Run text (an id, input, output, label, name) for a table: a plain Text, so brackets in it are
    never read as rich markup (`[/b]` would raise, `[link=...]` would make a link), control characters shown."""
    return Text(printable(value))


def safe_markup(value: object) -> str:
    """Run text to put inside a rich markup string (console.print of an f-string)."""
    return escape(printable(value))


def format_value(m: MetricValue) -> str:
    return fmt(m.name, m.value, m.unit, m.kind)


def metrics_table(run: EvalRun) -> Table:
    plan = run.plan
    title = f"{plan.version.ref} ({plan.version.hash}) on {plan.model.spec}: {len(run.results)} examples"
    table = Table(title=Text(printable(title), style="table.title"), title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    notes = any(m.note for m in run.metrics)
    if notes:
        table.add_column("measured")
    for m in run.metrics:
        table.add_row(cell(m.name), format_value(m), fmt_interval(m.name, m.low, m.high, m.unit, m.kind),
                      *([cell(m.note or "")] * notes))
    if "latency" in plan.metric_names and not any(m.name.startswith("latency_") for m in run.metrics):
        table.add_row("latency", "n/a", "", *(["every example cached: nothing timed"] * notes))
    return table


def confusion_table(run: EvalRun) -> Table | None:
    if not run.confusion:
        return None
    table = Table(title="confusion matrix (rows: expected, columns: predicted)", title_justify="left")
    columns = list(next(iter(run.confusion.values())))
    if not any(row.get("(none)") for row in run.confusion.values()):
        columns.remove("(none)")
    table.add_column("expected")
    for column in columns:
        table.add_column(cell(column), justify="right")
    for expected, row in run.confusion.items():
        table.add_row(cell(expected), *(str(row[c]) for c in columns))
    return table


def stored_metrics_table(metrics: list[dict[str, Any]]) -> Table:
    """A recorded run's metrics (as the run store keeps them) with their intervals."""
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    for m in metrics:
        unit, kind = m.get("unit", ""), m.get("kind")
        table.add_row(cell(m["name"]), fmt(m["name"], m.get("value"), unit, kind) or "-",
                      fmt_interval(m["name"], m.get("low"), m.get("high"), unit, kind))
    return table


def comparison_table(comparison: Comparison) -> Table:
    """The sides' metrics in columns, each later side with its delta against the first."""
    table = Table(title="comparison (deltas against the first column)", title_justify="left")
    table.add_column("metric")
    for i, side in enumerate(comparison.sides):
        table.add_column(cell(side.name), justify="right")
        if i:
            table.add_column("Δ", justify="right")
    for row in comparison.metrics:
        cells: list[str | Text] = []
        for i, value in enumerate(row.values):
            cells.append(fmt(row.name, value, row.unit, row.kind) if value is not None else "-")
            if i:
                delta = row.deltas[i]
                better = row.better(i)
                style = "green" if better else "red" if better is False else "dim"
                text = "-" if delta is None else _delta(row.name, delta, row.unit, row.kind)
                cells.append(Text(text, style=style))
        table.add_row(cell(row.name), *cells)
    return table


def _delta(name: str, delta: float, unit: str, kind: str | None) -> str:
    """Shares and unitless scores move in points; totals, seconds and money in their own units."""
    sign = "+" if delta >= 0 else "-"
    counted = kind == "sum" or name.startswith("tokens")  # tokens_per_example is a mean of counts
    if (unit == "" and not counted) or kind in SHARE_KINDS:
        return f"{sign}{abs(delta) * 100:.1f} pt"
    return sign + fmt(name, abs(delta), unit, kind)


def changed_table(comparison: Comparison, limit: int) -> Table:
    """The first `limit` examples whose outcome differs between the sides."""
    table = Table()
    table.add_column("example")
    table.add_column("input")
    table.add_column("expected")
    for side in comparison.sides:
        table.add_column(cell(side.name))
    for c in comparison.changed[:limit]:
        text = " ".join(str(v) for v in c.input.values())
        table.add_row(cell(c.id), cell(text[:60] + ("…" if len(text) > 60 else "")), cell(c.expected or "-"),
                      *map(cell, c.outcomes))
    return table
