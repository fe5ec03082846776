"""The `thresholds:` block of an eval suite: absolute limits and the largest allowed drop from baseline."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from promptkit.config import Strict
from promptkit.stats import ALPHA

# threshold field -> (metric name in a run, "min" or "max")
ABSOLUTE: dict[str, tuple[str, str]] = {
    "min_accuracy": ("accuracy", "min"),
    "min_f1": ("f1_macro", "min"),
    "min_relevance": ("relevance", "min"),
    "max_latency_p95": ("latency_p95", "max"),
    "max_cost_per_example": ("cost_per_example", "max"),
    "max_cost_per_run": ("cost_total", "max"),
    "max_tokens_per_example": ("tokens_per_example", "max"),
    "max_error_rate": ("error_rate", "max"),
}


class Thresholds(Strict):
    """Absolute limits fail whatever the statistics say; a drop from the baseline fails only when it
    is larger than `max_drop` and significant at `alpha` on the paired per-example outcomes, the
    p-values of the suite's metrics Holm-adjusted together."""

    # strict: `max_drop: {accuracy: yes}` or `min_accuracy: "0.9"` is an error, not 1.0 and 0.9
    model_config = ConfigDict(**Strict.model_config, strict=True)

    min_accuracy: float | None = Field(None, ge=0, le=1)
    min_f1: float | None = Field(None, ge=0, le=1, description="minimum macro F1")
    min_relevance: float | None = Field(None, description="minimum mean relevance (generation)")
    max_latency_p95: float | None = Field(None, gt=0, description="seconds per example (per call, or a batch's time amortised); "
                                           "machine-dependent, keep it loose; skipped when every example was cached")
    max_cost_per_example: float | None = Field(None, ge=0, description="dollars")
    max_cost_per_run: float | None = Field(None, ge=0, description="dollars for the whole suite")
    max_tokens_per_example: float | None = Field(None, gt=0, description="tokens in + out per example")
    max_error_rate: float | None = Field(None, ge=0, le=1)
    max_drop: float | dict[str, float] = Field(
        0.0, description="largest allowed drop from the baseline (absolute, e.g. 0.02), for all metrics or per metric"
    )
    alpha: float = Field(ALPHA, gt=0, lt=1,
                         description="significance level of the paired tests (Holm-adjusted over the suite's metrics)")

    def drop_allowed(self, metric: str) -> float:
        if isinstance(self.max_drop, dict):
            return float(self.max_drop.get(metric, 0.0))
        return float(self.max_drop)

    def limits(self) -> list[tuple[str, str, float]]:
        """(metric, "min"/"max", value) for every absolute limit that is set."""
        out = []
        for field, (metric, kind) in ABSOLUTE.items():
            value = getattr(self, field)
            if value is not None:
                out.append((metric, kind, float(value)))
        return out
