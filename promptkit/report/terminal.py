"""Rich tables for the terminal. Only the CLI imports this module."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from promptkit.evaluate import EvalRun
    from promptkit.metrics import MetricValue


def format_value(m: MetricValue) -> str:
    if m.unit == "s":
        return f"{m.value * 1000:.1f} ms" if m.value < 1 else f"{m.value:.2f} s"
    if m.unit == "$":
        return f"${m.value:.6f}" if m.value else "$0"
    if m.name.startswith(("tokens_in", "tokens_out")):
        return f"{int(m.value):,}"
    if m.name == "tokens_per_example":
        return f"{m.value:.1f}"
    return f"{m.value:.1%}" if 0 <= m.value <= 1 else f"{m.value:.4g}"


def metrics_table(run: EvalRun) -> Table:
    plan = run.plan
    title = f"{plan.version.ref} ({plan.version.hash}) on {plan.model.spec}: {len(run.results)} examples"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    for m in run.metrics:
        interval = ""
        if m.low is not None and m.high is not None:
            interval = f"{m.low:.1%} – {m.high:.1%}" if m.unit == "" else f"{m.low:.3g} – {m.high:.3g}"
        table.add_row(m.name, format_value(m), interval)
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
