"""Two evals (real subprocesses, slow fake model) writing the same SQLite run store at once both finish."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.hard_helpers import make_slow_project, start_eval, store_check, store_rows


def test_two_evals_share_one_run_store(tmp_path: Path) -> None:
    rows = 30
    project = make_slow_project(tmp_path / "project", rows=rows, batch=1, delay=0.005)
    procs = [start_eval(project), start_eval(project)]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    db = project / ".promptkit" / "runs.db"
    assert store_check(db) == []
    runs = store_rows(db)
    assert len(runs) == 2
    assert all(len(results) == rows for results in runs.values())
    con = sqlite3.connect(str(db))
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        statuses = [s for (s,) in con.execute("SELECT status FROM runs")]
    finally:
        con.close()
    assert statuses == ["finished", "finished"]
