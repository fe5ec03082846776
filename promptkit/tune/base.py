"""The tuner interface and registry: `--backend lora|openai` picks one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from promptkit.library import PromptVersion
from promptkit.project import Project, Suite
from promptkit.registry import Registry
from promptkit.tune.trainset import TrainSet


@dataclass
class Estimate:
    """What a tuning job will take, before it starts."""

    backend: str
    examples: int
    tokens: int  # training tokens per epoch
    epochs: int
    seconds: float | None = None  # on this machine (local backends)
    cost: float | None = None  # dollars (hosted backends)
    model: str = ""
    note: str = ""

    @property
    def billed_tokens(self) -> int:
        return self.tokens * self.epochs


@dataclass
class TuneJob:
    """One tuning request, shared by every backend."""

    project: Project
    version: PromptVersion
    suite: Suite
    trainset: TrainSet
    name: str  # the registered model name of the result
    out_dir: Path
    options: dict[str, Any] = field(default_factory=dict)  # backend hyperparameters
    eval_data: Path | None = None
    eval_split: str | None = None
    eval_limit: int | None = None
    evaluate: bool = True
    resume: bool = False
    confirm: Callable[[str], bool] = lambda message: True  # asked before spending money
    notify: Callable[[str], None] = lambda message: None  # status lines
    progress: Callable[[Any], None] | None = None  # backend-specific progress events


@dataclass
class TuneResult:
    backend: str
    model_name: str  # registered name
    model_spec: str  # what `--model` takes
    manifest: dict[str, Any]
    comparison: Any | None = None  # promptkit.tune.run.Comparison
    status: str = "succeeded"


class Tuner(ABC):
    name: ClassVar[str] = "base"

    @abstractmethod
    def estimate(self, job: TuneJob) -> Estimate: ...

    @abstractmethod
    def run(self, job: TuneJob) -> TuneResult: ...


tuners: Registry[type[Tuner]] = Registry("tuner")
tuners.register("lora", "promptkit.tune.lora:LoraTuner")
tuners.register("openai", "promptkit.tune.hosted:OpenAITuner")
