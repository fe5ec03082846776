"""What an assertion is: its YAML shape, the outcome of checking one output, and the base class.

An assertion type is a small class registered by name (see promptkit/assertions/__init__.py).
It is built once per suite (or dataset row) from its spec, where it validates its value and
raises ValueError with a message for anything wrong (a bad regex, a bad schema); `check` then
judges one output and never raises for a bad output: failing is an outcome with a reason."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from promptkit.config import Strict
from promptkit.results import ExampleResult, Request


class AssertionSpec(Strict):
    """One entry of a suite's `assert:` list or of a dataset row's `assert` field."""

    type: str = Field(description="contains, icontains, not-contains, equals, regex, is-json, json-schema, ...")
    value: Any = Field(None, description="what the type checks against; strings may use {{ field }} of the row")
    # strict: `weight: yes` or `threshold: no` is refused, not read as 1.0 or 0.0
    weight: float = Field(1.0, ge=0, strict=True, description="weight in the example's assertion score")
    metric: str | None = Field(None, description="report this assertion (and others naming it) as metric assert:NAME")
    threshold: float | None = Field(None, strict=True,
                                     description="pass mark for scored types (llm-rubric, python, latency, cost)")


@dataclass
class Outcome:
    """One assertion on one output. passed None: not judged (a judge error), does not count."""

    passed: bool | None
    reason: str
    score: float | None = None
    judge_error: bool = False

    def __post_init__(self) -> None:
        if self.score is None and self.passed is not None:
            self.score = 1.0 if self.passed else 0.0


@dataclass
class Context:
    """What a check sees besides the output: the dataset row, the result (latency, cost), the suite's folder."""

    row: dict[str, Any]
    result: ExampleResult
    folder: Path
    extra: dict[str, Any] = field(default_factory=dict)


class AssertionType(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    needs_judge: ClassVar[bool] = False
    uses_threshold: ClassVar[bool] = False  # a `threshold:` on a type that ignores it is refused

    def __init__(self, spec: AssertionSpec, folder: Path, root: Path):
        self.spec = spec
        self.folder = folder  # the suite file's folder: relative paths (schema files) start here
        self.root = root  # the project folder: python: functions are imported from here
        self.setup()

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Validate and prepare `self.spec.value`; raise ValueError('message') when it is unusable."""

    def templates(self) -> list[str]:
        """The strings this type renders with the row's fields, tried on every row before any model call."""
        return []

    @abstractmethod
    def check(self, output: str, ctx: Context) -> Outcome: ...


class JudgedAssertion(AssertionType):
    """An assertion a judge model decides: it builds the judge's request and parses its answer."""

    needs_judge = True

    def check(self, output: str, ctx: Context) -> Outcome:  # pragma: no cover - judged in batches instead
        raise NotImplementedError("judged assertions are checked through promptkit.judges")

    @abstractmethod
    def judge_request(self, output: str, ctx: Context, judge: Any) -> Request: ...

    @abstractmethod
    def parse(self, answer: str) -> Outcome: ...
