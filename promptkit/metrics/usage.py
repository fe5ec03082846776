"""Latency, tokens, cost and failures: what a run spent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from promptkit.metrics.base import Metric, MetricValue
from promptkit.stats import bootstrap_mean, bootstrap_percentile, percentile, wilson

if TYPE_CHECKING:
    from promptkit.evaluate import ExampleResult


class Latency(Metric):
    """Median and 95th-percentile latency of the examples actually sent to the model (cache hits excluded)."""

    name = "latency"
    higher_is_better = False
    aggregate = "percentile"
    description = "p50 / p95 seconds per example, cache hits excluded"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        times = [r.latency for r in results if not r.cached]
        out = []
        for q in (50, 95):
            low, high = bootstrap_percentile(times, q)
            out.append(MetricValue(f"latency_p{q}", percentile(times, q), False, low, high, unit="s",
                                   interval="bootstrap" if times else None, n=len(times)))
        out.append(MetricValue("latency_total", sum(times), None, unit="s", n=len(times)))
        return out


class Tokens(Metric):
    name = "tokens"
    higher_is_better = False
    description = "tokens in/out (totals) and tokens per example (mean)"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        n = len(results)
        tokens_in = sum(r.tokens_in for r in results)
        tokens_out = sum(r.tokens_out for r in results)
        low, high = bootstrap_mean([r.tokens_in + r.tokens_out for r in results])
        return [
            MetricValue("tokens_in", tokens_in, None, n=n),
            MetricValue("tokens_out", tokens_out, None, n=n),
            MetricValue("tokens_per_example", (tokens_in + tokens_out) / max(1, n), False, low, high,
                        interval="bootstrap" if n else None, n=n),
        ]


class Cost(Metric):
    name = "cost"
    higher_is_better = False
    description = "money per run (total) and per example (mean)"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        n = len(results)
        total = sum(r.cost for r in results)
        low, high = bootstrap_mean([r.cost for r in results])
        return [
            MetricValue("cost_total", total, None, unit="$", n=n),
            MetricValue("cost_per_example", total / max(1, n), False, low, high, unit="$",
                        interval="bootstrap" if n else None, n=n),
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
        return [MetricValue("error_rate", failed / max(1, n), False, low, high, interval="wilson", n=n)]
