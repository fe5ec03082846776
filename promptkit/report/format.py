"""How metric values read in the terminal and in the HTML report, and run text made safe to print."""

from __future__ import annotations

import re

# Shares of examples, by value name: only for values stored before MetricValue carried its `kind`
# (older runs) and for per-example cells that have no MetricValue; otherwise the kind decides.
PERCENT = ("accuracy", "exact_match", "error_rate", "precision_macro", "recall_macro", "f1_macro")
SHARE_KINDS = ("proportion", "macro")

# Control characters (ESC starts ANSI/OSC sequences: colours, screen clears, clipboard writes by OSC 52;
# CR overwrites a line), the bidi controls that reorder the text after them ("Trojan Source") and lone
# surrogates (a file name that is not UTF-8), which no UTF-8 file or terminal can hold.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(value: object) -> str:
    """Text from a run (model outputs, inputs, ids, names, errors) with every control character shown as
    its escape (`\\x1b`, `\\u202e`, `\\udcff`), so a terminal or a viewer displays it and never obeys it."""
    return UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))


def fmt(name: str, value: float | None, unit: str = "", kind: str | None = None) -> str:
    """A metric value for people: shares of examples (the metric class's `kind` proportion or macro)
    as percentages, seconds as ms or s, money in $, totals with thousands separators."""
    if value is None:
        return ""
    if unit == "s":
        return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.2f} s"
    if unit == "$":
        return f"${value:.6f}" if value else "$0"
    if kind == "sum" or (kind is None and name in ("tokens_in", "tokens_out")):
        return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"
    if kind in SHARE_KINDS or (kind is None and (name in PERCENT or name == "assertions" or name.startswith("assert:"))):
        return f"{value:.1%}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"


def fmt_interval(name: str, low: float | None, high: float | None, unit: str = "", kind: str | None = None) -> str:
    if low is None or high is None:
        return ""
    return f"{fmt(name, low, unit, kind)} – {fmt(name, high, unit, kind)}"
