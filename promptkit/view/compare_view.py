"""The compare page's data: metric deltas with a paired test, flipped examples, the outputs matrix
and the slot diff of the two prompt versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from promptkit.compare import Comparison, compare, outcome, side_of_record
from promptkit.library.diff import PartDiff, diff_versions
from promptkit.runs import RunRecord, RunStore
from promptkit.stats import McNemar, mcnemar

PAIRED = ("accuracy", "exact_match")  # metrics whose per-example outcome is the stored `correct`


@dataclass
class PairedTest:
    side: int
    metric: str
    test: McNemar
    delta: float | None


@dataclass
class MatrixRow:
    id: str
    index: int
    input: str
    expected: str | None
    outputs: list[str]
    verdicts: list[str]  # correct | wrong | error | n/a per side
    flipped: bool


@dataclass
class CompareView:
    records: list[RunRecord]
    comparison: Comparison
    tests: list[PairedTest] = field(default_factory=list)
    rows: list[MatrixRow] = field(default_factory=list)
    diff: list[PartDiff] | None = None
    diff_note: str = ""


def _verdict(r: Any) -> str:
    if r.error is not None:
        return "error"
    return "n/a" if r.correct is None else "correct" if r.correct else "wrong"


def _text(inputs: dict[str, Any]) -> str:
    if len(inputs) == 1:
        return str(next(iter(inputs.values())))
    return "\n".join(f"{k}: {v}" for k, v in inputs.items())


def build(project: Any, store: RunStore, run_ids: list[str]) -> CompareView:
    records = [store.run(run_id) for run_id in run_ids]
    results = [store.results(r.id) for r in records]
    names = [f"{r.settings.get('prompt')} · {r.settings.get('model')}" for r in records]
    comparison = compare([side_of_record(r, res, name) for r, res, name in zip(records, results, names, strict=True)])
    view = CompareView(records, comparison)
    by_id = [{r.id: r for r in res} for res in results]
    metric_names = {row.name: row for row in comparison.metrics}
    for metric in PAIRED:
        if metric in metric_names:
            for i in range(1, len(records)):
                view.tests.append(PairedTest(i, metric, mcnemar(results[0], results[i]), metric_names[metric].deltas[i]))
            break
    flipped = {c.id for c in comparison.changed}
    for r in results[0] if results else []:
        if all(r.id in table for table in by_id):
            sides = [table[r.id] for table in by_id]
            view.rows.append(MatrixRow(r.id, r.index, _text(r.input), r.expected, [outcome(s) for s in sides],
                                       [_verdict(s) for s in sides], r.id in flipped))
    view.diff, view.diff_note = slot_diff(project, records[0], records[-1])
    return view


def slot_diff(project: Any, old: RunRecord, new: RunRecord) -> tuple[list[PartDiff] | None, str]:
    a, b = str(old.settings.get("prompt")), str(new.settings.get("prompt"))
    if a == b:
        return None, f"both runs use {a}"
    try:
        va, vb = project.library.resolve(a), project.library.resolve(b)
    except Exception as e:  # noqa: BLE001 - a prompt gone from the library: no diff, say why
        return None, f"no slot diff: {e}"
    return diff_versions(va, vb), f"{a} → {b}"
