"""Latency, tokens, cost and failures: what a run spent."""

from __future__ import annotations

from collections.abc import Sequence

from promptkit.metrics.base import Metric
from promptkit.results import ExampleResult, MetricValue
from promptkit.stats import bootstrap_mean, bootstrap_percentile, percentile, wilson


def per_example(name: str, values: Sequence[float], unit: str = "") -> MetricValue:
    """The mean of one number per example, with its bootstrap interval (lower is better)."""
    n = len(values)
    low, high = bootstrap_mean(list(values))
    return MetricValue(name, sum(values) / max(1, n), False, low, high, unit=unit,
                       interval="bootstrap" if n else None, n=n, kind="mean")


def latency_samples(results: Sequence[ExampleResult]) -> tuple[list[float], str]:
    """What was measured, and how: (samples, kind). Cache hits are left out. A provider that times
    each call (API providers) gives one sample per example ("per call"); a local batch is timed as
    a whole and its time shared among its examples, which then carry the very same latency: those
    count as one sample per batch ("per batch, amortised per example"), so p95 and the interval
    are over the batches actually timed, not over copies of one number."""
    measured = [r.latency for r in results if not r.cached]
    groups: list[list[float]] = []
    for value in measured:
        if groups and groups[-1][0] == value and value > 0:
            groups[-1].append(value)
        else:
            groups.append([value])
    if any(len(g) > 1 for g in groups):
        return [g[0] for g in groups], "per batch, amortised per example"
    return measured, "per call"


class Latency(Metric):
    """Median and 95th-percentile latency of the examples actually sent to the model (cache hits
    excluded; nothing when all came from the cache: latency was not measured)."""

    name = "latency"
    higher_is_better = False
    aggregate = "percentile"
    description = "p50 / p95 seconds per example (per call, or per batch amortised per example), cache hits excluded"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        samples, kind = latency_samples(results)
        if not samples:
            return []
        cached = sum(r.cached for r in results)
        note = f"{kind}, over {len(samples)} {'batches' if kind.startswith('per batch') else 'calls'}" + (
            f"; {cached} cached examples left out" if cached else "")
        out = []
        for q in (50, 95):
            low, high = bootstrap_percentile(samples, q) if len(samples) > 1 else (None, None)
            out.append(MetricValue(f"latency_p{q}", percentile(samples, q), False, low, high, unit="s",
                                   interval="bootstrap" if low is not None else None, n=len(samples),
                                   kind=self.aggregate, note=note))
        total = sum(r.latency for r in results if not r.cached)
        out.append(MetricValue("latency_total", total, None, unit="s", n=len(samples), kind="sum", note=note))
        return out


class Tokens(Metric):
    name = "tokens"
    higher_is_better = False
    description = "tokens in/out (totals) and tokens per example (mean)"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        n = len(results)
        return [
            MetricValue("tokens_in", sum(r.tokens_in for r in results), None, n=n, kind="sum"),
            MetricValue("tokens_out", sum(r.tokens_out for r in results), None, n=n, kind="sum"),
            per_example("tokens_per_example", [r.tokens_in + r.tokens_out for r in results]),
        ]


class Cost(Metric):
    name = "cost"
    higher_is_better = False
    description = "money per run (total) and per example (mean)"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        costs = [r.cost for r in results]
        return [
            MetricValue("cost_total", sum(costs), None, unit="$", n=len(costs), kind="sum"),
            per_example("cost_per_example", costs, unit="$"),
        ]


class Errors(Metric):
    name = "errors"
    higher_is_better = False
    aggregate = "proportion"
    interval = "wilson"
    description = "share of examples whose model call failed"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        n = len(results)
        failed = sum(r.error is not None for r in results)
        low, high = wilson(failed, n)
        return [MetricValue("error_rate", failed / max(1, n), False, low, high, interval="wilson", n=n,
                            kind=self.aggregate)]
