"""The hosted backend with the official openai client over real HTTP against a local double."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptkit.errors import ConfigError
from tests.helpers.finetune_server import FineTuneServer
from tests.helpers.projects import tune_job, tune_project


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with FineTuneServer() as d:
        monkeypatch.setenv("OPENAI_BASE_URL", d.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        yield d


OPTS = {"poll_interval": 0.01, "suffix": "review", "epochs": 2}


def _job(tmp_path: Path, **kw):  # type: ignore[no-untyped-def]
    messages: list[str] = []
    job = tune_job(tune_project(tmp_path), OPTS, notify=messages.append, evaluate=kw.pop("evaluate", False), **kw)
    return job, messages


def test_success_registers_model_and_records_job(tmp_path: Path, double: FineTuneServer) -> None:
    from promptkit.models import resolve_model
    from promptkit.tune.hosted import OpenAITuner, jobs_file

    asked: list[str] = []
    job, messages = _job(tmp_path, confirm=lambda m: asked.append(m) or True)
    estimate = OpenAITuner().estimate(job)
    assert estimate.examples == 16 and estimate.epochs == 2 and estimate.cost and estimate.cost > 0
    result = OpenAITuner().run(job)
    assert asked and "billed tokens" in asked[0] and "$" in asked[0]
    assert result.manifest["fine_tuned_model"].startswith("ft:gpt-4o-mini")
    ref = resolve_model("review-tuned", job.project.models)
    assert (ref.provider, ref.model) == ("openai", result.manifest["fine_tuned_model"])
    created = [r for r in double.state.requests if r == ("POST", "/v1/fine_tuning/jobs")]
    assert len(created) == 1
    posted = next(iter(double.state.jobs.values()))
    assert posted["method"]["type"] == "supervised" and posted["validation_file"] and posted["suffix"] == "review"
    uploaded = double.state.contents[posted["training_file"]].decode().splitlines()
    assert json.loads(uploaded[0])["messages"][-1]["role"] == "assistant"
    assert any("successfully completed" in m for m in messages)
    assert "sk-test" not in jobs_file(job.project).read_text()
    # a re-run picks up the recorded job: no second job, no second upload
    OpenAITuner().run(job)
    assert len([r for r in double.state.requests if r == ("POST", "/v1/fine_tuning/jobs")]) == 1
    assert len([r for r in double.state.requests if r == ("POST", "/v1/files")]) == 2  # train + validation, once


def test_failure_gives_the_error(tmp_path: Path, double: FineTuneServer) -> None:
    from promptkit.tune.hosted import OpenAITuner, TuneFailed

    double.state.behaviour = "fail"
    job, _ = _job(tmp_path)
    with pytest.raises(TuneFailed, match="failed: invalid_training_file: Example 3 has no assistant message"):
        OpenAITuner().run(job)


def test_cancelled_while_following(tmp_path: Path, double: FineTuneServer) -> None:
    from promptkit.tune.hosted import OpenAITuner, TuneFailed

    double.state.behaviour = "cancel"
    job, _ = _job(tmp_path)
    with pytest.raises(TuneFailed, match="was cancelled"):
        OpenAITuner().run(job)
    # cancelled jobs are not picked up again: a re-run starts a new one
    double.state.behaviour = "succeed"
    OpenAITuner().run(job)
    assert len(double.state.jobs) == 2


def test_cancel_status_list(tmp_path: Path, double: FineTuneServer) -> None:
    from promptkit.tune.hosted import OpenAITuner, TuneFailed, cancel_job, job_status, list_jobs

    double.state.behaviour = "hang"
    job, _ = _job(tmp_path)
    job.options["follow_timeout"] = 0.05
    with pytest.raises(TuneFailed, match="still running"):
        OpenAITuner().run(job)
    job_id = next(iter(double.state.jobs))
    assert [j.id for j in list_jobs(job.project)] == [job_id]
    assert cancel_job(job.project, job_id).status == "cancelled"
    current, events = job_status(job.project, job_id)
    assert current.status == "cancelled" and "cancelled" in events[0].message


def test_not_confirmed_uploads_nothing(tmp_path: Path, double: FineTuneServer) -> None:
    from promptkit.tune.hosted import OpenAITuner, TuneFailed

    job, _ = _job(tmp_path, confirm=lambda m: False)
    with pytest.raises(TuneFailed, match="not confirmed"):
        OpenAITuner().run(job)
    assert double.state.requests == []


def test_rules() -> None:
    from promptkit.tune.openai_rules import billed_tokens, validate

    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "positive"}]}
    assert validate([good] * 10) == []
    bad = [{"messages": [{"role": "user", "content": "hi"}]},
           {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": ""}]},
           {"messages": [{"role": "user", "content": "x" * 100}, {"role": "assistant", "content": "y"}]}]
    text = [str(p) for p in validate(bad, count=len, max_tokens=50)]
    assert any("at least 10" in t for t in text)
    assert "example 1: no assistant message to learn from" in text
    assert any("unknown role 'robot'" in t for t in text)
    assert any("(assistant) has no content" in t for t in text)
    assert any(t.startswith("example 3:") and "limit" in t for t in text)
    assert billed_tokens([good], 3, count=len) == 3 * (3 + 3 + 4 + 2 + 3 + 9 + 8)


def test_text_prompt_refused(tmp_path: Path, double: FineTuneServer) -> None:
    from promptkit.tune.hosted import OpenAITuner

    job = tune_job(tune_project(tmp_path, style="text"), OPTS)
    with pytest.raises(ConfigError, match="chat examples"):
        OpenAITuner().run(job)


def test_eval_of_fine_tuned_model(tmp_path: Path, double: FineTuneServer) -> None:
    from promptkit.runs import RunStore
    from promptkit.tune.hosted import OpenAITuner

    job, _ = _job(tmp_path, evaluate=True)
    result = OpenAITuner().run(job)
    assert result.comparison is not None
    run = RunStore(job.project.runs_path).run(result.comparison.after.run_id)
    assert run.settings["fine_tuned_model"] == result.manifest["fine_tuned_model"]
    assert run.settings["prompt"] == "review@working" and run.settings["dataset_hash"]


def test_cli_hosted_tune_list_status_cancel(tmp_path: Path, double: FineTuneServer) -> None:
    from tests.helpers.cli import run_cli

    root = tune_project(tmp_path)
    env = {"OPENAI_BASE_URL": double.url, "OPENAI_API_KEY": "sk-test-not-real", "COLUMNS": "200"}
    result = run_cli("tune", "review", "--backend", "openai", "--force", "--yes", "--no-eval", "--epochs", "2",
                     "--poll-interval", "0.01", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    assert "billed" not in result.stdout and "openai on gpt-4o-mini" in result.stderr and "$" in result.stderr
    assert "tuned model: openai:ft:gpt-4o-mini" in result.stdout
    job_id = next(iter(double.state.jobs))
    listed = run_cli("tune", "list", cwd=root, env=env)
    assert listed.returncode == 0 and job_id in listed.stdout and "succeeded" in listed.stdout
    double.state.behaviour = "fail"
    failed = run_cli("tune", "review", "--backend", "openai", "--force", "--yes", "--no-eval", "--epochs", "3",
                     "--poll-interval", "0.01", cwd=root, env=env)
    assert failed.returncode == 1 and "failed: invalid_training_file" in failed.stderr and "Traceback" not in failed.stderr
    failed_id = next(j for j in double.state.jobs if j != job_id)
    status = run_cli("tune", "status", failed_id, cwd=root, env=env)
    assert status.returncode == 0 and "failed" in status.stdout and "Example 3" in status.stdout
    cancel = run_cli("tune", "cancel", failed_id, cwd=root, env=env)
    assert cancel.returncode == 1 and "already failed" in cancel.stderr and "internal error" not in cancel.stderr
