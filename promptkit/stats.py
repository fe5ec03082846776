"""The statistics promptkit uses, in one place: intervals, percentiles, bootstraps, macro-F1 and the
paired tests the gate (`promptkit check`) and `status`/`tune` decide with.

Nothing here imports from promptkit (it sits at the bottom of the import graph); numpy is imported
inside the functions that need it so `import promptkit` stays light.

Paired tests compare two runs on the same examples. Their evidence is the examples whose outcome
differs between the runs (the discordant ones): McNemar counts them, the paired permutation test
swaps them. With 3 discordant examples there are only 2**3 ways to swap them, so no test here can
give p below 1/8 from 3 examples, whatever the metric."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ALPHA = 0.05  # the significance level of every paired test: check, status and tune
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
PERMUTATION_EXACT_LIMIT = 16  # up to 2**16 sign flips are enumerated; more discordant examples: Monte Carlo
PERMUTATION_RESAMPLES = 20_000


# -- intervals and percentiles -------------------------------------------------------------------

def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def resample_blocks(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                    cells: int = 2_000_000) -> Iterator[np.ndarray]:
    """Bootstrap resamples of n example indices (drawn with replacement, seeded), yielded as
    (k, n) blocks of at most `cells` indices so memory stays bounded on large runs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    step = max(1, cells // max(1, n))
    for start in range(0, resamples, step):
        yield rng.integers(0, n, size=(min(step, resamples - start), n))


def bootstrap(values: Sequence[float] | Any, statistic: Callable[[np.ndarray], np.ndarray],
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | tuple[None, None]:
    """95% percentile-bootstrap interval over examples. `values` has one row per example;
    `statistic` maps a (k, n, ...) array of resampled rows to k numbers (one per resample)."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (None, None)
    stats = np.concatenate([statistic(data[block]) for block in resample_blocks(len(data), resamples, seed)])
    return interval_of(stats)


def resampled_sums(rows: Sequence[float] | Sequence[Sequence[float]] | Any, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Column sums of `rows` (one row per example) under each bootstrap resample: (resamples, columns).
    Counts how often each example is drawn and multiplies, so memory stays O(block x n)."""
    import numpy as np

    data = np.asarray(rows, dtype=float)
    n = len(data)
    data = data.reshape(n, -1)
    sums = []
    for block in resample_blocks(n, resamples, seed):
        k = len(block)
        weights = np.bincount((block + np.arange(k)[:, None] * n).ravel(), minlength=k * n).reshape(k, n)
        sums.append(weights @ data)
    return np.concatenate(sums)


def interval_of(stats: Any, level: float = 0.95) -> tuple[float, float]:
    """The central `level` share of bootstrap statistics."""
    import numpy as np

    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return (float(low), float(high))


def bootstrap_mean(values: Sequence[float]) -> tuple[float, float] | tuple[None, None]:
    if not values:
        return (None, None)
    return interval_of(resampled_sums(values)[:, 0] / len(values))


def bootstrap_percentile(values: Sequence[float], q: float) -> tuple[float, float] | tuple[None, None]:
    import numpy as np

    return bootstrap(values, lambda sample: np.percentile(sample, q, axis=1))


# -- macro precision / recall / F1 ----------------------------------------------------------------

def label_counts(expected: Sequence[str | None], predicted: Sequence[str | None], labels: Sequence[str]) -> np.ndarray:
    """(n, labels, 3) indicators: is each example a true positive, false positive, false negative for
    each label. A prediction outside the label set (failed, unparseable) is a false negative only."""
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    p_idx = np.array([index.get(p, -1) if p is not None else -1 for p in predicted], dtype=int)
    e_idx = np.array([index.get(e, -1) if e is not None else -1 for e in expected], dtype=int)
    columns = np.arange(len(labels))
    p, e = p_idx[:, None] == columns, e_idx[:, None] == columns
    return np.stack([p & e, p & ~e, ~p & e], axis=-1).astype(float).reshape(len(p_idx), len(labels), 3)


def macro_prf(counts: np.ndarray) -> np.ndarray:
    """Per-label and macro precision, recall, F1 from summed (..., labels, 3) counts -> (..., 3) macro
    values. A label with no prediction has precision 0 (sklearn's zero_division=0)."""
    return per_label_prf(counts).mean(-2)


def per_label_prf(counts: np.ndarray) -> np.ndarray:
    """(..., labels, 3) counts -> (..., labels, 3) precision, recall, F1."""
    import numpy as np

    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return np.stack([precision, recall, f1], axis=-1)


def macro_f1(expected: Sequence[str | None], predicted: Sequence[str | None], labels: Sequence[str]) -> float:
    if not labels:
        return 0.0
    return float(macro_prf(label_counts(expected, predicted, labels).sum(axis=0))[2])


# -- paired tests ---------------------------------------------------------------------------------

@dataclass
class TestResult:
    test: str
    delta: float  # new - baseline (observed)
    p_value: float  # one-sided: evidence that the new run is worse
    low: float | None = None  # bootstrap interval of the delta
    high: float | None = None
    discordant: int = 0  # examples whose outcome differs between the runs


def binom_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly (in log space beyond 1000 pairs)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if n <= 1000:
        return float(Fraction(sum(math.comb(n, i) for i in range(k, n + 1)), 2**n))
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(x - top) for x in logs))


def mcnemar_one_sided(worse: int, better: int) -> float:
    """Exact one-sided McNemar p-value that the new run is worse: among the discordant pairs
    (`worse`: right before, wrong now; `better`: the reverse), P(at least `worse` go wrong) when
    both directions are equally likely."""
    return binom_tail(worse, worse + better)


