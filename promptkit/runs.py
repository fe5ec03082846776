"""The run store: every run and each example's result in SQLite, written as the run goes."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptkit.errors import NotFoundError, PromptkitError

if TYPE_CHECKING:
    from promptkit.evaluate import ExampleResult
    from promptkit.metrics import MetricValue

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    prompt TEXT, prompt_hash TEXT, suite TEXT, model TEXT, dataset_hash TEXT,
    settings TEXT NOT NULL,
    metrics TEXT
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(id),
    example_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, example_id)
);
"""


@dataclass
class RunRecord:
    id: str
    created: str
    finished: str | None
    status: str
    settings: dict[str, Any]
    metrics: list[dict[str, Any]]

    def metric(self, name: str) -> float | None:
        return next((m["value"] for m in self.metrics if m["name"] == name), None)


class RunStore:
    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise PromptkitError(f"cannot open the run store: {e}", where=str(path)) from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def create_run(self, settings: dict[str, Any]) -> str:
        run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, created, status, prompt, prompt_hash, suite, model, dataset_hash, settings)"
                " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (run_id, _now(), settings.get("prompt"), settings.get("prompt_hash"), settings.get("suite"),
                 settings.get("model"), settings.get("dataset_hash"), json.dumps(settings)),
            )
        return run_id

    def add_results(self, run_id: str, results: Sequence[ExampleResult]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO results (run_id, example_id, idx, data) VALUES (?, ?, ?, ?)",
                [(run_id, r.id, r.index, json.dumps(r.to_dict())) for r in results],
            )

    def finish_run(self, run_id: str, metrics: Sequence[MetricValue], status: str = "finished") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET finished = ?, status = ?, metrics = ? WHERE id = ?",
                (_now(), status, json.dumps([m.to_dict() for m in metrics]), run_id),
            )

    def results(self, run_id: str) -> list[ExampleResult]:
        from promptkit.evaluate import ExampleResult

        rows = self._db.execute("SELECT data FROM results WHERE run_id = ? ORDER BY idx", (run_id,))
        return [ExampleResult(**json.loads(data)) for (data,) in rows]

    def runs(self, limit: int = 50, prompt: str | None = None) -> list[RunRecord]:
        query = "SELECT id, created, finished, status, settings, metrics FROM runs"
        args: tuple[Any, ...] = ()
        if prompt:
            query += " WHERE prompt LIKE ?"
            args = (f"{prompt}@%",)
        rows = self._db.execute(query + " ORDER BY created DESC, rowid DESC LIMIT ?", (*args, limit))
        return [_record(row) for row in rows]

    def run(self, run_id: str) -> RunRecord:
        rows = list(self._db.execute(
            "SELECT id, created, finished, status, settings, metrics FROM runs WHERE id = ? OR id LIKE ?"
            " ORDER BY created DESC", (run_id, f"%{run_id}%")))
        if not rows:
            raise NotFoundError(f"no run {run_id!r}", where=str(self.path), hint="see 'promptkit runs list'")
        return _record(rows[0])

    def close(self) -> None:
        self._db.close()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _record(row: tuple[Any, ...]) -> RunRecord:
    run_id, created, finished, status, settings, metrics = row
    return RunRecord(run_id, created, finished, status, json.loads(settings), json.loads(metrics or "[]"))
