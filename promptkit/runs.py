"""The run store: every run and each example's result in SQLite, written as the run goes."""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from promptkit import dbfile
from promptkit.errors import ConfigError, NotFoundError, PromptkitError
from promptkit.fileio import lock_timeout
from promptkit.results import ExampleResult, MetricValue, from_stored
from promptkit.strict_json import finite

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
    extra TEXT,
    heartbeat REAL
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
ADDED_COLUMNS = {"plan_hash": "TEXT", "pid": "INTEGER", "host": "TEXT", "extra": "TEXT", "heartbeat": "REAL"}
BASE_COLUMNS = {"runs": {"id", "created", "finished", "status", "settings", "metrics"},
                "results": {"run_id", "example_id", "idx", "data"}}
OTHER_TABLES = {"reviews"}  # added by promptkit view (promptkit/view/reviews.py)
UNFINISHED = ("running", "interrupted")
SQLITE_MAX_INT = 2**63 - 1
RECOVER = ("move it aside (mv {0} {0}.bad) and start a new one; to save its runs: "
           "sqlite3 {0}.bad .recover | sqlite3 {0}")


def lease_seconds() -> float:
    """How long a running run's heartbeat stays valid (PROMPTKIT_RUN_LEASE, default 120 s). A run
    whose heartbeat is older than this is no longer running, whatever its pid and host say."""
    try:
        value = float(os.environ.get("PROMPTKIT_RUN_LEASE", "120"))
    except ValueError:
        return 120.0
    # a huge lease overflows the heartbeat thread's wait (OverflowError: a traceback on stderr): the default
    return value if math.isfinite(value) and 0 < value <= 1e6 else 120.0


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
    heartbeat: float | None = None  # time.time() of the last sign of life while running

    def metric(self, name: str) -> float | None:
        return next((m["value"] for m in self.metrics if m["name"] == name), None)


