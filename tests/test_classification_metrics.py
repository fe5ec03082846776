"""Classification and usage metrics against hand-computed cases."""

from __future__ import annotations

import pytest

from promptkit.metrics import metrics
from promptkit.metrics.classification import confusion
from promptkit.results import ExampleResult
from promptkit.stats import percentile, wilson

LABELS = ["neg", "pos"]


def result(i: int, expected: str, predicted: str | None, latency: float = 0.1, tin: int = 10) -> ExampleResult:
    return ExampleResult(id=str(i), index=i, input={}, expected=expected, output=predicted or "",
                         prediction=predicted, correct=predicted == expected, tokens_in=tin, tokens_out=1,
                         latency=latency)


# expected/predicted pairs: pos->pos x3, pos->neg x1, neg->neg x2, neg->pos x2, neg->(none) x1
CASES = [("pos", "pos")] * 3 + [("pos", "neg")] + [("neg", "neg")] * 2 + [("neg", "pos")] * 2 + [("neg", None)]
RESULTS = [result(i, e, p, latency=(i + 1) / 10) for i, (e, p) in enumerate(CASES)]


def values(name: str) -> dict[str, float]:
    return {v.name: v.value for v in metrics.get(name)().compute(RESULTS, LABELS)}


def test_accuracy_and_wilson_interval() -> None:
    (acc,) = metrics.get("accuracy")().compute(RESULTS, LABELS)
    assert acc.value == pytest.approx(5 / 9)
    assert acc.low is not None and acc.high is not None
    # Wilson 95% for 5/9, computed by hand: centre 0.5476, half-width 0.2862
    assert (acc.low, acc.high) == pytest.approx((0.2667, 0.8112), abs=1e-3)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)


def test_macro_precision_recall_f1() -> None:
    # pos: tp 3, fp 2, fn 1 -> p 3/5, r 3/4, f1 2/3 ; neg: tp 2, fp 1, fn 3 -> p 2/3, r 2/5, f1 1/2
    got = values("f1")
    assert got["precision_macro"] == pytest.approx((3 / 5 + 2 / 3) / 2)
    assert got["recall_macro"] == pytest.approx((3 / 4 + 2 / 5) / 2)
    assert got["f1_macro"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_confusion_matrix_counts_unparseable_predictions() -> None:
    assert confusion(RESULTS, LABELS) == {
        "neg": {"neg": 2, "pos": 2, "(none)": 1},
        "pos": {"neg": 1, "pos": 3, "(none)": 0},
    }


def test_latency_percentiles_and_tokens() -> None:
    assert percentile([0.1, 0.2, 0.3, 0.4], 50) == pytest.approx(0.25)
    got = values("latency")
    assert got["latency_p50"] == pytest.approx(0.5)
    assert got["latency_p95"] == pytest.approx(0.86)
    assert got["latency_total"] == pytest.approx(4.5)
    tokens = values("tokens")
    assert tokens["tokens_in"] == 90 and tokens["tokens_out"] == 9
