"""Side-by-side comparison of runs: per-metric values and deltas, and the examples whose outcome changed.

Sides come from runs just made (EvalRun) or from the run store (RunRecord + its results);
the first side is the baseline every delta is measured against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptkit.results import EvalRun, ExampleResult

if TYPE_CHECKING:
    from promptkit.runs import RunRecord


@dataclass
class Side:
    name: str  # e.g. "sentiment@v2 · smollm2"
    metrics: dict[str, dict[str, Any]]  # name -> MetricValue.to_dict()
    results: list[ExampleResult]
    run_id: str | None = None
    dataset: str | None = None  # the scored file and its content hash, to tell when sides differ
    dataset_hash: str | None = None
    split: str | None = None


@dataclass
class MetricRow:
    name: str
    values: list[float | None]
    deltas: list[float | None]  # vs the first side
    higher_is_better: bool | None
    unit: str = ""
    kind: str | None = None  # the metric class's aggregate, as recorded (None for older runs)

    def better(self, i: int) -> bool | None:
        """Whether side i is better than the baseline on this metric (None: same or no direction)."""
        delta = self.deltas[i]
        if delta is None or delta == 0 or self.higher_is_better is None:
            return None
        return (delta > 0) == self.higher_is_better


@dataclass
class ChangedExample:
    id: str
    input: dict[str, Any]
    expected: str | None
    outcomes: list[str]  # per side: the prediction, marked right/wrong/error


@dataclass
class Comparison:
    sides: list[Side]
    metrics: list[MetricRow] = field(default_factory=list)
    changed: list[ChangedExample] = field(default_factory=list)
    common: int = 0  # examples present in every side
    warnings: list[str] = field(default_factory=list)  # why the deltas may not mean what they seem

    def to_dict(self) -> dict[str, Any]:
        return {
            "sides": [{"name": s.name, "run_id": s.run_id, "examples": len(s.results)} for s in self.sides],
            "metrics": [{"name": m.name, "values": m.values, "deltas": m.deltas, "higher_is_better": m.higher_is_better,
                         "unit": m.unit} for m in self.metrics],
            "common_examples": self.common,
            "warnings": self.warnings,
            "changed": [{"id": c.id, "input": c.input, "expected": c.expected, "outcomes": c.outcomes} for c in self.changed],
        }


def side_of_run(run: EvalRun, name: str | None = None) -> Side:
    settings = run.plan.settings()
    return Side(name or f"{settings['prompt']} · {settings['model']}", {m.name: m.to_dict() for m in run.metrics},
                list(run.results), run.run_id, settings.get("dataset"), settings.get("dataset_hash"), settings.get("split"))


def side_of_record(record: RunRecord, results: list[ExampleResult], name: str | None = None) -> Side:
    settings = record.settings
    return Side(name or f"{settings.get('prompt')} · {settings.get('model')} · {record.id}",
                {m["name"]: m for m in record.metrics}, results, record.id, settings.get("dataset"),
                settings.get("dataset_hash"), settings.get("split"))


def outcome(result: ExampleResult) -> str:
    """How one example came out, as compared across sides."""
    if result.error is not None:
        return "error"
    shown = result.prediction if result.prediction is not None else result.output
    if result.correct is None:
        return str(shown)
    return f"{shown} ({'right' if result.correct else 'wrong'})"


def compare(sides: list[Side]) -> Comparison:
    """Metric deltas against the first side, and examples (present in all sides) whose outcome differs."""
    comparison = Comparison(sides)
    names: list[str] = []
    for side in sides:
        names += [n for n in side.metrics if n not in names]
    for name in names:
        entries = [side.metrics.get(name) for side in sides]
        values = [float(e["value"]) if e is not None else None for e in entries]
        base = values[0]
        deltas = [v - base if v is not None and base is not None else None for v in values]
        known = next(e for e in entries if e is not None)
        comparison.metrics.append(MetricRow(name, values, deltas, known.get("higher_is_better"), str(known.get("unit", "")),
                                            known.get("kind")))
    by_id = [{r.id: r for r in side.results} for side in sides]
    common = [r.id for r in sides[0].results if all(r.id in table for table in by_id)] if sides else []
    comparison.common = len(common)
    for example_id in common:
        outcomes = [outcome(table[example_id]) for table in by_id]
        if len(set(_verdict(table[example_id]) for table in by_id)) > 1:
            first = by_id[0][example_id]
            comparison.changed.append(ChangedExample(example_id, first.input, first.expected, outcomes))
    comparison.warnings = _warnings(sides, comparison.common)
    return comparison


def _warnings(sides: list[Side], common: int) -> list[str]:
    """Sides that did not score the same examples: their metric deltas compare different data."""
    out = []
    datasets = {(s.dataset_hash, s.split) for s in sides if s.dataset_hash is not None}
    if len(datasets) > 1:
        described = "; ".join(f"{s.name}: {s.dataset or '?'} ({s.dataset_hash}, split {s.split or 'all'})" for s in sides)
        out.append(f"the runs scored different data ({described}): metric deltas compare different examples")
    largest = max((len(s.results) for s in sides), default=0)
    if sides and common == 0 and largest:
        out.append("no example is shared by every run: the deltas are not paired and no changed outcome can be listed")
    elif common < largest:
        out.append(f"only {common} of {largest} examples are shared by every run: changed outcomes are counted on those")
    return out


def _verdict(result: ExampleResult) -> str:
    """What counts as a change: right/wrong flips, errors, or a different answer where nothing is expected."""
    if result.error is not None:
        return "error"
    if result.correct is not None:
        return "right" if result.correct else "wrong"
    return result.prediction if result.prediction is not None else result.output
