"""promptkit runs list/show/compare over a real run store file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from promptkit.runs import RunStore
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import write_reviews
from tests.helpers.run_store import db_rows


def test_list_and_show(project: Path, tmp_path: Path) -> None:
    data = str(write_reviews(tmp_path / "d.jsonl", 12))
    assert run_cli_in_process(project, "eval", "sentiment", "-m", "fake:gpt-4o-mini", "--data", data).exit_code == 0
    store = RunStore(project / ".promptkit" / "runs.db")
    (run,) = store.runs()
    assert run.status == "finished" and run.plan_hash and store.count_results(run.id) == 12
    listed = run_cli_in_process(project, "runs", "list")
    assert listed.exit_code == 0 and run.id in listed.output and "finished" in listed.output
    shown = run_cli_in_process(project, "runs", "show", run.id[-6:])  # a unique part of the id is enough
    assert shown.exit_code == 0, shown.output
    for text in (run.id, "prompt_hash: bc821dedfd51", "dataset_hash:", "decoding:", "accuracy", "cost_total",
                 "results: 12 of 12", "cache_hits: 0"):
        assert text in shown.output, text
    missing = run_cli_in_process(project, "runs", "show", "nope")
    assert missing.exit_code == 2 and "no run 'nope'" in missing.output


def test_store_file_is_wal_with_one_row_per_example(project: Path, tmp_path: Path) -> None:
    data = str(write_reviews(tmp_path / "d.jsonl", 5))
    assert run_cli_in_process(project, "eval", "sentiment", "-m", "fake:m", "--data", data).exit_code == 0
    db = project / ".promptkit" / "runs.db"
    assert db_rows(db, "PRAGMA journal_mode") == [("wal",)]
    (run_id,) = db_rows(db, "SELECT id FROM runs")[0]
    conn = sqlite3.connect(str(db))
    try:
        conn.execute("INSERT INTO results (run_id, example_id, idx, data) VALUES (?, 'x', 0, '{}')", (run_id,))
        try:
            conn.execute("INSERT INTO results (run_id, example_id, idx, data) VALUES (?, 'x', 0, '{}')", (run_id,))
            raise AssertionError("a second result for one example must be refused")
        except sqlite3.IntegrityError:
            pass
    finally:
        conn.close()


def test_older_store_gains_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    conn = sqlite3.connect(str(path))
    conn.executescript("""
        CREATE TABLE runs (id TEXT PRIMARY KEY, created TEXT NOT NULL, finished TEXT, status TEXT NOT NULL,
            prompt TEXT, prompt_hash TEXT, suite TEXT, model TEXT, dataset_hash TEXT, settings TEXT NOT NULL, metrics TEXT);
        INSERT INTO runs VALUES ('old', '2026-01-01', NULL, 'finished', 'p@v1', 'h', 's', 'm', 'd', '{}', '[]');
    """)
    conn.close()
    store = RunStore(path)
    (old,) = store.runs()
    assert old.id == "old" and old.extra == {} and old.plan_hash is None
    store.create_run({"prompt": "p@v1"}, "plan")
    assert len(store.runs()) == 2


def test_run_ids_and_prompt_names_match_exactly_not_as_patterns(tmp_path: Path) -> None:
    """A part of a run id finds one run, never several (ambiguous: an error listing them), and '%' or '_'
    are characters, not LIKE wildcards; runs of prompt 'sent_a' are not those of 'sentXa' or 'SENT_A'."""
    import pytest

    from promptkit.errors import NotFoundError

    store = RunStore(tmp_path / "runs.db")
    ids = {name: store.create_run({"prompt": f"{name}@v1"}) for name in ("sent_a", "sentXa", "SENT_A")}
    with pytest.raises(NotFoundError, match="several run ids"):
        store.run(ids["sent_a"][:9])  # the date part every run of today shares
    for pattern in ("%", "_", "2%"):
        with pytest.raises(NotFoundError, match="no run"):
            store.run(pattern)
    assert store.run(ids["sentXa"][-6:]).id == ids["sentXa"]
    assert [r.id for r in store.runs(prompt="sent_a")] == [ids["sent_a"]]
    store.close()
