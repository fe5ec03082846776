"""What a check returns: one SuiteCheck per suite, gathered in a CheckReport whose exit code is the gate's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from promptkit.gate.decide import MetricCheck

PASS, FAIL, STALE, ERROR, NEW = "pass", "fail", "stale", "error", "no baseline"


@dataclass
class SuiteCheck:
    suite: str
    prompt: str = ""
    prompt_hash: str = ""
    model: str = ""
    examples: int = 0
    repeat: int = 1
    status: str = PASS
    checks: list[MetricCheck] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None  # path, prompt, prompt_hash, blessed
    stale: list[str] = field(default_factory=list)
    flaky: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[MetricCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [c.to_dict() for c in self.checks]
        return data


@dataclass
class CheckReport:
    suites: list[SuiteCheck]
    alpha: float | None = None
    skipped: list[str] = field(default_factory=list)  # suites not selected by --changed-since

    @property
    def exit_code(self) -> int:
        if any(s.status == FAIL for s in self.suites):
            return 1
        if any(s.status in (STALE, ERROR) for s in self.suites):
            return 2
        return 0

    @property
    def status(self) -> str:
        return {0: PASS, 1: FAIL, 2: ERROR}[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "alpha": self.alpha, "skipped": self.skipped,
                "suites": [s.to_dict() for s in self.suites]}