class RunStore(dbfile.Closing):
    """Runs in an SQLite file. Opening is serialised across processes and refuses a damaged or
    foreign file before writing anything; every later failure is a PromptkitError naming the file."""

    def __init__(self, path: Path):
        self.path = path
        self._beat: _Heartbeat | None = None
        try:
            self._db = dbfile.open_checked(path, "the run store", _check_schema, _setup)
        except dbfile.DamagedDatabase as e:
            raise PromptkitError(e.message, where=str(path), hint=RECOVER.format(path)) from None
        except dbfile.ForeignDatabase:
            raise
        except PromptkitError as e:
            raise PromptkitError(dbfile.cannot_open("the run store", e.message), where=e.where or str(path),
                                 hint=e.hint) from None
        except OSError as e:
            raise PromptkitError(f"cannot open the run store: {e.strerror or e}", where=str(path)) from None

    def _error(self, e: Exception) -> PromptkitError:
        return store_error(self.path, e)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with reading(self.path):
            yield

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self._error(e) from None
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as e:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(e, (sqlite3.Error, ValueError, TypeError)):
                raise self._error(e) from None
            raise

    def _start_heartbeat(self, run_id: str) -> None:
        self._stop_heartbeat()
        self._beat = _Heartbeat(self.path, run_id)
        self._beat.start()

    def _stop_heartbeat(self) -> None:
        if self._beat is not None:
            self._beat.stop()
            self._beat = None

    def create_run(self, settings: dict[str, Any], plan_hash: str | None = None) -> str:
        with self._tx() as db:  # the write lock is held: no other process can take the id checked free here
            run_id = _new_run_id()
            while db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                run_id = _new_run_id()  # runs started in the same second drew the same suffix
            db.execute(
                "INSERT INTO runs (id, created, status, prompt, prompt_hash, suite, model, dataset_hash, settings,"
                " plan_hash, pid, host, heartbeat) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, _now(), settings.get("prompt"), settings.get("prompt_hash"), settings.get("suite"),
                 settings.get("model"), settings.get("dataset_hash"), _dumps(settings), plan_hash,
                 os.getpid(), socket.gethostname(), time.time()),
            )
        self._start_heartbeat(run_id)
        return run_id

    def claim(self, run_id: str, force: bool = False) -> None:
        """Mark a run as running in this process (when it resumes). Checked and marked in one write
        transaction: of two processes resuming a run at once, the second is refused, whatever each saw
        when it looked the run up (`force`: take over a run that still looks alive)."""
        with self._tx() as db:
            row = db.execute(f"SELECT {COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no run {run_id[:80]!r}", where=str(self.path), hint="see 'promptkit runs list'")
            check_resumable(_record(row), force)
            db.execute("UPDATE runs SET status = 'running', finished = NULL, pid = ?, host = ?, heartbeat = ? WHERE id = ?",
                       (os.getpid(), socket.gethostname(), time.time(), run_id))
        self._start_heartbeat(run_id)

    def set_status(self, run_id: str, status: str, extra: dict[str, Any] | None = None) -> None:
        if status != "running":
            self._stop_heartbeat()
        with self._tx() as db:
            db.execute("UPDATE runs SET status = ?, extra = COALESCE(?, extra) WHERE id = ?",
                       (status, _dumps(extra) if extra is not None else None, run_id))

    def latest_unfinished(self, plan_hash: str) -> RunRecord | None:
        """The newest running or interrupted run of a plan, if any."""
        with self._reading():
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM runs WHERE plan_hash = ? AND status IN (?, ?) ORDER BY created DESC, rowid DESC"
                " LIMIT 1", (plan_hash, *UNFINISHED)).fetchone()
            return _record(row) if row else None

    def mean_tokens_out(self, prompt_hash: str, model: str) -> float | None:
        """Average output tokens of successful examples in earlier runs of this prompt version on this model."""
        try:
            row = self._db.execute(
                "SELECT AVG(json_extract(r.data, '$.tokens_out')) FROM results r JOIN runs ON runs.id = r.run_id"
                " WHERE runs.prompt_hash = ? AND runs.model = ? AND json_valid(r.data)"
                " AND json_extract(r.data, '$.error') IS NULL", (prompt_hash, model)).fetchone()
            value = float(row[0]) if row and row[0] is not None else None
        except (sqlite3.Error, ValueError, TypeError):
            return None  # an estimate only: a damaged store just gives none
        return value if value is not None and math.isfinite(value) else None

    def count_results(self, run_id: str) -> int:
        with self._reading():
            return int(self._db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0])

    def add_results(self, run_id: str, results: Sequence[ExampleResult]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO results (run_id, example_id, idx, data) VALUES (?, ?, ?, ?)",
                [(run_id, r.id, r.index, _dumps(r.to_dict())) for r in results],
            )
            db.execute("UPDATE runs SET heartbeat = ? WHERE id = ? AND status = 'running'", (time.time(), run_id))

    def finish_run(self, run_id: str, metrics: Sequence[MetricValue], status: str = "finished",
                   extra: dict[str, Any] | None = None) -> None:
        self._stop_heartbeat()
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET finished = ?, status = ?, metrics = ?, extra = COALESCE(?, extra) WHERE id = ?",
                (_now() if status == "finished" else None, status, _dumps([m.to_dict() for m in metrics]),
                 _dumps(extra) if extra is not None else None, run_id),
            )

    def results(self, run_id: str) -> list[ExampleResult]:
        with self._reading():
            rows = self._db.execute("SELECT example_id, data FROM results WHERE run_id = ? ORDER BY idx", (run_id,))
            out = []
            for example_id, data in rows.fetchall():
                try:
                    out.append(from_stored(ExampleResult, json.loads(data)))
                except (ValueError, TypeError, RecursionError) as e:
                    raise PromptkitError(f"run {run_id}: the result of example {example_id} is damaged ({e})",
                                         where=str(self.path), hint=RECOVER.format(self.path)) from None
            return out

    def runs(self, limit: int = 50, prompt: str | None = None) -> list[RunRecord]:
        query = f"SELECT {COLUMNS} FROM runs"
        args: tuple[Any, ...] = ()
        if prompt:
            # exact and case-sensitive: LIKE would take 'sent_a' for 'sentXa' and 'SENT_A'
            query += " WHERE substr(prompt, 1, ?) = ?"
            args = (len(prompt) + 1, f"{prompt}@")
        with self._reading():
            limit = min(limit, SQLITE_MAX_INT)  # a larger Python int does not fit SQLite's 64-bit integer
            rows = self._db.execute(query + " ORDER BY created DESC, rowid DESC LIMIT ?", (*args, limit)).fetchall()
            return [_record(row) for row in rows]

    def run(self, run_id: str) -> RunRecord:
        with self._reading():
            # the full id, or a part of exactly one id (instr: no LIKE wildcards, '%' and '_' are characters)
            rows = list(self._db.execute(f"SELECT {COLUMNS} FROM runs WHERE id = ?", (run_id,))) or list(
                self._db.execute(f"SELECT {COLUMNS} FROM runs WHERE instr(id, ?) > 0 ORDER BY created DESC LIMIT 4",
                                 (run_id,)) if run_id else ())
            if not rows:
                raise NotFoundError(f"no run {run_id[:80]!r}", where=str(self.path), hint="see 'promptkit runs list'")
            if len(rows) > 1:
                shown = ", ".join(str(r[0]) for r in rows[:3])
                raise NotFoundError(f"{run_id[:80]!r} is part of several run ids ({shown}{', ...' if len(rows) > 3 else ''})",
                                    where=str(self.path), hint="give more of the id, or the full id")
            return _record(rows[0])

    def close(self) -> None:
        self._stop_heartbeat()
        self._db.close()


