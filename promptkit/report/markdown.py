"""A Markdown summary of a check, for pull requests and $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from promptkit.config import atomic_write
from promptkit.errors import PromptkitError
from promptkit.gate.decide import worse_examples
from promptkit.report.format import printable

if TYPE_CHECKING:
    from promptkit.gate.decide import MetricCheck
    from promptkit.gate.results import CheckReport, SuiteCheck

ICON = {"pass": "✅", "fail": "❌", "stale": "⚠️", "error": "⛔", "no baseline": "🆕"}
CELL_CHARS = 120  # of a model output or input in a table


def _text(value: object, limit: int | None = None) -> str:
    """Text from a run (an input, output, name, error) as one line of Markdown: raw HTML in it stays text
    (`</details>` would end the section, `<img src=...>` would load), control characters are shown."""
    text = printable(value).replace("\n", " ")
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _cell(value: object, limit: int | None = CELL_CHARS) -> str:
    """_text for a table cell: a `|` would start a new column."""
    return "–" if value is None else _text(value, limit).replace("|", "\\|")


def _code(value: object) -> str:
    """An inline code span that backticks in the text cannot end early."""
    text = printable(value).replace("\n", " ")
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if "`" in text else f"`{text}`"


def _fmt(value: float | None, percent: bool) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" if percent else f"{value:.4g}"


def _delta(value: float | None, percent: bool) -> str:
    if value is None:
        return "?"
    return f"{value * 100:+.1f} pt" if percent else f"{value:+.4f}"


def _row(check: MetricCheck) -> str:
    """One check; whether a value is a share (%, drops in points) comes from the metric class, via the check."""
    share = check.percent
    if check.kind == "baseline":
        limit = f"drop ≤ {_delta(check.limit, share).lstrip('+')}" if check.limit else "no significant drop"
        raw = f" (raw {check.raw_p_value:.3g}, Holm-adjusted)" if check.raw_p_value not in (None, check.p_value) else ""
        stats = f"{check.test}: p = {check.p_value:.3g}{raw}; Δ {check.level:.0%} [{_delta(check.low, share)}, " \
                f"{_delta(check.high, share)}]; {check.worse} worse, {check.fixed} better of {check.paired}"
        base = _fmt(check.baseline, share)
    else:
        limit = f"{'≥' if check.kind == 'min' else '≤'} {_fmt(check.limit, share)}"
        stats, base = "", "–"
    return f"| {'✅' if check.passed else '❌'} | {_cell(check.name)} | {base} | {_fmt(check.value, share)} | {limit} | {stats} |"


def _suite(suite: SuiteCheck) -> list[str]:
    lines = [f"### {ICON.get(suite.status, '')} {_text(suite.suite)}: {suite.status}", ""]
    lines.append(f"{_code(suite.prompt)} ({_text(suite.prompt_hash)}) on {_code(suite.model)}, {suite.examples} examples"
                 + (f", {suite.repeat} repeats" if suite.repeat > 1 else ""))
    if suite.baseline:
        lines[-1] += f"; baseline {_code(suite.baseline['prompt'])} ({_text(suite.baseline['prompt_hash'])})"
    lines.append("")
    if suite.error:
        lines += [f"**error:** {_text(suite.error)}", ""]
    if suite.stale:
        lines += ["**stale baseline** (not used; re-bless it):", *[f"- {_text(r)}" for r in suite.stale], ""]
    if suite.checks:
        lines += ["| | check | baseline | now | limit | statistics |", "|---|---|---|---|---|---|"]
        lines += [_row(c) for c in suite.checks]
        lines.append("")
    worse = worse_examples(suite.checks)
    if worse:
        failed = _text(", ".join(c.metric for c in suite.failures if c.kind == "baseline"))
        lines += [f"<details><summary>{len(worse)} example(s) got worse ({failed})</summary>", "",
                  "| # | input | expected | before | now | fell |", "|---|---|---|---|---|---|"]
        for row in worse:
            fell = "; ".join(f"{metric} {change}" for metric, change in row["metrics"].items())
            lines.append(f"| {row['index']} | {_cell(row['input'])} | {_cell(row['expected'])} | {_cell(row['before'])} | "
                         f"{_cell(row['after'])} | {_cell(fell, None)} |")
        lines += ["", "</details>", ""]
    if suite.flaky:
        lines.append(f"Flaky over {suite.repeat} repeats: " + ", ".join(
            f"#{r['index']} ({r['correct']:.0%} right)" for r in suite.flaky[:30]))
        lines.append("")
    lines += [f"_{_text(note)}_" for note in suite.notes]
    return lines


def markdown_summary(report: CheckReport) -> str:
    lines = [f"## promptkit check: {ICON.get(report.status, '')} {report.status}", ""]
    if not report.suites:
        lines.append("No suite to check.")
    if report.skipped:
        lines += [f"Unchanged, not checked: {_text(', '.join(report.skipped))}", ""]
    for suite in report.suites:
        lines += _suite(suite)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(report: CheckReport, path: Path | None = None) -> list[Path]:
    """Write the summary to `path`, and append it to $GITHUB_STEP_SUMMARY when that is set."""
    text = markdown_summary(report)
    written = []
    try:
        if path is not None:
            atomic_write(path, text)
            written.append(path)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(text + "\n")
            written.append(Path(summary))
    except OSError as e:
        raise PromptkitError(f"cannot write the Markdown summary: {e.strerror or e}", where=str(e.filename or path)) from None
    return written
