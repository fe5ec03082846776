"""promptkit.stats and the gate's decision function (promptkit.gate.decide), in process."""

from __future__ import annotations

import random

import pytest

from promptkit.gate.decide import baseline_checks, f1_test, outcome_test
from promptkit.gate.thresholds import Thresholds
from promptkit.stats import (
    binom_tail,
    holm,
    macro_f1,
    mcnemar_one_sided,
    mcnemar_two_sided,
    mean_of,
    paired_bootstrap_interval,
    paired_permutation_test,
    percentile,
)
from tests.helpers.projects import ROOT

LABELS = ["negative", "positive"]
N = 60


def test_one_and_two_sided_mcnemar() -> None:
    assert binom_tail(0, 5) == 1.0 and binom_tail(5, 5) == 1 / 32
    assert mcnemar_one_sided(2, 0) == 0.25
    assert mcnemar_one_sided(3, 0) == 0.125
    assert mcnemar_one_sided(10, 0) == pytest.approx(1 / 1024)
    assert mcnemar_one_sided(0, 0) == 1.0
    assert mcnemar_two_sided(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_two_sided(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_two_sided(5, 5) == 1.0
    assert mcnemar_two_sided(10, 60) < 1e-8


def test_one_mcnemar_one_percentile_one_macro_f1_in_the_package() -> None:
    package = ROOT / "promptkit"
    text = {p: p.read_text(encoding="utf-8") for p in package.rglob("*.py")}
    for definition in ("def mcnemar", "def percentile", "def _percentile", "def macro_f1", "def wilson", "def binom_tail"):
        where = [p.relative_to(package).as_posix() for p, t in text.items() if definition + "(" in t]
        assert where in ([], ["stats.py"]), (definition, where)
    assert not (package / "tune" / "stats.py").exists() and not (package / "gate" / "stats.py").exists()


def test_stats_imports_nothing_from_promptkit() -> None:
    source = (ROOT / "promptkit" / "stats.py").read_text(encoding="utf-8")
    assert "\nfrom promptkit" not in source and "\nimport promptkit" not in source


def test_percentile_and_macro_f1() -> None:
    assert percentile([0.1, 0.2, 0.3, 0.4], 50) == pytest.approx(0.25)
    assert percentile([], 95) == 0.0
    assert macro_f1(["positive", "negative"], ["positive", "negative"], LABELS) == 1.0
    assert macro_f1(["positive", "negative"], ["positive", "positive"], LABELS) == pytest.approx((2 / 3 + 0) / 2)
    assert macro_f1(["positive", "negative"], [None, "negative"], LABELS) == pytest.approx((1 + 0) / 2)


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([]) == []


def test_permutation_test_is_exact_mcnemar_on_outcomes_and_seeded_beyond_16() -> None:
    base = [1.0] * 57 + [0.0] * 3
    new = [0.0] * 3 + [1.0] * 54 + [0.0] * 3
    perm = paired_permutation_test(base, new, mean_of(60))
    assert (perm.discordant, perm.p_value) == (3, 0.125) and perm.delta == pytest.approx(-3 / 60)
    worse = [0.0] * 20 + [1.0] * 40
    big = paired_permutation_test([1.0] * 60, worse, mean_of(60))
    assert big == paired_permutation_test([1.0] * 60, worse, mean_of(60))  # seeded
    assert big.p_value < 1e-4 and big.discordant == 20
    same = paired_permutation_test(base, base, mean_of(60))
    assert same.p_value == 1.0 and same.low == same.high == 0.0


def test_the_interval_agrees_with_the_test() -> None:
    """3 worse, 0 better: not significant, and the interval reaches 0; 6 worse: significant, it does not."""
    base = [1.0] * 60
    three = paired_permutation_test(base, [0.0] * 3 + [1.0] * 57, mean_of(60))
    assert three.high == 0.0 and three.low == pytest.approx(-6 / 60)
    six = paired_permutation_test(base, [0.0] * 6 + [1.0] * 54, mean_of(60))
    assert six.p_value == pytest.approx(1 / 64) and six.high < 0


def test_paired_bootstrap_interval_is_seeded_and_covers_the_change() -> None:
    base, new = [1.0] * 50 + [0.0] * 10, [1.0] * 30 + [0.0] * 30
    low, high = paired_bootstrap_interval(base, new, mean_of(60))
    assert (low, high) == paired_bootstrap_interval(base, new, mean_of(60))
    assert low < -20 / 60 < high < 0


def _predictions(expected: list[str], correct: list[bool]) -> list[str]:
    return [e if ok else LABELS[1 - LABELS.index(e)] for e, ok in zip(expected, correct, strict=True)]


def test_f1_and_accuracy_agree_on_3_worse_0_better() -> None:
    """The issue's case: accuracy's McNemar gave p=0.125 while F1's bootstrap gave p=0.045."""
    expected = [LABELS[i % 2] for i in range(N)]
    before = _predictions(expected, [i >= 6 for i in range(N)])  # 54 of 60 right
    after = _predictions(expected, [i >= 6 and i not in (10, 11, 12) for i in range(N)])
    _, _, f1 = f1_test(expected, before, after, LABELS)
    acc = outcome_test([float(b == e) for b, e in zip(before, expected, strict=True)],
                       [float(a == e) for a, e in zip(after, expected, strict=True)])
    assert f1.p_value >= 0.125 and acc.p_value == 0.125
    checks, _ = _decide(expected, before, after)
    assert all(c.passed for c in checks), [c.message for c in checks]


def _outcomes(expected: list[str], predictions: list[str]) -> dict[str, dict]:
    return {f"e{i}": {"correct": int(p == e), "prediction": p} for i, (e, p) in enumerate(zip(expected, predictions,
                                                                                             strict=True))}


def _decide(expected: list[str], before: list[str], after: list[str], alpha: float = 0.05) -> tuple[list, list]:
    return baseline_checks(_outcomes(expected, before), _outcomes(expected, after), ["accuracy", "f1_macro"], (),
                           LABELS, {f"e{i}": e for i, e in enumerate(expected)}, Thresholds(), alpha)


def _draw(rng: random.Random, rates: list[float], expected: list[str]) -> list[str]:
    return _predictions(expected, [rng.random() < r for r in rates])


def _rates(rng: random.Random, mean: float) -> list[float]:
    """Per-example chance of being right: most examples easy, some hard, averaging `mean`."""
    hard = [rng.random() < 0.25 for _ in range(N)]
    easy_rate, hard_rate = 0.98, max(0.0, (mean - 0.75 * 0.98) / 0.25)
    return [hard_rate if h else easy_rate for h in hard]


def false_alarms(trials: int = 200, mean: float = 0.9) -> int:
    """Working copies equal in quality to the baseline: each example's correctness re-drawn with
    the same per-example rate. Returns how many of the seeded trials `check` fails."""
    fails = 0
    for seed in range(trials):
        rng = random.Random(seed)
        expected = [LABELS[rng.randrange(2)] for _ in range(N)]
        rates = _rates(rng, mean)
        checks, _ = _decide(expected, _draw(rng, rates, expected), _draw(rng, rates, expected))
        fails += any(not c.passed for c in checks)
    return fails


def detections(trials: int = 200) -> int:
    """Working copies that really got worse, 90% -> 80%: the baseline's right answers each turn
    wrong with the probability that brings the mean to 80%, examples it got wrong stay wrong."""
    caught = 0
    for seed in range(trials):
        rng = random.Random(10_000 + seed)
        expected = [LABELS[rng.randrange(2)] for _ in range(N)]
        before_right = [rng.random() < 0.9 for _ in range(N)]
        after_right = [r and rng.random() < 0.8 / 0.9 for r in before_right]
        checks, _ = _decide(expected, _predictions(expected, before_right), _predictions(expected, after_right))
        caught += any(not c.passed for c in checks)
    return caught


def test_equal_quality_working_copies_pass_at_least_95_percent_of_200_trials() -> None:
    fails = false_alarms()
    assert fails <= 10, f"{fails} false alarms in 200"


def test_a_drop_from_90_to_80_percent_on_60_examples_fails() -> None:
    expected = [LABELS[i % 2] for i in range(N)]
    before = _predictions(expected, [i >= 6 for i in range(N)])  # 90%
    after = _predictions(expected, [i >= 12 for i in range(N)])  # 80%: 6 worse, 0 better
    checks, _ = _decide(expected, before, after)
    failed = {c.metric for c in checks if not c.passed}
    assert failed == {"accuracy", "f1_macro"}, [c.message for c in checks]
    accuracy = next(c for c in checks if c.metric == "accuracy")
    assert "dropped 10.0 pt" in accuracy.message and "Holm" in accuracy.message
    assert accuracy.raw_p_value == pytest.approx(1 / 64) and accuracy.p_value == pytest.approx(2 / 64)
    assert detections() >= 120  # power, in README: 127 of 200 random 90% -> 80% drops fail


def test_direction_and_kind_come_from_the_metric_not_its_name() -> None:
    """A lower-is-better score that rose got worse; a proportion metric's drop is in points."""
    from promptkit.gate.decide import compare_outcomes, decide

    base = {f"e{i}": {"correct": None, "prediction": "x", "scores": {"toxicity": 0.1, "judge_pass": 1.0}}
            for i in range(20)}
    new = {f"e{i}": {"correct": None, "prediction": "y", "scores": {"toxicity": 0.9, "judge_pass": 0.0 if i < 10 else 1.0}}
           for i in range(20)}
    kinds = {"toxicity": "mean", "judge_pass": "proportion"}
    comparisons, _ = compare_outcomes(base, new, ["toxicity", "judge_pass"], ["toxicity", "judge_pass"], None, {},
                                      direction=lambda name: name != "toxicity", kind=kinds.get)
    by_name = {c.metric: c for c in comparisons}
    assert len(by_name["toxicity"].worse_ids) == 20 and by_name["toxicity"].result.p_value < 1e-3
    assert by_name["judge_pass"].percent and not by_name["toxicity"].percent
    assert by_name["judge_pass"].result.test.startswith("exact McNemar")
    checks = {c.metric: c for c in decide(comparisons, Thresholds(), 0.05)}
    assert not checks["toxicity"].passed and "toxicity rose 0.8000" in checks["toxicity"].message


def test_values_format_by_their_kind() -> None:
    from promptkit.report.format import fmt

    assert fmt("judge_pass", 0.9, kind="proportion") == "90.0%"
    assert fmt("accuracy", 0.9) == "90.0%"  # a stored value without a kind
    assert fmt("tokens_in", 12345.0, kind="sum") == "12,345"
    assert fmt("relevance", 0.9, kind="mean") == "0.900"
