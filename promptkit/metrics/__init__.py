"""Metric registry. A new metric is a small Metric subclass registered here.

Each registered class declares `higher_is_better`, `aggregate` and `interval`; every
aggregate comes with a 95% interval (Wilson for proportions, seeded bootstrap otherwise)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptkit.errors import ConfigError
from promptkit.metrics.base import MeanMetric, Metric, ProportionMetric
from promptkit.registry import Registry, load_project_object
from promptkit.results import ExampleResult

metrics: Registry[type[Metric]] = Registry("metric", group="promptkit.metrics")
metrics.register("accuracy", "promptkit.metrics.classification:Accuracy")
metrics.register("f1", "promptkit.metrics.classification:MacroPRF")
metrics.register("latency", "promptkit.metrics.usage:Latency")
metrics.register("tokens", "promptkit.metrics.usage:Tokens")
metrics.register("cost", "promptkit.metrics.usage:Cost")
metrics.register("errors", "promptkit.metrics.usage:Errors")
metrics.register("exact_match", "promptkit.metrics.text:ExactMatch")
metrics.register("bleu", "promptkit.metrics.text:Bleu")
metrics.register("rouge_l", "promptkit.metrics.text:RougeL")
metrics.register("relevance", "promptkit.metrics.relevance:Relevance")
metrics.register("answer_relevance", "promptkit.metrics.relevance:AnswerRelevance")

DEFAULT_METRICS = {
    "classification": ["accuracy", "f1", "latency", "tokens", "cost", "errors"],
    "generation": ["exact_match", "relevance", "answer_relevance", "bleu", "rouge_l", "latency", "tokens", "cost",
                   "errors"],
}


def per_example_scores(names: Sequence[str], results: Sequence[ExampleResult],
                       labels: Sequence[str] | None = None) -> dict[str, list[float | None]]:
    """Per-example values of the named metrics, aligned with `results` (None: the example does
    not count), keyed by value name (e.g. accuracy, relevance, bleu). Metrics without a
    per-example decomposition (f1, latency percentiles, totals) are left out."""
    out: dict[str, list[float | None]] = {}
    for name in names:
        for value in metrics.get(name)().compute(results, labels):
            if value.per_example is not None:
                out[value.name] = value.per_example
    return out


__all__ = ["DEFAULT_METRICS", "MeanMetric", "Metric", "ProportionMetric", "metrics", "per_example_scores",
           "resolve_metrics"]


def resolve_metrics(entries: Sequence[Any], root: Path, where: str) -> tuple[list[str], dict[str, type[Metric]]]:
    """A suite's `metrics:` list as names, plus the classes of its custom entries
    ({name, class: "module:Class"}) imported from the project folder `root`."""
    names: list[str] = []
    custom: dict[str, type[Metric]] = {}
    for entry in entries:
        if isinstance(entry, str):
            names.append(entry)
            continue
        name, target = entry.name, entry.class_
        cls = load_project_object(root, target, where, f"metric {name!r}")
        if not (isinstance(cls, type) and issubclass(cls, Metric)):
            raise ConfigError(f"metric {name!r}: {target} is not a promptkit Metric class", where=where,
                              hint="subclass promptkit.metrics.MeanMetric or ProportionMetric")
        custom[name] = type(cls.__name__, (cls,), {"name": name})  # reports under the suite's name for it
        names.append(name)
    return names, custom
