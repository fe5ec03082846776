"""Acceptance 5: kill -9 during a 1000-example run, then --resume: exactly 1000 results, none twice."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli_in_process, start_cli
from tests.helpers.projects import register_model, write_reviews
from tests.helpers.run_store import db_rows


def _start(project: Path, *args: str) -> subprocess.Popen[str]:
    return start_cli("--project", str(project), "eval", "prompts/sentiment", *args)


def _wait_for_results(db: Path, at_least: int, proc: subprocess.Popen[str], timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"eval ended before it could be interrupted: {proc.communicate()}"
        if db.is_file():
            try:
                (count,) = db_rows(db, "SELECT COUNT(*) FROM results")[0]
            except Exception:  # noqa: BLE001 - the schema may not exist yet
                count = 0
            if count >= at_least:
                return int(count)
        time.sleep(0.05)
    raise AssertionError("no results appeared in time")


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_kill_9_then_resume_holds_exactly_1000_results(project: Path, tmp_path: Path, cache: bool) -> None:
    data = write_reviews(tmp_path / "reviews.jsonl", 1000)
    register_model(project, "slowfake", delay=0.004, batch_size=10, keywords={"positive": ["great"], "negative": ["awful"]})
    extra = [] if cache else ["--no-cache"]
    db = project / ".promptkit" / "runs.db"
    proc = _start(project, "-m", "slowfake", "--data", str(data), *extra)
    _wait_for_results(db, 200, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    ((run_id, status),) = db_rows(db, "SELECT id, status FROM runs")
    assert status == "running"  # killed: it never got to say otherwise
    before = dict(db_rows(db, "SELECT example_id, data FROM results WHERE run_id = ?", run_id))
    assert 200 <= len(before) < 1000
    assert "killed (resumable)" in run_cli_in_process(project, "runs", "list").output

    result = run_cli_in_process(project, "eval", "prompts/sentiment", "-m", "slowfake", "--data", str(data), "--resume", *extra)
    assert result.exit_code == 0, result.output
    ids = [row[0] for row in db_rows(db, "SELECT example_id FROM results WHERE run_id = ?", run_id)]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    assert db_rows(db, "SELECT COUNT(*) FROM runs") == [(1,)]  # continued, not restarted
    (status, extra_json) = db_rows(db, "SELECT status, extra FROM runs WHERE id = ?", run_id)[0]
    assert status == "finished"
    assert json.loads(extra_json)["resumed_with"] == len(before)
    # What was recorded before the kill is kept as it was, not redone.
    after = dict(db_rows(db, "SELECT example_id, data FROM results WHERE run_id = ?", run_id))
    assert all(after[k] == v for k, v in before.items())
    expected = {json.loads(line)["text"] for line in data.read_text().splitlines()}
    assert {json.loads(v)["input"]["text"] for v in after.values()} == expected


def test_resume_needs_an_unfinished_run_of_the_same_plan(project: Path, tmp_path: Path) -> None:
    data = write_reviews(tmp_path / "reviews.jsonl", 20)
    first = run_cli_in_process(project, "eval", "prompts/sentiment", "-m", "fake:a", "--data", str(data))
    assert first.exit_code == 0, first.output
    again = run_cli_in_process(project, "eval", "prompts/sentiment", "-m", "fake:a", "--data", str(data), "--resume")
    assert again.exit_code == 2 and "no unfinished run" in again.output
    (run_id,) = db_rows(project / ".promptkit" / "runs.db", "SELECT id FROM runs")[0]
    finished = run_cli_in_process(project, "eval", "prompts/sentiment", "-m", "fake:a", "--data", str(data), "--resume", run_id)
    assert finished.exit_code == 2 and "already finished" in finished.output
    other = run_cli_in_process(project, "eval", "prompts/sentiment", "-m", "fake:b", "--data", str(data), "--resume", run_id)
    assert other.exit_code == 2 and "other settings" in other.output


def test_ctrl_c_leaves_the_run_interrupted_and_resumable(project: Path, tmp_path: Path) -> None:
    from promptkit.evaluate import plan_eval, run_eval
    from promptkit.project import Project
    from promptkit.providers.fake import FakeProvider
    from promptkit.runs import RunStore

    class Interrupting(FakeProvider):
        def _complete(self, requests):  # type: ignore[no-untyped-def]
            if self.calls >= 30:
                raise KeyboardInterrupt
            return super()._complete(requests)

    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("sentiment"), model="fake:x", data=write_reviews(tmp_path / "d.jsonl", 100))
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(KeyboardInterrupt):
        run_eval(plan, Interrupting("x", batch_size=10), store=store)
    (record,) = store.runs()
    assert record.status == "interrupted" and store.count_results(record.id) == 30
    run = run_eval(plan, FakeProvider("x", batch_size=10), store=store, run_id=record.id)
    assert run.status == "finished" and len(run.results) == 100 and store.count_results(record.id) == 100
    assert store.latest_unfinished(plan.hash) is None
