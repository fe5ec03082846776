"""Running a suite for the gate: one provider per model for the whole check (so a local model
loads once), `repeat` seeded runs, and the response cache only where decoding is deterministic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptkit.evaluate import plan_eval, run_eval
from promptkit.library import PromptVersion
from promptkit.models import ModelRef
from promptkit.project import Project, Suite
from promptkit.providers import Provider
from promptkit.providers.factory import open_provider
from promptkit.results import EvalRun, RunPlan


class Providers:
    """One provider per model for the whole check, so a local model loads once."""

    def __init__(self, factory: Callable[[ModelRef, Project], Provider] | None = None):
        self.factory = factory or open_provider
        self.cache: dict[str, Provider] = {}

    def get(self, ref: ModelRef, project: Project) -> Provider:
        """The provider for a resolved model, opened with the project (its price table, its registry)."""
        key = repr((ref.provider, ref.model, sorted(ref.options.items(), key=str)))
        if key not in self.cache:
            self.cache[key] = self.factory(ref, project)
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
        provider = providers.get(plan.model, project)
        runs.append(run_eval(plan, provider, store=store, cache=cache if deterministic(plan) else None))
    return runs
