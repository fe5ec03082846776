"""An optimize run's progress on disk (.promptkit/optimize/NAME-KEY.json), written atomically after
every candidate, so that a killed run resumes where it stopped (`--resume`) and budgets count
what earlier sessions spent."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write
from promptkit.errors import ConfigError
from promptkit.optimize.candidates import Candidate

FORMAT = 1


@dataclass
class SearchState:
    path: Path
    key: str  # hash of the prompt, data and settings: a resumed run must match
    settings: dict[str, Any]
    candidates: dict[str, Candidate] = field(default_factory=dict)
    phases_done: list[str] = field(default_factory=list)
    evals: int = 0  # model calls (cached answers are free)
    cost: float = 0.0
    seconds: float = 0.0  # search time of earlier sessions
    proposer_calls: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"  # running | searched | stopped | finished
    stopped_by: str | None = None
    outcome: dict[str, Any] | None = None

    def save(self) -> None:
        data = {"format": FORMAT, "key": self.key, "settings": self.settings,
                "candidates": [c.to_dict() for c in self.candidates.values()], "phases_done": self.phases_done,
                "evals": self.evals, "cost": self.cost, "seconds": self.seconds, "proposer_calls": self.proposer_calls,
                "status": self.status, "stopped_by": self.stopped_by, "outcome": self.outcome}
        try:
            atomic_write(self.path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        except OSError as e:
            raise ConfigError(f"cannot write the optimize state: {e.strerror or e}", where=str(self.path)) from None

    @classmethod
    def load(cls, path: Path, key: str) -> SearchState:
        if not path.is_file():
            raise ConfigError("no optimize run to resume for this prompt, data and settings", where=str(path),
                              hint="run without --resume to start one")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
                raise ValueError("written by other settings")
            candidates = [Candidate.from_dict(c) for c in data["candidates"]]
            _check(data)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"cannot resume from the optimize state: {e}", where=str(path),
                              hint="run without --resume to start again") from None
        return cls(path, key, data["settings"], {c.key: c for c in candidates}, data.get("phases_done", []),
                   data.get("evals", 0), float(data.get("cost", 0.0)), float(data.get("seconds", 0.0)),
                   data.get("proposer_calls", []), data.get("status", "running"), data.get("stopped_by"),
                   data.get("outcome"))


STATUSES = ("running", "searched", "stopped", "finished")


def _check(data: dict[str, Any]) -> None:
    """Raise ValueError naming the first field of a state file that is not as save() writes it."""
    settings = data.get("settings")
    if not isinstance(settings, dict) or not all(k in settings for k in ("options", "model", "train", "test")):
        raise ValueError("'settings' is damaged")
    for name, kind in (("candidates", list), ("phases_done", list), ("proposer_calls", list),
                       ("stopped_by", str | None), ("outcome", dict | None)):
        if not isinstance(data.get(name), kind) and name in data:
            raise ValueError(f"'{name}' is {data[name]!r:.80}")
    if not all(isinstance(p, str) for p in data.get("phases_done", [])):
        raise ValueError("'phases_done' is damaged")
    for name in ("evals", "cost", "seconds"):
        value = data.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0 \
                or (name == "evals" and not isinstance(value, int)):
            raise ValueError(f"'{name}' is {value!r}, not a number >= 0")
    if data.get("status", "running") not in STATUSES:
        raise ValueError(f"'status' is {data.get('status')!r}, not one of {', '.join(STATUSES)}")
