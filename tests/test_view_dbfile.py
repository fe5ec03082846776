"""The viewer opens runs.db through promptkit.dbfile (header check, open lock), like the run store."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptkit.dbfile import DamagedDatabase
from promptkit.runs import RunStore
from promptkit.view.queries import Queries, RunFilter
from promptkit.view.reviews import ReviewStore


def test_a_damaged_run_store_is_refused_by_both_view_connections(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"not an sqlite file, something else entirely")
    with pytest.raises(DamagedDatabase):
        ReviewStore(path)
    with pytest.raises(DamagedDatabase):
        Queries(path)


def test_reviews_and_queries_share_the_run_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    RunStore(path).close()
    ReviewStore(path).close()
    assert Queries(path).list_runs(RunFilter()).total == 0
