"""Two evals (real subprocesses, slow fake model) writing the same SQLite run store at once both finish."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.helpers.kill_trials import start_slow_eval
from tests.helpers.projects import slow_project
from tests.helpers.run_store import store_check, store_rows


def test_two_evals_share_one_run_store(tmp_path: Path) -> None:
    rows = 30
    project = slow_project(tmp_path / "project", rows=rows, batch=1, delay=0.005)
    procs = [start_slow_eval(project), start_slow_eval(project)]
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


# ---------------------------------------------------------------- issue 18 class 1, issue 11 item 9

def test_four_evals_on_one_project_each_record_every_example_once(tmp_path: Path) -> None:
    rows = 20
    project = slow_project(tmp_path / "project", rows=rows, batch=2, delay=0.005)
    procs = [start_slow_eval(project) for _ in range(4)]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert "database is locked" not in err
    db = project / ".promptkit" / "runs.db"
    assert store_check(db) == []
    runs = store_rows(db)
    assert len(runs) == 4
    for results in runs.values():
        ids = [example_id for example_id, _ in results]
        assert len(ids) == rows and len(set(ids)) == rows


def test_brand_new_project_opened_by_16_processes(tmp_path: Path) -> None:
    """The busy timeout is set before WAL mode, and opening is serialised: none fails 'database is locked'."""
    from tests.helpers.races import open_race

    for rep in range(5):  # scripts/reliability.py repeats this 50 times
        project = tmp_path / f"new-{rep}"
        project.mkdir()
        assert open_race(project, tmp_path / f"work-{rep}", processes=16) == []


def test_concurrent_labels_and_new_versions_lose_nothing(tmp_path: Path) -> None:
    """20 `prompt label` and 20 `prompt new-version` at once, the working copy changing under them."""
    from tests.helpers.projects import copy_project
    from tests.helpers.races import library_race

    for rep in range(2):  # scripts/reliability.py repeats this 20 times
        project = copy_project(tmp_path / f"project-{rep}")
        result = library_race(project, tmp_path / f"work-{rep}", labels=20, publishers=20)
        assert result.problems == [], result.problems
        assert result.labels == 20 and result.published >= 1


def test_a_store_locked_past_the_timeout_is_a_clear_error(tmp_path: Path) -> None:
    """Another process holding the write lock longer than PROMPTKIT_LOCK_TIMEOUT: one line naming
    the file, exit 2, never an internal error."""
    import subprocess
    import sys
    import time

    from tests.helpers.cli import cli_env, run_cli
    from tests.helpers.projects import ROOT, copy_project

    project = copy_project(tmp_path / "project")
    first = run_cli("eval", "sentiment@v1", "-m", "fake:x", "--limit", "2", cwd=project, env=cli_env(), timeout=120)
    assert first.returncode == 0, first.stderr
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30)"),
        str(project / ".promptkit" / "runs.db")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        proc = run_cli("eval", "sentiment@v1", "-m", "fake:x", "--limit", "2", cwd=project,
                       env=cli_env(PROMPTKIT_LOCK_TIMEOUT="2"), timeout=120)
        assert time.monotonic() - start < 60
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "runs.db" in proc.stderr and "locked" in proc.stderr
    assert ROOT.exists()



def test_runs_started_in_the_same_second_with_the_same_suffix_get_distinct_ids(tmp_path: Path, monkeypatch) -> None:
    """Run ids are the start second plus 6 random hex digits: at about a thousand runs a second two
    would draw the same id; the store draws again instead of failing the second run."""
    import itertools
    import uuid
    from datetime import datetime, timezone

    from promptkit import runs

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime(2026, 12, 3, tzinfo=timezone.utc)

    draws = itertools.chain([uuid.UUID(int=1)] * 3, (uuid.UUID(int=(k + 1) << 124) for k in itertools.count()))
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    monkeypatch.setattr(runs, "datetime", Frozen)
    store = runs.RunStore(tmp_path / "runs.db")
    first = store.create_run({"prompt": "p@v1"})
    second = store.create_run({"prompt": "p@v1"})
    store.close()
    assert first == "20261203-000000-000000" and second == "20261203-000000-100000"


def test_a_second_store_in_one_process_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops all of the process's fcntl locks on it, SQLite's
    included: a header check that opened and closed runs.db let another process take the store
    for unused, checkpoint and delete the WAL under a connection still writing (disk I/O error)."""
    import subprocess
    import sys

    from promptkit.runs import RunStore

    db = tmp_path / "runs.db"
    first = RunStore(db)
    for i in range(20):
        first.create_run({"prompt": f"a{i}"})
    RunStore(db).close()  # e.g. the view's per-request store, or a second eval in one process
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from promptkit.runs import RunStore; "
                    "s = RunStore(Path(sys.argv[1])); s.create_run({'prompt': 'other'}); s.close()", str(db)],
                   check=True, timeout=120)
    for i in range(20):
        first.create_run({"prompt": f"b{i}"})
    again = RunStore(db)  # while the first is still open
    try:
        assert len(again.runs(limit=100)) == 41
    finally:
        again.close()
        first.close()
    assert store_check(db) == []


def test_a_fifo_in_place_of_the_run_store_is_refused_at_once(tmp_path: Path) -> None:
    import os
    import time

    import pytest

    from promptkit.errors import PromptkitError
    from promptkit.runs import RunStore

    fifo = tmp_path / "runs.db"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(PromptkitError, match="not a regular file") as caught:
        RunStore(fifo)
    assert time.monotonic() - start < 5 and caught.value.where == str(fifo)


def test_commands_run_in_one_process_close_their_stores(tmp_path: Path) -> None:
    """A library user (or a test) running commands in-process keeps no descriptor of runs.db or
    cache.db once each returns: the CLI hands its stores to click's context, which closes them."""
    import gc
    import os

    from tests.helpers.cli import run_cli_in_process
    from tests.helpers.projects import copy_project

    project = copy_project(tmp_path / "project")

    def open_stores() -> list[str]:
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(project)) and ".db" in target:
                found.append(target)
        return found

    gc.collect()
    gc.disable()  # so that only closing, not the garbage collector, releases them
    try:
        for args in (["eval", "sentiment@v1", "-m", "fake:x", "--limit", "3"], ["runs", "list"],
                     ["eval", "sentiment@v1", "-m", "fake:x", "--limit", "3", "--estimate"]):
            result = run_cli_in_process(project, *args)
            assert result.exit_code == 0, result.output
            assert open_stores() == [], args
    finally:
        gc.enable()
