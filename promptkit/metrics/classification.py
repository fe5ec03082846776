"""Accuracy, macro precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from promptkit.metrics.base import Metric, MetricValue, ProportionMetric, interval_of, resampled_sums

if TYPE_CHECKING:
    import numpy as np

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


class Accuracy(ProportionMetric):
    """Share of examples whose prediction matches the expected answer (failures count as wrong)."""

    name = "accuracy"
    description = "share of correct predictions"

    def judge(self, result: ExampleResult) -> bool | None:
        return None if result.correct is None else bool(result.correct)


def macro_prf_counts(results: Sequence[ExampleResult], labels: Sequence[str]) -> np.ndarray:
    """(n, labels, 3) indicators: is the example a true positive, false positive, false negative for each label."""
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    predicted = np.array([index.get(r.prediction, -1) if r.prediction is not None else -1 for r in results])
    expected = np.array([index.get(r.expected, -1) if r.expected is not None else -1 for r in results])
    columns = np.arange(len(labels))
    p, e = predicted[:, None] == columns, expected[:, None] == columns
    return np.stack([p & e, p & ~e, ~p & e], axis=-1).astype(float)


def macro_from_counts(counts: np.ndarray) -> np.ndarray:
    """Macro precision, recall, F1 from summed (..., labels, 3) counts -> (..., 3)."""
    import numpy as np

    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return np.stack([precision.mean(-1), recall.mean(-1), f1.mean(-1)], axis=-1)


class MacroPRF(Metric):
    """Macro-averaged precision, recall and F1 over the label set, with bootstrap intervals."""

    name = "f1"
    tasks = ("classification",)
    aggregate = "macro"
    description = "macro-averaged precision, recall and F1"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        labels = list(labels or sorted({r.expected for r in results if r.expected}))
        if not results or not labels:
            return [MetricValue(f"{kind}_macro", 0.0, True, n=len(results)) for kind in ("precision", "recall", "f1")]
        counts = macro_prf_counts(results, labels)
        point = macro_from_counts(counts.sum(axis=0))
        resampled = macro_from_counts(resampled_sums(counts.reshape(len(results), -1)).reshape(-1, len(labels), 3))
        values = []
        for k, kind in enumerate(("precision", "recall", "f1")):
            low, high = interval_of(resampled[:, k])
            values.append(MetricValue(f"{kind}_macro", float(point[k]), True, low, high, interval="bootstrap",
                                      n=len(results)))
        return values
