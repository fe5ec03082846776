"""Reading a project's run store (.promptkit/runs.db) straight from SQLite, as a check on what promptkit wrote."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


def db_rows(path: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(str(path), timeout=30)
    try:
        return list(db.execute(query, args))
    finally:
        db.close()


def store_rows(db: Path) -> dict[str, list[tuple[str, str]]]:
    """run id -> [(example id, data)] read from the run store (read-only, while others write)."""
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        runs = {run_id: [] for (run_id,) in con.execute("SELECT id FROM runs")}
        for run_id, example_id, data in con.execute("SELECT run_id, example_id, data FROM results"):
            runs.setdefault(run_id, []).append((example_id, data))
        return runs
    except sqlite3.OperationalError:  # tables not created yet
        return {}
    finally:
        con.close()


def run_status(db: Path, run_id: str) -> str | None:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def store_check(db: Path) -> list[str]:
    """Problems with a run store file: integrity, and rows that are not whole example results."""
    problems = []
    con = sqlite3.connect(str(db), timeout=30)
    try:
        (status,) = con.execute("PRAGMA integrity_check").fetchone()
        if status != "ok":
            problems.append(f"integrity_check: {status}")
        keys = {"id", "index", "input", "expected", "output", "prediction", "correct", "error", "tokens_in", "latency"}
        for example_id, data in con.execute("SELECT example_id, data FROM results"):
            try:
                row = json.loads(data)
            except ValueError:
                problems.append(f"result {example_id} is not JSON")
                continue
            if not keys <= set(row) or row["id"] != example_id:
                problems.append(f"result {example_id} is partial")
    finally:
        con.close()
    return problems
