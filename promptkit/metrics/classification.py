"""Accuracy, macro precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from promptkit.metrics.base import Metric, MetricValue, wilson

if TYPE_CHECKING:
    from promptkit.evaluate import ExampleResult


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
    out = {}
    for label in labels:
        tp = sum(r.prediction == label and r.expected == label for r in results)
        fp = sum(r.prediction == label and r.expected != label for r in results)
        fn = sum(r.prediction != label and r.expected == label for r in results)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return out


class Accuracy(Metric):
    name = "accuracy"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        n = len(results)
        correct = sum(bool(r.correct) for r in results)
        low, high = wilson(correct, n)
        return [MetricValue("accuracy", correct / n if n else 0.0, True, low, high)]


class MacroPRF(Metric):
    """Macro-averaged precision, recall and F1 over the label set."""

    name = "f1"
    tasks = ("classification",)

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        stats = per_label(results, labels or sorted({r.expected for r in results if r.expected}))
        k = max(1, len(stats))
        return [
            MetricValue(f"{kind}_macro", sum(s[kind] for s in stats.values()) / k, True)
            for kind in ("precision", "recall", "f1")
        ]
