"""Paired statistics for the gate: exact McNemar on discordant pairs, and a seeded paired bootstrap.

Both answer one directional question: did the new run get worse than the baseline on the same examples?"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class TestResult:
    test: str
    delta: float  # new - baseline (observed)
    p_value: float
    low: float  # interval of the delta at level 1 - alpha
    high: float


def binom_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def mcnemar_exact(worse: int, better: int) -> float:
    """One-sided exact McNemar p-value that the new run is worse: among the discordant pairs
    (`worse`: right before, wrong now; `better`: the reverse), P(at least `worse` go wrong) under
    the null hypothesis that both directions are equally likely."""
    return binom_tail(worse, worse + better)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = (len(sorted_values) - 1) * q
    lo, hi = math.floor(rank), math.ceil(rank)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (rank - lo)


def paired_bootstrap(
    statistic: Callable[[Sequence[int]], tuple[float, float]],
    n: int,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
    higher_is_better: bool = True,
) -> TestResult:
    """Resample example indices with replacement; `statistic(indices)` returns (baseline, new) on
    that resample. p is the one-sided share of resamples where the new run is not worse
    (Koehn 2004 style); the interval is the percentile interval of new - baseline."""
    base, new = statistic(range(n))
    delta = new - base
    rng = random.Random(seed)
    deltas = []
    not_worse = 0
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        b, v = statistic(idx)
        d = v - b
        deltas.append(d)
        if (d >= 0) if higher_is_better else (d <= 0):
            not_worse += 1
    deltas.sort()
    p = (not_worse + 1) / (resamples + 1)
    return TestResult("paired bootstrap", delta, min(1.0, p), _percentile(deltas, alpha / 2), _percentile(deltas, 1 - alpha / 2))


def mean_statistic(base: Sequence[float], new: Sequence[float]) -> Callable[[Sequence[int]], tuple[float, float]]:
    def statistic(idx: Sequence[int]) -> tuple[float, float]:
        k = max(1, len(idx))
        return sum(base[i] for i in idx) / k, sum(new[i] for i in idx) / k

    return statistic


def macro_f1(expected: Sequence[str | None], predicted: Sequence[str | None], labels: Sequence[str]) -> float:
    tp = dict.fromkeys(labels, 0)
    fp = dict.fromkeys(labels, 0)
    fn = dict.fromkeys(labels, 0)
    for e, p in zip(expected, predicted, strict=True):
        if e == p:
            if e in tp:
                tp[e] += 1
            continue
        if p in fp:
            fp[p] += 1
        if e in fn:
            fn[e] += 1
    total = sum(2 * tp[x] / (2 * tp[x] + fp[x] + fn[x]) for x in labels if tp[x])
    return total / max(1, len(labels))


def f1_statistic(
    expected: Sequence[str | None], base: Sequence[str | None], new: Sequence[str | None], labels: Sequence[str]
) -> Callable[[Sequence[int]], tuple[float, float]]:
    def statistic(idx: Sequence[int]) -> tuple[float, float]:
        e = [expected[i] for i in idx]
        return macro_f1(e, [base[i] for i in idx], labels), macro_f1(e, [new[i] for i in idx], labels)

    return statistic


def accuracy_test(base: Sequence[float], new: Sequence[float], alpha: float, seed: int = 0) -> TestResult:
    """Paired accuracy: exact McNemar when both sides are 0/1 outcomes, else (repeated runs give a
    fraction correct per example) a paired bootstrap on those fractions. The interval is the
    paired bootstrap interval of the accuracy difference either way."""
    boot = paired_bootstrap(mean_statistic(base, new), len(base), alpha, seed=seed)
    binary = all(v in (0.0, 1.0) for v in (*base, *new))
    if not binary:
        return boot
    worse = sum(b == 1.0 and v == 0.0 for b, v in zip(base, new, strict=True))
    better = sum(b == 0.0 and v == 1.0 for b, v in zip(base, new, strict=True))
    return TestResult("exact McNemar (one-sided)", boot.delta, mcnemar_exact(worse, better), boot.low, boot.high)


def score_test(metric: str, base: Sequence[float], new: Sequence[float], alpha: float, seed: int = 0) -> TestResult:
    """Paired test of a per-example metric (generation: relevance, answer_relevance, bleu, rouge_l,
    exact_match): a one-sided paired bootstrap on the mean; exact_match's 0/1 outcomes take exact
    McNemar as accuracy does."""
    if metric == "exact_match":
        return accuracy_test(base, new, alpha, seed)
    return paired_bootstrap(mean_statistic(base, new), len(base), alpha, seed=seed)