def mcnemar_two_sided(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value (is either run better?): the smaller binomial tail, doubled, capped at 1."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    return min(1.0, 2 * binom_tail(max(a_only, b_only), n))


@dataclass(frozen=True)
class McNemar:
    n: int  # paired examples
    a_only: int  # A right, B wrong
    b_only: int  # B right, A wrong
    p_value: float  # exact two-sided

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.p_value < alpha


def mcnemar(a: Sequence[Any], b: Sequence[Any]) -> McNemar:
    """Two-sided McNemar of two runs' results (objects or dicts with `id` and `correct`), paired by example id."""

    def correct(results: Sequence[Any]) -> dict[str, bool]:
        out = {}
        for r in results:
            rid, ok = (r["id"], r["correct"]) if isinstance(r, dict) else (r.id, r.correct)
            out[str(rid)] = bool(ok)
        return out

    ca, cb = correct(a), correct(b)
    shared = [k for k in ca if k in cb]
    a_only = sum(ca[k] and not cb[k] for k in shared)
    b_only = sum(cb[k] and not ca[k] for k in shared)
    return McNemar(len(shared), a_only, b_only, mcnemar_two_sided(a_only, b_only))


@dataclass
class Permutation:
    delta: float  # new - baseline, observed
    p_value: float  # one-sided: the new run is worse
    discordant: int  # examples whose rows differ between the runs
    low: float  # interval of the change: the permutation test inverted (see paired_permutation_test)
    high: float


def paired_permutation_test(base_rows: Any, new_rows: Any, statistic: Callable[[np.ndarray], np.ndarray],
                            higher_is_better: bool = True, level: float = 0.95, resamples: int = PERMUTATION_RESAMPLES,
                            seed: int = 0) -> Permutation:
    """One-sided paired permutation test that the new run is worse, with an interval of the change.

    `base_rows`/`new_rows` hold one row of additive statistics per example (e.g. a 0/1 outcome,
    a score, or tp/fp/fn counts); `statistic` maps (k, columns) column sums to k metric values.
    Under the null hypothesis each example's two rows are exchangeable, so the test swaps them:
    exactly over all 2**d swaps of the d discordant examples when d <= 16, else over `resamples`
    seeded random swaps (p = (hits + 1) / (resamples + 1)). For 0/1 outcomes this is exact McNemar.

    The interval inverts the same test under a shift model: the observed change minus the central
    `level` range of the changes the swaps produce. It is built from the same evidence as p (3
    discordant examples: 8 swaps), so it contains 0 when the change is not significant, unlike a
    bootstrap interval, which excludes 0 whenever every discordant example went the same way."""
    import numpy as np

    base = np.asarray(base_rows, dtype=float).reshape(len(base_rows), -1)
    new = np.asarray(new_rows, dtype=float).reshape(len(new_rows), -1)
    observed = float(statistic(new.sum(0)[None])[0] - statistic(base.sum(0)[None])[0])
    differs = np.any(base != new, axis=1)
    d = int(differs.sum())
    if d == 0:
        return Permutation(observed, 1.0, 0, observed, observed)
    same = base[~differs].sum(0)
    b, v = base[differs], new[differs]
    if d <= PERMUTATION_EXACT_LIMIT:
        swaps = ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(float)  # every subset of the d examples
        extra = 0
    else:
        swaps = np.random.default_rng(seed).integers(0, 2, size=(resamples, d)).astype(float)
        extra = 1  # the observed assignment counts once (Phipson & Smyth 2010)
    # swap = 1: the example's rows trade places between the runs
    new_side = same + swaps @ b + (1 - swaps) @ v
    base_side = same + swaps @ v + (1 - swaps) @ b
    deltas = statistic(new_side) - statistic(base_side)
    tol = 1e-12
    as_bad = deltas <= observed + tol if higher_is_better else deltas >= observed - tol
    p = (int(as_bad.sum()) + extra) / (len(swaps) + extra)
    tail = (1 - level) / 2 * 100
    # outer order statistics (no interpolation between swaps): the interval is never narrower than the test
    q_low = float(np.percentile(deltas, tail, method="lower"))
    q_high = float(np.percentile(deltas, 100 - tail, method="higher"))
    low, high = (0.0 if abs(x) < 1e-12 else x for x in (observed - q_high, observed - q_low))
    return Permutation(observed, min(1.0, p), d, low, high)


def paired_bootstrap_interval(base_rows: Any, new_rows: Any, statistic: Callable[[np.ndarray], np.ndarray],
                              level: float = 0.95, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of new - baseline when the examples (pairs) are resampled with replacement."""
    import numpy as np

    base = np.asarray(base_rows, dtype=float).reshape(len(base_rows), -1)
    new = np.asarray(new_rows, dtype=float).reshape(len(new_rows), -1)
    width = base.shape[1]
    sums = resampled_sums(np.concatenate([base, new], axis=1), seed=seed)
    return interval_of(statistic(sums[:, width:]) - statistic(sums[:, :width]), level)


def mean_of(n: int) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic of a mean over n examples, for the paired test and interval."""
    return lambda sums: sums[:, 0] / max(1, n)


def macro_f1_of(labels: int) -> Callable[[np.ndarray], np.ndarray]:
    """The macro-F1 statistic of flattened (labels x 3) count sums."""
    return lambda sums: macro_prf(sums.reshape(len(sums), labels, 3))[:, 2]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down), in the input order: comparing each with alpha
    keeps the chance of any false alarm among the tests at most alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
