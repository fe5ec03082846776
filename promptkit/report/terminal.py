"""Rich tables for the terminal. Only the CLI imports this module."""

from __future__ import annotations

from rich.table import Table

from promptkit.report.format import fmt, fmt_interval
from promptkit.results import EvalRun, MetricValue


def format_value(m: MetricValue) -> str:
    return fmt(m.name, m.value, m.unit, m.kind)


def metrics_table(run: EvalRun) -> Table:
    plan = run.plan
    title = f"{plan.version.ref} ({plan.version.hash}) on {plan.model.spec}: {len(run.results)} examples"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    notes = any(m.note for m in run.metrics)
    if notes:
        table.add_column("measured")
    for m in run.metrics:
        table.add_row(m.name, format_value(m), fmt_interval(m.name, m.low, m.high, m.unit, m.kind), *([m.note or ""] * notes))
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
        table.add_column(column, justify="right")
    for expected, row in run.confusion.items():
        table.add_row(expected, *(str(row[c]) for c in columns))
    return table
