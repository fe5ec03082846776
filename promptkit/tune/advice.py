"""Escalation advice: per backend, what tuning would take (examples, tokens, time, money)."""

from __future__ import annotations

from dataclasses import dataclass

from promptkit.errors import PromptkitError
from promptkit.library import PromptVersion
from promptkit.project import Project, Suite
from promptkit.tune.base import Estimate, TuneJob, tuners
from promptkit.tune.trainset import build_trainset


@dataclass
class Advice:
    estimates: list[Estimate]
    problems: dict[str, str]  # backend -> why no estimate


def advise(project: Project, version: PromptVersion, suite: Suite, backends: list[str] | None = None) -> Advice:
    estimates: list[Estimate] = []
    problems: dict[str, str] = {}
    try:
        trainset = build_trainset(project, version, suite)
    except PromptkitError as e:
        return Advice([], {"all": str(e)})
    for name in backends or tuners.names():
        job = TuneJob(project, version, suite, trainset, f"{version.name}-{name}", project.state_dir / "adapters")
        try:
            estimates.append(tuners.get(name)().estimate(job))
        except PromptkitError as e:
            problems[name] = str(e)
    return Advice(estimates, problems)
