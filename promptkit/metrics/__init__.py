"""Metric registry. A new metric is a small Metric subclass registered here."""

from promptkit.metrics.base import Metric, MetricValue, percentile, wilson
from promptkit.registry import Registry

metrics: Registry[type[Metric]] = Registry("metric")
metrics.register("accuracy", "promptkit.metrics.classification:Accuracy")
metrics.register("f1", "promptkit.metrics.classification:MacroPRF")
metrics.register("latency", "promptkit.metrics.usage:Latency")
metrics.register("tokens", "promptkit.metrics.usage:Tokens")
metrics.register("cost", "promptkit.metrics.usage:Cost")
metrics.register("errors", "promptkit.metrics.usage:Errors")

DEFAULT_METRICS = {
    "classification": ["accuracy", "f1", "latency", "tokens", "cost", "errors"],
    "generation": ["latency", "tokens", "cost", "errors"],
}

__all__ = ["DEFAULT_METRICS", "Metric", "MetricValue", "metrics", "percentile", "wilson"]
