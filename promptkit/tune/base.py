"""The tuner interface and registry: `--backend lora|openai` picks one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from promptkit.errors import ConfigError
from promptkit.library import PromptVersion
from promptkit.library.store import NAME_RE
from promptkit.models import ALIASES
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


def check_model_name(project: Project, name: str, option: str = "--name") -> None:
    """Refuse a name for a tuned model that is not a plain name: it is the adapter's folder name under
    .promptkit/adapters (a '/', '..' or an absolute path would write elsewhere), a key of models.yaml
    (a name a built-in alias shadows would never resolve to the adapter; an entry that tune did not
    register, e.g. a hosted model of the user's, would be overwritten), and typed in --model later
    (ASCII only, as prompt names: no look-alike letters)."""
    problem = None
    if not name.isascii():
        odd = next(c for c in name if not c.isascii())
        problem = f"holds the non-ASCII character {odd!r} (U+{ord(odd):04X}), which can look like a Latin letter"
    elif "/" in name or "\\" in name:
        problem = "is a path; it names the adapter folder under .promptkit/adapters (use --out for the folder)"
    elif len(name) > 128:
        problem = f"is {len(name)} characters long, over 128"
    elif not NAME_RE.fullmatch(name):
        problem = "may hold only letters, digits, '.', '_' and '-', starting with a letter or digit"
    elif name.lower() in ALIASES:
        problem = "is a built-in model alias, which would shadow the tuned model"
    if problem:
        raise ConfigError(f"model name {name[:80]!r} {problem}", hint=f"pass {option} with a name like review-lora")
    entry = project.models.entries().get(name)
    if isinstance(entry, dict) and "backend" not in entry:  # every model tune registers records its backend
        raise ConfigError(f"model name {name!r} is already registered (provider {entry.get('provider')}), "
                          "not by tune", where=str(project.models.path),
                          hint=f"pass {option} with another name, or remove that entry first")


def check_out_dir(out: Path) -> None:
    """The adapter folder must be a folder or a new path: a file there (a folder replaced between runs)
    would otherwise fail half-way, after training."""
    if out.exists() and not out.is_dir():
        raise ConfigError("the adapter folder path is a file, not a folder", where=str(out),
                          hint="remove it, or choose another --name or --out")


tuners: Registry[type[Tuner]] = Registry("tuner")
tuners.register("lora", "promptkit.tune.lora:LoraTuner")
tuners.register("openai", "promptkit.tune.hosted:OpenAITuner")
