"""Machine-readable reports: the JSON report (settings, metrics, every example), per-example
JSONL and CSV. Per-example metric values (accuracy, relevance, bleu, ...) come from the run's
MetricValues where the metric has a per-example decomposition."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write
from promptkit.errors import PromptkitError
from promptkit.report.html import html_report
from promptkit.results import EvalRun, per_example_values
from promptkit.strict_json import finite

EXAMPLE_COLUMNS = ["index", "id", "expected", "output", "prediction", "correct", "error", "tokens_in", "tokens_out",
                   "cost", "latency", "cached"]


def json_text(value: Any, indent: int | None = None) -> str:
    """Strict JSON, as jq and JavaScript read it: NaN and infinities are null (as the run store keeps them)."""
    return json.dumps(finite(value), indent=indent, ensure_ascii=False, allow_nan=False)


def report_dict(run: EvalRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status,
        "settings": run.plan.settings(),
        "extra": run.extra,
        "metrics": {m.name: m.to_dict() for m in run.metrics},
        "confusion_matrix": run.confusion,
        "examples": [r.to_dict() for r in run.results],
    }


def example_metrics(run: EvalRun) -> list[dict[str, float]]:
    """For each example, its per-example metric values by name (only those defined for it)."""
    return per_example_values(run.metrics, len(run.results))


def example_records(run: EvalRun) -> list[dict[str, Any]]:
    """One dict per example: the result plus a `metrics` dict of its per-example values."""
    return [{**r.to_dict(), "metrics": scores} for r, scores in zip(run.results, example_metrics(run), strict=True)]


def jsonl_text(run: EvalRun) -> str:
    return "".join(json_text(record) + "\n" for record in example_records(run))


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def csv_text(run: EvalRun) -> str:
    """One row per example: its input fields (input.NAME), the result columns, its metric values (metric.NAME)."""
    inputs = list(dict.fromkeys(k for r in run.results for k in r.input))
    scores = example_metrics(run)
    metric_names = list(dict.fromkeys(k for row in scores for k in row))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "id", *(f"input.{k}" for k in inputs), *EXAMPLE_COLUMNS[2:],
                     *(f"metric.{k}" for k in metric_names)])
    for r, row in zip(run.results, scores, strict=True):
        record = r.to_dict()
        writer.writerow([r.index, _cell(r.id), *(_cell(r.input.get(k)) for k in inputs),
                         *(_cell(record[c]) for c in EXAMPLE_COLUMNS[2:]), *(row.get(k, "") for k in metric_names)])
    return out.getvalue()


def write_text(path: Path, text: str) -> None:
    try:
        atomic_write(path, text)
    except OSError as e:
        raise PromptkitError(f"cannot write the report: {e.strerror or e}", where=str(path),
                             hint="choose a writable path with --output") from None


def write_json(run: EvalRun, path: Path) -> None:
    write_text(path, json_text(report_dict(run), indent=2))


def write_jsonl(run: EvalRun, path: Path) -> None:
    write_text(path, jsonl_text(run))


def write_csv(run: EvalRun, path: Path) -> None:
    write_text(path, csv_text(run))


def write_report(run: EvalRun, path: Path | str) -> Path:
    """Write the report in the format the suffix names: .json, .jsonl, .csv or .html."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".html" or suffix == ".htm":
        write_text(path, html_report(run))
    elif suffix in WRITERS:
        WRITERS[suffix](run, path)
    else:
        raise PromptkitError(f"unknown report format {path.suffix or '(no suffix)'!r}", where=str(path),
                             hint="name the file .json, .jsonl, .csv or .html")
    return path


WRITERS = {".json": write_json, ".jsonl": write_jsonl, ".csv": write_csv}
