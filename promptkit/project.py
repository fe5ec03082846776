"""A project: prompts/, evals/ (suites), and .promptkit/ (run store, model registry)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from promptkit.assertions.base import AssertionSpec
from promptkit.config import Strict, line_of, load_yaml, read_text, validate
from promptkit.errors import ConfigError, NotFoundError, did_you_mean
from promptkit.gate.thresholds import Thresholds
from promptkit.library import Library, PromptVersion
from promptkit.metrics import metrics
from promptkit.models import ModelRegistry


class DatasetConfig(Strict):
    path: str = Field(description="JSONL or CSV file, relative to the suite file")
    fields: dict[str, str] | None = Field(
        None, description="prompt variable -> dataset column; default: each template variable reads its own column"
    )
    target: str | None = Field("label", description="column holding the expected label or reference answer")
    split_field: str | None = Field(None, description="column naming each row's split (train, test, ...)")


class CustomMetric(Strict):
    """A metric class from the project folder, named in the suite: {name: brevity, class: "mymetrics:Brevity"}."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str = Field(description="the name it reports under")
    class_: str = Field(alias="class", description="module:Class in the project folder (a promptkit Metric subclass)")


class SuiteConfig(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    description: str = ""
    prompt: str = Field(description="the prompt this suite scores, e.g. sentiment")
    task: Literal["classification", "generation"] | None = Field(
        None, description="default: classification when the prompt has labels"
    )
    dataset: DatasetConfig
    split: str | None = Field(None, description="the split evaluated by default")
    model: str | None = Field(None, description="model spec; default: the prompt's, else smollm2")
    provider_options: dict[str, Any] = Field(default_factory=dict)
    metrics: list[str | CustomMetric] | None = None
    scoring: Literal["loglik", "generate"] | None = Field(
        None, description="classification by label log-likelihood (default where supported) or by parsing output"
    )
    thresholds: Thresholds | None = Field(None, description="what `promptkit check` enforces for this suite")
    # Assertions and judges (promptkit/assertions, promptkit/judges)
    assert_: list[AssertionSpec] = Field(default_factory=list, alias="assert",
                                         description="checks on every output: [{type, value, weight, metric}]")
    judge: str | None = Field(None, description="model spec of the judge for llm-rubric/factuality assertions")

    def metric_names(self) -> list[str]:
        """The names `metrics:` lists, custom entries included."""
        return [m if isinstance(m, str) else m.name for m in self.metrics or []]

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str | CustomMetric] | None) -> list[str | CustomMetric] | None:
        for name in names or []:
            if isinstance(name, str) and name not in metrics:
                raise ValueError(f"unknown metric {name!r} ({did_you_mean(name, metrics.names())})")
        return names


class Suite:
    def __init__(self, path: Path, config: SuiteConfig):
        self.path = path
        self.name = path.stem
        self.config = config

    @classmethod
    def load(cls, path: Path) -> Suite:
        data, text = load_yaml(path)
        return cls(path, validate(SuiteConfig, data, path, text))

    def dataset_path(self) -> Path:
        return (self.path.parent / self.config.dataset.path).resolve()

    def place(self, *loc: str | int) -> str:
        """file:line of a key path in the suite file (the file alone when the key is not written there)."""
        try:
            line = line_of(read_text(self.path), loc)
        except ConfigError:
            line = None
        return f"{self.path}:{line}" if line else str(self.path)


class Project:
    def __init__(self, root: Path | str = "."):
        self.root = Path(root)

    @cached_property
    def library(self) -> Library:
        return Library(self.root / "prompts")

    @property
    def evals_dir(self) -> Path:
        return self.root / "evals"

    @property
    def state_dir(self) -> Path:
        return self.root / ".promptkit"

    @property
    def models(self) -> ModelRegistry:
        return ModelRegistry(self.state_dir / "models.yaml")

    @property
    def runs_path(self) -> Path:
        return self.state_dir / "runs.db"

    def suites(self) -> list[Suite]:
        if not self.evals_dir.is_dir():
            return []
        return [Suite.load(p) for p in sorted(self.evals_dir.glob("*.yaml"))]

    def suite(self, name: str) -> Suite:
        path = Path(name)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            return Suite.load(path)
        candidate = self.evals_dir / f"{name}.yaml"
        if not candidate.is_file():
            known = [p.stem for p in self.evals_dir.glob("*.yaml")] if self.evals_dir.is_dir() else []
            raise NotFoundError(f"unknown eval suite {name!r}", where=str(self.evals_dir), hint=did_you_mean(name, known))
        return Suite.load(candidate)

    def suite_for(self, version: PromptVersion) -> Suite:
        """The suite that scores a prompt: the one named after it, else the only one naming it."""
        suites = [s for s in self.suites() if s.config.prompt == version.name]
        if not suites:
            raise ConfigError(
                f"no eval suite names prompt {version.name!r}",
                where=str(self.evals_dir),
                hint=f"add evals/{version.name}.yaml with 'prompt: {version.name}' and a dataset",
            )
        named = [s for s in suites if s.name == version.name]
        if named:
            return named[0]
        if len(suites) > 1:
            raise ConfigError(
                f"several suites name prompt {version.name!r}: {', '.join(s.name for s in suites)}",
                hint="choose one with --suite",
            )
        return suites[0]
