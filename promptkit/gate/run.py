"""Running a suite for the gate: one provider per model for the whole check (so a local model
loads once), `repeat` seeded runs, and the response cache only where decoding is deterministic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptkit.evaluate import plan_eval, run_eval
from promptkit.library import PromptVersion
from promptkit.project import Project, Suite
from promptkit.providers import Provider, make_provider
from promptkit.results import EvalRun, RunPlan


class Providers:
    """One provider per model for the whole check, so a local model loads once."""

    def __init__(self, factory: Callable[..., Provider] | None = None):
        self.factory = factory or make_provider
        self.cache: dict[str, Provider] = {}

    def get(self, provider: str, model: str, options: dict[str, Any]) -> Provider:
        key = repr((provider, model, sorted(options.items(), key=str)))
        if key not in self.cache:
            self.cache[key] = self.factory(provider, model, **options)
        return self.cache[key]

    def close(self) -> None:
        for provider in self.cache.values():
            provider.close()
        self.cache.clear()


def deterministic(plan: RunPlan) -> bool:
    """Whether the same request always gets the same answer: label log-likelihood scoring or greedy decoding."""
    return plan.scoring == "loglik" or not plan.decoding.get("temperature")


def evaluate(project: Project, version: PromptVersion, suite: Suite, providers: Providers, repeat: int = 1,
             store: Any | None = None, limit: int | None = None, cache: Any | None = None) -> list[EvalRun]:
    """Run a suite `repeat` times (seeds 0..repeat-1 when repeating, for sampled decoding). The
    response cache is used only where decoding is deterministic, so a cached answer is the answer."""

    runs = []
    for i in range(max(1, repeat)):
        plan = plan_eval(project, version, suite=suite, limit=limit, overrides={"seed": i} if repeat > 1 else None)
        provider = providers.get(plan.model.provider, plan.model.model, dict(plan.model.options))
        runs.append(run_eval(plan, provider, store=store, cache=cache if deterministic(plan) else None))
    return runs
