"""Metric registry, intervals and the text metrics against hand-computed values."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from promptkit.metrics import DEFAULT_METRICS, metrics, per_example_scores
from promptkit.metrics.classification import Accuracy, MacroPRF
from promptkit.metrics.text import Bleu, ExactMatch, RougeL, bleu_from_stats, bleu_stats, rouge_l, tokenize_13a
from promptkit.metrics.usage import Errors, Latency
from promptkit.results import MetricValue
from promptkit.stats import bootstrap_mean, bootstrap_percentile, wilson
from tests.helpers.projects import ROOT
from tests.helpers.sample_runs import classification_run, example_result


def test_wilson_hand_computed() -> None:
    # p = .8, n = 10: centre (p + z²/2n)/(1 + z²/n) = .71674, half = z·sqrt(p(1-p)/n + z²/4n²)/(1 + z²/n) = .22656
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.49016, abs=1e-5) and high == pytest.approx(0.94332, abs=1e-5)
    assert wilson(0, 10) == (0.0, pytest.approx(0.27754, abs=1e-5))
    assert wilson(0, 0) == (0.0, 0.0)


def test_bootstrap_is_seeded_and_sensible() -> None:
    values = [float(i % 5) for i in range(200)]
    low, high = bootstrap_mean(values)
    assert (low, high) == bootstrap_mean(values)  # seeded: same interval every time
    assert low is not None and high is not None and low < 2.0 < high
    wide_low, wide_high = bootstrap_mean(values[:20])
    assert wide_high - wide_low > high - low  # fewer examples, wider interval
    assert bootstrap_mean([3.0] * 7) == (3.0, 3.0)
    assert bootstrap_mean([]) == (None, None)
    p_low, p_high = bootstrap_percentile([0.1 * i for i in range(100)], 50)
    assert p_low is not None and p_high is not None and p_low < 4.95 < p_high


def test_accuracy_is_a_proportion_with_wilson_interval() -> None:
    rs = [example_result("a", "a", correct=True), example_result("a", "b", correct=True), example_result("b", "a", correct=False),
          example_result(None, "x", correct=None)]
    [value] = Accuracy().compute(rs, None)
    assert value.value == pytest.approx(2 / 3) and value.n == 3 and value.interval == "wilson"
    assert (value.low, value.high) == wilson(2, 3)
    assert value.per_example == [1.0, 1.0, 0.0, None]
    assert "per_example" not in value.to_dict()


def test_macro_f1_hand_computed_with_bootstrap_interval() -> None:
    # a: tp 1 fp 0 fn 1 -> P 1, R .5, F1 2/3;  b: tp 2 fp 1 fn 0 -> P 2/3, R 1, F1 .8
    pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("b", "b")]
    rs = [example_result(e, p, prediction=p) for e, p in pairs]
    values = {v.name: v for v in MacroPRF().compute(rs, ["a", "b"])}
    assert values["precision_macro"].value == pytest.approx((1 + 2 / 3) / 2)
    assert values["recall_macro"].value == pytest.approx(0.75)
    assert values["f1_macro"].value == pytest.approx((2 / 3 + 0.8) / 2)
    f1 = values["f1_macro"]
    assert f1.interval == "bootstrap" and f1.low is not None and f1.high is not None
    assert 0 <= f1.low <= f1.value <= f1.high <= 1


def test_bleu_hand_computed() -> None:
    # n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths: BLEU = (1/12) ** (1/4)
    assert tokenize_13a("Hello, world. It's 3.5-4!") == ["Hello", ",", "world", ".", "It's", "3.5", "-", "4", "!"]
    stats = bleu_stats("the cat sat on the mat", "the cat sat on a mat")
    assert stats == [5, 3, 2, 1, 6, 5, 4, 3, 6, 6]
    assert bleu_from_stats(stats) == pytest.approx((1 / 12) ** 0.25)
    assert bleu_from_stats(bleu_stats("a b c", "a b c")) == 0.0  # corpus BLEU needs 4-grams (as sacrebleu)
    assert bleu_from_stats(bleu_stats("a b c", "a b c"), effective_order=True) == pytest.approx(1.0)
    # sentence BLEU, brevity penalty exp(1 - 6/2)
    assert bleu_from_stats(bleu_stats("the cat", "the cat sat on the mat"), True) == pytest.approx(math.exp(-2))
    assert bleu_from_stats(bleu_stats("x y z", "a b c"), True) == 0.0


def test_corpus_bleu_sums_statistics() -> None:
    # summed matches 4,3,2,1 over totals 8,6,4,2: every precision 1/2, lengths equal -> 0.5
    rs = [example_result("a b c d", "a b c d"), example_result("w x y z", "a b c d"), example_result("no reference", "x", id="3")]
    rs[2].expected = None
    [value] = Bleu().compute(rs, None)
    assert value.value == pytest.approx(0.5) and value.n == 2
    assert value.per_example == [pytest.approx(1.0), 0.0, None]
    assert value.low is not None and value.high is not None and value.low <= 0.5 <= value.high


def test_rouge_l_hand_computed() -> None:
    assert rouge_l("the cat sat on the mat", "the cat sat on a mat") == pytest.approx(5 / 6)  # LCS 5 of 6 and 6
    assert rouge_l("A B", "b a") == pytest.approx(0.5)  # LCS 1: P = R = 1/2
    assert rouge_l("the cat", "the cat sat on the mat") == pytest.approx(2 * 1 * (2 / 6) / (1 + 2 / 6))
    assert rouge_l("", "x") == 0.0
    rs = [example_result("the cat sat on a mat", "the cat sat on the mat"), example_result("x", "y", error="boom")]
    [value] = RougeL().compute(rs, None)
    assert value.value == pytest.approx((5 / 6 + 0) / 2)  # a failed example scores 0


def test_exact_match() -> None:
    rs = [example_result("Paris", "  paris "), example_result("Paris", "Paris, France"),
          example_result("Paris", "", error="timeout"), example_result(None, "anything")]
    [value] = ExactMatch().compute(rs, None)
    assert value.value == pytest.approx(1 / 3) and value.n == 3 and value.interval == "wilson"
    assert value.per_example == [1.0, 0.0, 0.0, None]


def test_latency_and_errors_have_intervals() -> None:
    rs = [example_result("a", "a", latency=0.01 * i, cached=i % 10 == 0, error="x" if i % 4 == 0 else None) for i in range(40)]
    values = {v.name: v for v in Latency().compute(rs, None) + Errors().compute(rs, None)}
    p50 = values["latency_p50"]
    assert p50.n == 36 and p50.low is not None and p50.high is not None and p50.low <= p50.value <= p50.high
    assert values["error_rate"].value == 0.25 and (values["error_rate"].low, values["error_rate"].high) == wilson(10, 40)


def test_registry_declares_direction_aggregation_and_interval() -> None:
    names = metrics.names()
    for name in ("relevance", "answer_relevance", "bleu", "rouge_l", "exact_match"):
        assert name in names and name in DEFAULT_METRICS["generation"]
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Metrics and reports"):]
    for name in names:
        cls = metrics.get(name)
        assert cls.higher_is_better in (True, False, None)
        assert cls.aggregate in ("proportion", "mean", "macro", "percentile", "corpus")
        assert cls.interval in ("wilson", "bootstrap")
        assert re.search(rf"\| `{name}` \|", section), f"README metric table misses {name}"


def test_every_aggregate_of_a_run_has_an_interval(tmp_path: Path) -> None:
    run = classification_run(tmp_path, fail_every=7)
    for m in run.metrics:
        if m.higher_is_better is not None:  # totals are informational
            assert m.low is not None and m.high is not None and m.low <= m.value + 1e-12 and m.value <= m.high + 1e-12, m
    scores = per_example_scores(["accuracy", "f1", "latency"], run.results, run.plan.labels)
    assert list(scores) == ["accuracy"] and len(scores["accuracy"]) == len(run.results)


def test_metric_value_serializes_without_per_example() -> None:
    value = MetricValue("x", 0.5, True, 0.4, 0.6, per_example=[1.0, 0.0])
    assert value.to_dict() == {"name": "x", "value": 0.5, "higher_is_better": True, "low": 0.4, "high": 0.6, "unit": "",
                               "interval": None, "n": None}


def test_macro_f1_agrees_with_per_label_counts() -> None:
    import random

    from promptkit.metrics.classification import per_label

    rng = random.Random(3)
    labels = ["a", "b", "c"]
    rs = [example_result(rng.choice(labels), "", prediction=rng.choice([*labels, None])) for _ in range(200)]
    expected = sum(s["f1"] for s in per_label(rs, labels).values()) / 3
    f1 = next(v for v in MacroPRF().compute(rs, labels) if v.name == "f1_macro")
    assert f1.value == pytest.approx(expected)


def test_importing_metrics_loads_no_heavy_library() -> None:
    import subprocess
    import sys

    code = ("import sys, promptkit.evaluate, promptkit.metrics, promptkit.report; "
            "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
