"""The machine-readable report: a run's settings, metrics and every example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptkit.config import atomic_write
from promptkit.errors import PromptkitError

if TYPE_CHECKING:
    from promptkit.evaluate import EvalRun


def report_dict(run: EvalRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "settings": run.plan.settings(),
        "metrics": {m.name: m.to_dict() for m in run.metrics},
        "confusion_matrix": run.confusion,
        "examples": [r.to_dict() for r in run.results],
    }


def write_json(run: EvalRun, path: Path) -> None:
    try:
        atomic_write(path, json.dumps(report_dict(run), indent=2, ensure_ascii=False))
    except OSError as e:
        raise PromptkitError(f"cannot write the report: {e.strerror or e}", where=str(path),
                             hint="choose a writable path with --output") from None
