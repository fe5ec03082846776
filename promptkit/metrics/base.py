"""Metrics: small classes in a registry, each declaring direction and aggregation."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from promptkit.evaluate import ExampleResult


@dataclass
class MetricValue:
    name: str
    value: float
    higher_is_better: bool | None = True  # None: informational (totals, counts)
    low: float | None = None  # 95% interval, where one is defined
    high: float | None = None
    unit: str = ""

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class Metric(ABC):
    """Computes one or more values over a run's results."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ("classification", "generation")

    @abstractmethod
    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]: ...


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
