"""The data every layer passes around, at the bottom of the import graph.

A model call's Request and Response, one example's ExampleResult, a metric's MetricValue and
a run's EvalRun. Pure data: this module imports nothing from promptkit, so any module can use
these types without pulling in the loop, the providers or the metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar


@dataclass
class Request:
    """One example's rendered prompt and how to decode it."""

    id: str
    text: str | None = None  # plain-text prompt ...
    messages: list[dict[str, str]] | None = None  # ... or chat messages
    labels: list[str] | None = None  # classification: score each label as the continuation
    label_prefix: str = ""
    max_tokens: int = 64
    temperature: float = 0.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Response:
    """The outcome of one request, failed or not."""

    output: str = ""
    error: str | None = None
    scores: dict[str, float] | None = None  # label -> total log-likelihood
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency: float = 0.0  # seconds; a batch's time is shared among its examples
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ExampleResult:
    id: str
    index: int
    input: dict[str, Any]
    expected: str | None
    output: str
    prediction: str | None
    correct: bool | None
    error: str | None = None
    scores: dict[str, float] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency: float = 0.0
    cached: bool = False
    assertions: list[dict[str, Any]] | None = None  # one outcome per assertion (promptkit.assertions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: object) -> bool:
    return isinstance(value, str)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _scores(value: object) -> bool:
    # None for a score: the run store writes NaN and infinities as null
    return value is None or (isinstance(value, dict) and all(
        isinstance(k, str) and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                              and math.isfinite(v))) for k, v in value.items()))


# The type each stored field of a Response or an ExampleResult must have when it is read back.
_FIELD_CHECKS: dict[str, Callable[[object], bool]] = {
    "id": _text, "output": _text, "index": _count, "tokens_in": _count, "tokens_out": _count,
    "cost": _number, "latency": _number, "scores": _scores,
    "error": lambda v: v is None or _text(v), "expected": lambda v: v is None or _text(v),
    "prediction": lambda v: v is None or _text(v), "correct": lambda v: v is None or isinstance(v, bool),
    "cached": lambda v: isinstance(v, bool), "input": lambda v: isinstance(v, dict),
    "assertions": lambda v: v is None or (isinstance(v, list) and all(isinstance(a, dict) for a in v)),
}

# A run's results keep a provider's NaN or infinite cost and latency: the run store writes them as null.
# (A cached answer holding one is no answer to replay: the cache reads it as a miss.)
_RESULT_CHECKS = {**_FIELD_CHECKS, "cost": lambda v: v is None or _number(v), "latency": lambda v: v is None or _number(v)}

T = TypeVar("T", "Response", "ExampleResult")


def from_stored(cls: type[T], data: object) -> T:
    """A Response or ExampleResult from the JSON object a file holds (the cache, the run store), every
    field's type checked: a damaged or hand-edited record raises ValueError or TypeError here, rather
    than a TypeError in whatever sums its cost or reads its scores later."""
    if not isinstance(data, dict):
        raise TypeError(f"expected an object, got {type(data).__name__}")
    item = cls(**data)
    checks = _RESULT_CHECKS if cls is ExampleResult else _FIELD_CHECKS
    for f in fields(cls):
        value = getattr(item, f.name)
        if not checks[f.name](value):
            raise ValueError(f"field {f.name!r} holds {str(value)[:40]!r}, not a {f.type}")
    return item


@dataclass
class MetricValue:
    name: str
    value: float
    higher_is_better: bool | None = True  # None: informational (totals, counts)
    low: float | None = None  # 95% interval, where one is defined
    high: float | None = None
    unit: str = ""
    interval: str | None = None  # how low/high were computed: "wilson" or "bootstrap"
    n: int | None = None  # examples (or, for amortised batch latency, batches) the value is computed over
    kind: str | None = None  # the metric class's `aggregate`: proportion, macro, mean, corpus, percentile, sum
    note: str | None = None  # what was measured, where it is not obvious (e.g. latency per batch)
    # How the gate compares it with a baseline, paired by example: "outcome" (each example's correct,
    # McNemar), "predictions" (macro-F1 recomputed on both runs' predictions), "scores" (its per-example
    # values, stored in the baseline, by paired permutation test); None: not compared.
    paired: str | None = None
    per_example: list[float | None] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items()
                if k != "per_example" and not (k in ("note", "kind", "paired") and v is None)}


def per_example_values(metrics: Sequence[MetricValue], examples: int) -> list[dict[str, float]]:
    """For each of `examples` examples, its per-example metric values by name (only those defined for
    it; values computed in this process carry them, values read back from the store do not)."""
    rows: list[dict[str, float]] = [{} for _ in range(examples)]
    for m in metrics:
        if m.per_example is not None and len(m.per_example) == examples:
            for row, value in zip(rows, m.per_example, strict=True):
                if value is not None:
                    row[m.name] = value
    return rows


class RunPlan(Protocol):
    """What a finished run says about its plan (promptkit.evaluate.EvalPlan satisfies it). The
    members typed Any hold objects of higher layers (prompt version, suite, model reference)."""

    @property
    def version(self) -> Any: ...
    @property
    def suite(self) -> Any: ...
    @property
    def model(self) -> Any: ...
    @property
    def examples(self) -> list[Any]: ...
    @property
    def task(self) -> str: ...
    @property
    def labels(self) -> list[str] | None: ...
    @property
    def metric_names(self) -> list[str]: ...
    @property
    def decoding(self) -> dict[str, Any]: ...
    @property
    def scoring(self) -> str: ...
    @property
    def scoring_asked(self) -> str | None: ...
    @property
    def data_path(self) -> Path: ...
    @property
    def data_hash(self) -> str: ...
    @property
    def split(self) -> str | None: ...
    @property
    def hash(self) -> str: ...
    @property
    def runtime(self) -> dict[str, Any]: ...  # what the provider ran with (hf: device, dtype)

    def settings(self) -> dict[str, Any]: ...


@dataclass
class EvalRun:
    plan: RunPlan
    results: list[ExampleResult]
    metrics: list[MetricValue]
    confusion: dict[str, dict[str, int]] | None = None
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "finished"  # or "interrupted" (--max-cost or Ctrl-C; resumable), or "failed" (every example failed)

    def metric(self, name: str) -> float | None:
        return next((m.value for m in self.metrics if m.name == name), None)
