"""Accuracy, macro precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

from promptkit.metrics.base import Metric, ProportionMetric
from promptkit.results import ExampleResult, MetricValue
from promptkit.stats import interval_of, label_counts, macro_prf, per_label_prf, resampled_sums


def confusion(results: Sequence[ExampleResult], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """matrix[expected][predicted] = count. Failed or unparseable predictions count under '(none)'."""
    columns = [*labels, "(none)"]
    matrix = {e: dict.fromkeys(columns, 0) for e in labels}
    for r in results:
        if r.expected in matrix:
            predicted = r.prediction if r.prediction in matrix[r.expected] else "(none)"
            matrix[r.expected][predicted] += 1
    return matrix


def per_label(results: Sequence[ExampleResult], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """precision, recall, f1 and support for each label."""
    counts = label_counts([r.expected for r in results], [r.prediction for r in results], labels).sum(axis=0)
    prf = per_label_prf(counts)
    return {label: {"precision": float(prf[i, 0]), "recall": float(prf[i, 1]), "f1": float(prf[i, 2]),
                    "support": int(counts[i, 0] + counts[i, 2])} for i, label in enumerate(labels)}


class Accuracy(ProportionMetric):
    """Share of examples whose prediction matches the expected answer (failures count as wrong)."""

    name = "accuracy"
    description = "share of correct predictions"
    paired = "outcome"

    def judge(self, result: ExampleResult) -> bool | None:
        return None if result.correct is None else bool(result.correct)


class MacroPRF(Metric):
    """Macro-averaged precision, recall and F1 over the label set, with bootstrap intervals."""

    name = "f1"
    tasks = ("classification",)
    aggregate = "macro"
    description = "macro-averaged precision, recall and F1"
    paired = "predictions"  # f1_macro only: precision and recall are reported, not compared

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        labels = list(labels or sorted({r.expected for r in results if r.expected}))
        if not results or not labels:
            return [MetricValue(f"{kind}_macro", 0.0, True, n=len(results), kind=self.aggregate,
                                paired=self.paired if kind == "f1" else None)
                    for kind in ("precision", "recall", "f1")]
        counts = label_counts([r.expected for r in results], [r.prediction for r in results], labels)
        point = macro_prf(counts.sum(axis=0))
        resampled = macro_prf(resampled_sums(counts.reshape(len(results), -1)).reshape(-1, len(labels), 3))
        values = []
        for k, kind in enumerate(("precision", "recall", "f1")):
            low, high = interval_of(resampled[:, k])
            values.append(MetricValue(f"{kind}_macro", float(point[k]), True, low, high, interval="bootstrap",
                                      n=len(results), kind=self.aggregate, paired=self.paired if kind == "f1" else None))
        return values
