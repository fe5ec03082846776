"""The run store: every run and each example's result in SQLite, written as the run goes."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    metrics TEXT,
    plan_hash TEXT,
    pid INTEGER,
    host TEXT,
    extra TEXT
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(id),
    example_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, example_id)
);
CREATE INDEX IF NOT EXISTS runs_plan ON runs(plan_hash, status);
"""

# Columns added after the first release: older stores get them on open.
ADDED_COLUMNS = {"plan_hash": "TEXT", "pid": "INTEGER", "host": "TEXT", "extra": "TEXT"}
UNFINISHED = ("running", "interrupted")


@dataclass
class RunRecord:
    id: str
    created: str
    finished: str | None
    status: str
    settings: dict[str, Any]
    metrics: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)
    plan_hash: str | None = None
    pid: int | None = None
    host: str | None = None

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
            have = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
            for column, kind in ADDED_COLUMNS.items():
                if have and column not in have:
                    self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
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
            if self._db.in_transaction:  # a Ctrl-C can land before BEGIN took effect or after COMMIT
                self._db.execute("ROLLBACK")
            raise

    def create_run(self, settings: dict[str, Any], plan_hash: str | None = None) -> str:
        run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, created, status, prompt, prompt_hash, suite, model, dataset_hash, settings,"
                " plan_hash, pid, host) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, _now(), settings.get("prompt"), settings.get("prompt_hash"), settings.get("suite"),
                 settings.get("model"), settings.get("dataset_hash"), json.dumps(settings), plan_hash,
                 os.getpid(), socket.gethostname()),
            )
        return run_id

    def claim(self, run_id: str) -> None:
        """Mark a run as running in this process (when it resumes)."""
        with self._tx() as db:
            db.execute("UPDATE runs SET status = 'running', finished = NULL, pid = ?, host = ? WHERE id = ?",
                       (os.getpid(), socket.gethostname(), run_id))

    def set_status(self, run_id: str, status: str, extra: dict[str, Any] | None = None) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET status = ?, extra = COALESCE(?, extra) WHERE id = ?",
                       (status, json.dumps(extra) if extra is not None else None, run_id))

    def latest_unfinished(self, plan_hash: str) -> RunRecord | None:
        """The newest running or interrupted run of a plan, if any."""
        row = self._db.execute(
            f"SELECT {COLUMNS} FROM runs WHERE plan_hash = ? AND status IN (?, ?) ORDER BY created DESC, rowid DESC LIMIT 1",
            (plan_hash, *UNFINISHED)).fetchone()
        return _record(row) if row else None

    def mean_tokens_out(self, prompt_hash: str, model: str) -> float | None:
        """Average output tokens of successful examples in earlier runs of this prompt version on this model."""
        row = self._db.execute(
            "SELECT AVG(json_extract(r.data, '$.tokens_out')) FROM results r JOIN runs ON runs.id = r.run_id"
            " WHERE runs.prompt_hash = ? AND runs.model = ? AND json_extract(r.data, '$.error') IS NULL",
            (prompt_hash, model)).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def count_results(self, run_id: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0])

    def add_results(self, run_id: str, results: Sequence[ExampleResult]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO results (run_id, example_id, idx, data) VALUES (?, ?, ?, ?)",
                [(run_id, r.id, r.index, json.dumps(r.to_dict())) for r in results],
            )

    def finish_run(self, run_id: str, metrics: Sequence[MetricValue], status: str = "finished",
                   extra: dict[str, Any] | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET finished = ?, status = ?, metrics = ?, extra = COALESCE(?, extra) WHERE id = ?",
                (_now() if status == "finished" else None, status, json.dumps([m.to_dict() for m in metrics]),
                 json.dumps(extra) if extra is not None else None, run_id),
            )

    def results(self, run_id: str) -> list[ExampleResult]:
        from promptkit.evaluate import ExampleResult

        rows = self._db.execute("SELECT data FROM results WHERE run_id = ? ORDER BY idx", (run_id,))
        return [ExampleResult(**json.loads(data)) for (data,) in rows]

    def runs(self, limit: int = 50, prompt: str | None = None) -> list[RunRecord]:
        query = f"SELECT {COLUMNS} FROM runs"
        args: tuple[Any, ...] = ()
        if prompt:
            query += " WHERE prompt LIKE ?"
            args = (f"{prompt}@%",)
        rows = self._db.execute(query + " ORDER BY created DESC, rowid DESC LIMIT ?", (*args, limit))
        return [_record(row) for row in rows]

    def run(self, run_id: str) -> RunRecord:
        rows = list(self._db.execute(
            f"SELECT {COLUMNS} FROM runs WHERE id = ? OR id LIKE ?"
            " ORDER BY id = ? DESC, created DESC", (run_id, f"%{run_id}%", run_id)))
        if not rows:
            raise NotFoundError(f"no run {run_id!r}", where=str(self.path), hint="see 'promptkit runs list'")
        return _record(rows[0])

    def close(self) -> None:
        self._db.close()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


COLUMNS = "id, created, finished, status, settings, metrics, extra, plan_hash, pid, host"


def _record(row: tuple[Any, ...]) -> RunRecord:
    run_id, created, finished, status, settings, metrics, extra, plan_hash, pid, host = row
    return RunRecord(run_id, created, finished, status, json.loads(settings), json.loads(metrics or "[]"),
                     json.loads(extra or "{}"), plan_hash, pid, host)


def process_alive(record: RunRecord) -> bool:
    """Whether a 'running' run's process still runs (on this host; another host counts as alive)."""
    if record.status != "running" or record.pid is None:
        return False
    if record.host and record.host != socket.gethostname():
        return True
    if record.pid == os.getpid():
        return False
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(record.pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
