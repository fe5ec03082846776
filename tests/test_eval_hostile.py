"""Hostile inputs to the eval run, the run store, the response cache and the project's model and price
files: each test is one bug found by attacking them (the docstring says what was wrong)."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import toy_project
from tests.helpers.run_store import db_rows


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return toy_project(tmp_path / "toy", n=20)


def _eval(root: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_cli_in_process(root, "eval", "toy", *args)


def _set(db: Path, query: str, *args: object) -> None:
    con = sqlite3.connect(str(db))
    with con:
        con.execute(query, args)
    con.close()


POISONED_RESPONSES = [
    '{"output": "positive", "tokens_in": "abc", "scores": {"positive": 1, "negative": 0}}',
    '{"output": "positive", "scores": [1, 2]}',
    '{"output": "positive", "scores": {"positive": "x", "negative": 0}}',
    '{"output": "positive", "scores": {"positive": NaN, "negative": 0}}',
    '{"output": "positive", "scores": {"positive": null, "negative": 0}}',
    '{"output": "positive", "cost": NaN, "tokens_in": 5}',
    '{"output": "positive", "latency": "slow"}',
    '{"output": "positive", "error": 5}',
]


@pytest.mark.parametrize("poison", POISONED_RESPONSES)
def test_poisoned_cache_entries_are_misses(toy: Path, poison: str) -> None:
    """A cache row of the right keys but wrong types (tokens as text, scores as a list or text, NaN,
    an error) was returned as a hit: the run crashed with exit 3 (TypeError, AttributeError) or scored
    NaN. Now such a row is a miss: the model is asked again and the row replaced."""
    assert _eval(toy, "--no-store").exit_code == 0
    cache = toy / ".promptkit" / "cache.db"
    _set(cache, "UPDATE responses SET response = ?", poison)
    again = _eval(toy, "--no-store")
    assert again.exit_code == 0, again.output
    assert re.search(r"\b0 of 20 from the cache", again.output), again.output
    third = _eval(toy, "--no-store")  # the poisoned rows were replaced by good answers
    assert re.search(r"\b20 of 20 from the cache", third.output), third.output


@pytest.mark.parametrize(("field", "value"), [("cost", "zz"), ("tokens_in", "zz"), ("scores", "zz"), ("input", 5),
                                              ("index", "zz"), ("latency", -1), ("correct", "yes"),
                                              ("assertions", "zz")])
def test_damaged_result_row_is_exit_2_naming_the_store(toy: Path, field: str, value: object) -> None:
    """A results row whose JSON holds a field of the wrong type loaded fine and crashed `runs show`
    (and a resume of the run) with exit 3 when its cost was summed or its scores read. Now reading it
    is one error naming the run store, the run and the example (exit 2)."""
    assert _eval(toy).exit_code == 0
    db = toy / ".promptkit" / "runs.db"
    (run_id,) = db_rows(db, "SELECT id FROM runs")[0]
    _set(db, "UPDATE results SET data = json_set(data, ?, json(?)) WHERE idx = 3", f"$.{field}", json.dumps(value))
    shown = run_cli_in_process(toy, "runs", "show", run_id, "-o", str(toy / "report.html"))
    assert shown.exit_code == 2, shown.output
    assert "runs.db" in shown.output and "damaged" in shown.output and field in shown.output
    _set(db, "UPDATE runs SET status = 'interrupted'")
    resumed = _eval(toy, "--resume", run_id)
    assert resumed.exit_code == 2, resumed.output
    assert "runs.db" in resumed.output


def test_resume_refuses_a_run_whose_provider_options_changed(toy: Path) -> None:
    """The plan hash left the provider options out: after changing the suite's provider_options (the
    fake's keywords here; an openai base_url or `scoring` alike), `--resume` continued the old run, so
    half its examples were answered by one model setup and half by another, under one run id. Now
    the options that change answers are part of the plan: the resume is refused."""
    assert _eval(toy).exit_code == 0
    db = toy / ".promptkit" / "runs.db"
    (run_id,) = db_rows(db, "SELECT id FROM runs")[0]
    _set(db, "UPDATE runs SET status = 'interrupted'")
    _set(db, "DELETE FROM results WHERE idx >= 10")
    suite_path = toy / "evals" / "toy.yaml"
    suite = yaml.safe_load(suite_path.read_text())
    suite["provider_options"]["keywords"] = {"positive": ["awful"], "negative": ["great"]}
    suite_path.write_text(yaml.safe_dump(suite))

    latest = _eval(toy, "--resume")
    assert latest.exit_code == 2 and "no unfinished run" in latest.output, latest.output
    given = _eval(toy, "--resume", run_id)
    assert given.exit_code == 2 and "other settings" in given.output, given.output
    assert db_rows(db, "SELECT COUNT(*) FROM results") == [(10,)]  # nothing was mixed in
    # options that never change an answer (batch size) do not stand in the way of a resume
    suite["provider_options"] = {"keywords": {"positive": ["great"], "negative": ["awful"]}, "batch_size": 7}
    suite_path.write_text(yaml.safe_dump(suite))
    assert _eval(toy, "--resume").exit_code == 0
    assert db_rows(db, "SELECT COUNT(*), SUM(json_extract(data, '$.correct')) FROM results") == [(20, 20)]


def test_a_run_taken_by_another_process_after_the_check_is_not_claimed(toy: Path) -> None:
    """`eval --resume` checked that the run was not running, then (after probing the endpoint) claimed
    it with an unconditional UPDATE: two resumes started together both passed the check and both ran
    the run, paying twice (and a run finished meanwhile was reopened). Now the claim checks and marks
    in one write transaction; here another live process took the run between the check and the claim."""
    from promptkit.errors import ConfigError
    from promptkit.evaluate import plan_eval, run_eval
    from promptkit.project import Project
    from promptkit.providers.factory import open_provider
    from promptkit.runs import RunStore

    assert _eval(toy).exit_code == 0
    db = toy / ".promptkit" / "runs.db"
    (run_id,) = db_rows(db, "SELECT id FROM runs")[0]
    _set(db, "DELETE FROM results WHERE idx >= 10")
    project = Project(toy)
    plan = plan_eval(project, project.library.resolve("toy"))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _set(db, "UPDATE runs SET status = 'running', finished = NULL, pid = ?, host = ?, heartbeat = ?",
             other.pid, socket.gethostname(), time.time())
        with RunStore(db) as store:
            provider = open_provider(plan.model, project)
            with pytest.raises(ConfigError, match="still running"):
                run_eval(plan, provider, store=store, run_id=run_id)
        assert db_rows(db, "SELECT pid, status FROM runs") == [(other.pid, "running")]
        assert db_rows(db, "SELECT COUNT(*) FROM results") == [(10,)]

        _set(db, "UPDATE runs SET status = 'finished', pid = NULL")  # finished by the other process meanwhile
        with RunStore(db) as store, pytest.raises(ConfigError, match="already finished"):
            run_eval(plan, open_provider(plan.model, project), store=store, run_id=run_id)
    finally:
        other.kill()
        other.wait()


MODEL_ENTRIES = [
    ("m1: {provider: [fake], model: x}\n", ".promptkit/models.yaml:1", "'provider' must be text"),
    ("m1: {provider: {a: 1}}\n", ".promptkit/models.yaml:1", "'provider' must be text"),
    ("m1: {provider: fake, model: [x]}\n", ".promptkit/models.yaml:1", "'model' must be text"),
    ("m1:\n  provider: fake\n  model: x\n  optoins: {keywords: {positive: [great]}}\n", ".promptkit/models.yaml:4",
     "unknown key 'optoins'"),
    ("m1:\n  provider: fake\n  model: x\n  options:\n    batch_size: 2\n    keywordz: 1\n",
     ".promptkit/models.yaml:6", "unknown option 'keywordz'"),
    ("m1:\n  provider: fake\n  options: {batch_size: -3}\n", ".promptkit/models.yaml:3", "batch_size"),
    ("123: {provider: fake, model: x}\n", ".promptkit/models.yaml:1", "is not text"),
]


@pytest.mark.parametrize(("text", "where", "message"), MODEL_ENTRIES)
def test_models_yaml_mistakes_are_exit_2_at_their_line(toy: Path, text: str, where: str, message: str) -> None:
    """models.yaml entries were barely checked: a provider written as a list or mapping crashed with
    exit 3 (unhashable type), so did a model name written as a number (on any unknown -m); a list as
    model was used as the text "['x']"; a misspelt key (`optoins:`) was dropped silently, running the
    model without its options; and a bad option was reported without naming the file. Now each is
    exit 2 naming models.yaml and the line."""
    (toy / ".promptkit").mkdir()
    (toy / ".promptkit" / "models.yaml").write_text(text)
    result = _eval(toy, "-m", "m1", "--no-store", "--no-cache")
    assert result.exit_code == 2, result.output
    assert f"{toy}/{where}" in result.output and message in result.output, result.output


@pytest.mark.parametrize(("text", "where", "message"), [
    ("prices:\n  gpt-4o-mini: {input: 1" + "0" * 400 + ", output: 1}\n", "promptkit.yaml:2", "finite numbers"),
    ("prices:\n  gpt-4o-mini: {input: 0.1, output: 1}\npricse: {fake-model: {input: 1}}\n", "promptkit.yaml:3",
     "unknown key 'pricse'"),
    ("- prices\n", "promptkit.yaml", "expected a mapping"),
])
def test_promptkit_yaml_mistakes_are_exit_2(toy: Path, text: str, where: str, message: str) -> None:
    """promptkit.yaml: an integer price too large for a float crashed with exit 3 (OverflowError); a
    misspelt top-level key (`pricse:`) was ignored, so the built-in prices silently stayed in force;
    errors named the key but not the line. Now each is exit 2 naming the file and line."""
    (toy / "promptkit.yaml").write_text(text)
    result = _eval(toy, "--no-store", "--no-cache")
    assert result.exit_code == 2, result.output
    assert f"{toy}/{where}" in result.output and message in result.output, result.output


def test_runs_list_limit_out_of_range(toy: Path) -> None:
    """`runs list --limit` took any integer: one beyond 64 bits crashed with exit 3 (OverflowError from
    SQLite) and a negative one listed every run. Now it must be 1 or more, and a huge one lists all."""
    assert _eval(toy).exit_code == 0
    huge = run_cli_in_process(toy, "runs", "list", "--limit", "9" * 30)
    assert huge.exit_code == 0, huge.output
    for bad in ("-5", "0"):
        refused = run_cli_in_process(toy, "runs", "list", "--limit", bad)
        assert refused.exit_code == 2 and "--limit" in refused.output


def test_huge_run_lease_keeps_the_heartbeat_alive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PROMPTKIT_RUN_LEASE=1e300 passed as a finite lease: the heartbeat thread's wait overflowed at once
    (a traceback on stderr in the middle of the run, and no heartbeat). Out-of-range values now fall back to
    the default, as garbage does."""
    from promptkit.runs import RunStore, lease_seconds

    errors: list[BaseException] = []
    monkeypatch.setattr("threading.excepthook", lambda args: errors.append(args.exc_value))
    monkeypatch.setenv("PROMPTKIT_RUN_LEASE", "1e300")
    assert lease_seconds() == 120.0
    with RunStore(tmp_path / "runs.db") as store:
        store.create_run({"prompt": "p@v1"})
        time.sleep(0.2)
        assert store._beat is not None and store._beat.is_alive()
    assert errors == []
