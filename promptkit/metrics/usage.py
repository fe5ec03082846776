"""Latency, tokens, cost and failures: what a run spent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from promptkit.metrics.base import Metric, MetricValue, percentile

if TYPE_CHECKING:
    from promptkit.evaluate import ExampleResult


class Latency(Metric):
    name = "latency"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        times = [r.latency for r in results if not r.cached]
        return [
            MetricValue("latency_p50", percentile(times, 50), False, unit="s"),
            MetricValue("latency_p95", percentile(times, 95), False, unit="s"),
            MetricValue("latency_total", sum(times), None, unit="s"),
        ]


class Tokens(Metric):
    name = "tokens"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        n = max(1, len(results))
        tokens_in = sum(r.tokens_in for r in results)
        tokens_out = sum(r.tokens_out for r in results)
        return [
            MetricValue("tokens_in", tokens_in, None),
            MetricValue("tokens_out", tokens_out, None),
            MetricValue("tokens_per_example", (tokens_in + tokens_out) / n, False),
        ]


class Cost(Metric):
    name = "cost"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        total = sum(r.cost for r in results)
        return [
            MetricValue("cost_total", total, None, unit="$"),
            MetricValue("cost_per_example", total / max(1, len(results)), False, unit="$"),
        ]


class Errors(Metric):
    name = "errors"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        failed = sum(r.error is not None for r in results)
        return [MetricValue("error_rate", failed / max(1, len(results)), False)]