def _check_schema(db: sqlite3.Connection) -> None:
    """Refuse (read-only, before any change) a database with tables or columns promptkit never wrote."""
    have = dbfile.tables(db)
    extra_tables = sorted(t for t in have if t not in BASE_COLUMNS and t not in OTHER_TABLES)
    if extra_tables:
        raise dbfile.ForeignDatabase(f"not a promptkit run store: it holds table {extra_tables[0]!r}",
                                     hint="point --project elsewhere or move the file away; it was left untouched")
    known = {"runs": BASE_COLUMNS["runs"] | set(ADDED_COLUMNS) | {"prompt", "prompt_hash", "suite", "model",
                                                                   "dataset_hash"},
             "results": BASE_COLUMNS["results"]}
    for table, columns in have.items():
        if table in OTHER_TABLES:
            continue
        missing, unknown = BASE_COLUMNS[table] - columns, columns - known[table]
        if missing or unknown:
            odd = sorted(missing)[0] if missing else sorted(unknown)[0]
            raise dbfile.ForeignDatabase(
                f"not a promptkit run store: table {table!r} {'lacks' if missing else 'has'} column {odd!r}",
                hint="point --project elsewhere or move the file away; it was left untouched")


def _setup(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for column, kind in ADDED_COLUMNS.items():
        if have and column not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    db.executescript(SCHEMA)


def _dumps(value: Any) -> str:
    return json.dumps(finite(value), allow_nan=False, default=str)


class _Heartbeat(threading.Thread):
    """Renews a running run's lease every third of the lease, on a connection of its own."""

    def __init__(self, path: Path, run_id: str):
        super().__init__(daemon=True, name=f"promptkit-heartbeat-{run_id}")
        self.path, self.run_id = path, run_id
        self._stop_event = threading.Event()

    def run(self) -> None:
        interval = max(0.05, lease_seconds() / 3)  # a lease of a microsecond must not make it spin
        while not self._stop_event.wait(interval):
            try:
                db = dbfile.connect(self.path)
                try:
                    db.execute("UPDATE runs SET heartbeat = ? WHERE id = ? AND status = 'running'",
                               (time.time(), self.run_id))
                finally:
                    db.close()
            except sqlite3.Error:
                pass  # a missed beat: the next one, or the next batch's write, renews the lease

    def stop(self) -> None:
        self._stop_event.set()


def _new_run_id() -> str:
    """Sortable by start time, readable, short enough to type: 6 random hex digits per second."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def store_error(path: Path, e: Exception) -> PromptkitError:
    """A failed read or write of the run store file as one PromptkitError naming it: locked, a damaged record, damaged."""
    if isinstance(e, sqlite3.Error) and dbfile.is_locked(e):
        return PromptkitError(f"the run store stayed locked by another process for {lock_timeout():.0f} s",
                              where=str(path), hint="answers already paid for are in the cache: resume the run "
                              "with 'promptkit eval ... --resume' (or raise PROMPTKIT_LOCK_TIMEOUT)")
    if isinstance(e, (ValueError, TypeError, KeyError)):
        return PromptkitError(f"the run store holds a damaged record ({type(e).__name__}: {e})",
                              where=str(path), hint=RECOVER.format(path))
    return PromptkitError(f"the run store is damaged: {e}", where=str(path), hint=RECOVER.format(path))


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Reads of the run store file (by RunStore or another connection, such as the viewer's): failures as store_error."""
    try:
        yield
    except PromptkitError:
        raise
    except (sqlite3.Error, ValueError, TypeError, KeyError) as e:
        raise store_error(path, e) from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


COLUMNS = "id, created, finished, status, settings, metrics, extra, plan_hash, pid, host, heartbeat"


def _record(row: tuple[Any, ...]) -> RunRecord:
    run_id, created, finished, status, settings, metrics, extra, plan_hash, pid, host, heartbeat = row
    settings, metrics, extra = json.loads(settings), json.loads(metrics or "[]"), json.loads(extra or "{}")
    if not isinstance(settings, dict) or not isinstance(metrics, list) or not isinstance(extra, dict) \
            or not all(isinstance(m, dict) and "name" in m and all(_number(m.get(k)) for k in ("value", "low", "high"))
                       for m in metrics):
        raise ValueError(f"run {run_id} has settings, metrics or extra of the wrong shape")
    return RunRecord(str(run_id), str(created), finished, str(status), settings, metrics, extra, plan_hash,
                     pid if isinstance(pid, int) else None, host,
                     float(heartbeat) if isinstance(heartbeat, (int, float)) else None)


def _number(value: object) -> bool:
    """A stored metric value, bound or nothing: the pages and reports format it as a number."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def process_alive(record: RunRecord) -> bool:
    """Whether a 'running' run is still being run. Its lease decides: a run whose heartbeat is
    older than lease_seconds() is not running (its process was killed, its container is gone,
    or its pid now belongs to another program). Within the lease, a run on this host counts as
    alive only while its pid does; one on another host is trusted. A record from before
    heartbeats: this host checks the pid, another host cannot be checked and counts as gone."""
    if record.status != "running" or record.pid is None:
        return False
    if record.heartbeat is not None and time.time() - record.heartbeat > lease_seconds():
        return False
    if record.host and record.host != socket.gethostname():
        return record.heartbeat is not None
    if record.pid == os.getpid():
        return False
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(record.pid)


def check_resumable(record: RunRecord, force: bool = False) -> None:
    """Refuse to resume a finished run, or one still running in another process (unless `force`)."""
    if record.status == "finished":
        raise ConfigError(f"run {record.id} is already finished", hint="drop --resume to start a new run")
    if process_alive(record) and not force:
        raise ConfigError(f"run {record.id} is still running (process {record.pid} on {record.host})",
                          hint="wait for it (its lease runs out when it stops beating), or take it over with "
                               "--resume --force once you know it has stopped")


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
