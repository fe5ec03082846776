"""How metric values read in the terminal and in the HTML report."""

from __future__ import annotations

PERCENT = ("accuracy", "exact_match", "error_rate", "precision_macro", "recall_macro", "f1_macro")


def fmt(name: str, value: float | None, unit: str = "") -> str:
    """A metric value for people: proportions as percentages, seconds as ms or s, money in $."""
    if value is None:
        return ""
    if unit == "s":
        return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.2f} s"
    if unit == "$":
        return f"${value:.6f}" if value else "$0"
    if name in ("tokens_in", "tokens_out"):
        return f"{int(value):,}"
    if name in PERCENT or name == "assertions" or name.startswith("assert:"):  # pass rates
        return f"{value:.1%}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"


def fmt_interval(name: str, low: float | None, high: float | None, unit: str = "") -> str:
    if low is None or high is None:
        return ""
    return f"{fmt(name, low, unit)} – {fmt(name, high, unit)}"
