"""Metrics: small classes in a registry, each declaring direction, aggregation and interval.

A metric's `compute(results, labels)` returns MetricValues. Each aggregate carries a 95%
interval: Wilson for proportions, a seeded percentile bootstrap for everything else.
Per-example values (for paired tests and per-example reports) ride along in
`MetricValue.per_example`, aligned with the results (None where undefined); they are
never serialized by `to_dict`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from promptkit.results import ExampleResult, MetricValue
from promptkit.stats import bootstrap_mean, wilson


class Metric(ABC):
    """Computes one or more values over a run's results.

    Class attributes document the metric: `higher_is_better` (None: informational),
    `aggregate` (proportion, mean, macro, percentile, corpus, sum), `interval` and `paired` (how the
    gate compares it with a baseline; see MetricValue.paired)."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ("classification", "generation")
    higher_is_better: ClassVar[bool | None] = True
    aggregate: ClassVar[str] = "mean"
    interval: ClassVar[str] = "bootstrap"
    description: ClassVar[str] = ""
    paired: ClassVar[str | None] = None

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
                            kind=self.aggregate, paired=self.paired, per_example=per_example)]


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
                            interval="bootstrap", n=len(values), kind=self.aggregate, paired=self.paired,
                            per_example=per_example)]
