"""Metrics: small classes in a registry, each declaring direction, aggregation and interval.

A metric's `compute(results, labels)` returns MetricValues. Each aggregate carries a 95%
interval: Wilson for proportions, a seeded percentile bootstrap for everything else.
Per-example values (for paired tests and per-example reports) ride along in
`MetricValue.per_example`, aligned with the results (None where undefined); they are
never serialized by `to_dict`."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np

    from promptkit.evaluate import ExampleResult

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


@dataclass
class MetricValue:
    name: str
    value: float
    higher_is_better: bool | None = True  # None: informational (totals, counts)
    low: float | None = None  # 95% interval, where one is defined
    high: float | None = None
    unit: str = ""
    interval: str | None = None  # how low/high were computed: "wilson" or "bootstrap"
    n: int | None = None  # examples the value is computed over
    per_example: list[float | None] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "per_example"}


class Metric(ABC):
    """Computes one or more values over a run's results.

    Class attributes document the metric: `higher_is_better` (None: informational),
    `aggregate` (proportion, mean, macro, percentile, corpus, sum) and `interval`."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ("classification", "generation")
    higher_is_better: ClassVar[bool | None] = True
    aggregate: ClassVar[str] = "mean"
    interval: ClassVar[str] = "bootstrap"
    description: ClassVar[str] = ""

    @classmethod
    def check(cls) -> None:
        """Raise a PromptkitError if the metric cannot run here (e.g. a missing model); called before any model call."""
        return None

    @abstractmethod
    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]: ...


class ProportionMetric(Metric):
    """A yes/no judgement per example; the aggregate is the share of yes, with a Wilson interval.
    Subclasses implement `judge(result)` (None: the example does not count)."""

    aggregate = "proportion"
    interval = "wilson"

    @abstractmethod
    def judge(self, result: ExampleResult) -> bool | None: ...

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        judged = [self.judge(r) for r in results]
        counted = [j for j in judged if j is not None]
        n, yes = len(counted), sum(counted)
        low, high = wilson(yes, n)
        per_example: list[float | None] = [None if j is None else float(j) for j in judged]
        return [MetricValue(self.name, yes / n if n else 0.0, self.higher_is_better, low, high, interval="wilson", n=n,
                            per_example=per_example)]


class MeanMetric(Metric):
    """A score per example; the aggregate is the mean, with a bootstrap interval.
    Subclasses implement `scores(results)` (None: the example does not count)."""

    aggregate = "mean"
    interval = "bootstrap"
    unit: ClassVar[str] = ""

    @abstractmethod
    def scores(self, results: Sequence[ExampleResult]) -> list[float | None]: ...

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        per_example = self.scores(results)
        values = [s for s in per_example if s is not None]
        if not values:
            return []
        low, high = bootstrap_mean(values)
        return [MetricValue(self.name, sum(values) / len(values), self.higher_is_better, low, high, self.unit,
                            interval="bootstrap", n=len(values), per_example=per_example)]


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
    low, high = np.percentile(stats, [2.5, 97.5])
    return (float(low), float(high))


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


def interval_of(stats: Any) -> tuple[float, float]:
    """The central 95% of bootstrap statistics."""
    import numpy as np

    low, high = np.percentile(stats, [2.5, 97.5])
    return (float(low), float(high))


def bootstrap_mean(values: Sequence[float]) -> tuple[float, float] | tuple[None, None]:
    if not values:
        return (None, None)
    return interval_of(resampled_sums(values)[:, 0] / len(values))


def bootstrap_percentile(values: Sequence[float], q: float) -> tuple[float, float] | tuple[None, None]:
    import numpy as np

    return bootstrap(values, lambda sample: np.percentile(sample, q, axis=1))
