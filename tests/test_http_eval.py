"""`promptkit eval` over the openai provider against local HTTP doubles (127.0.0.1 only):
chat label scoring and the scoring actually run, outputs checked before any call, runs that
cannot go on (bad key, dead endpoint, every example failed), whole-request deadlines, keys
echoed by an endpoint, label/target mismatches, prices and ignored options."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from promptkit.evaluate import plan_eval
from promptkit.project import Project
from promptkit.providers.factory import open_provider
from promptkit.results import Request
from tests.helpers.cli import run_cli
from tests.helpers.scripted_server import ScriptedServer, chat_reply

KEY = "sk-test-key-0123456789"
FAST = {"backoff": 0.005, "max_backoff": 0.05}


def _labels_by_text(project: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (project / "evals/data/sentiment.jsonl").read_text().splitlines() if line]
    return {r["text"]: r["label"] for r in rows}


def _register(project: Path, url: str, **options: Any) -> None:
    (project / ".promptkit").mkdir(exist_ok=True)
    entry = {"remote": {"provider": "openai", "model": "fixed", "options": {"base_url": url, **FAST, **options}}}
    (project / ".promptkit" / "models.yaml").write_text(json.dumps(entry))


def _run_settings(project: Path) -> dict[str, Any]:
    with sqlite3.connect(project / ".promptkit" / "runs.db") as db:
        status, settings, extra = db.execute("SELECT status, settings, extra FROM runs").fetchone()
    return {"status": status, **json.loads(settings), "extra": json.loads(extra or "{}")}


def test_chat_prompt_scored_by_first_token_where_the_endpoint_gives_top_logprobs(project: Path) -> None:
    """An OpenAI/vLLM-style endpoint: no `score_labels` extension (400), but first-token
    top_logprobs. The labels are scored from them, and header and run settings say so."""
    truth = _labels_by_text(project)

    def answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[Any, ...]:
        if "score_labels" in body:
            return 400, {"error": {"message": "Unrecognized request argument supplied: score_labels"}}
        user = body["messages"][-1]["content"]
        label = next(v for k, v in truth.items() if k in user)
        other = "negative" if label == "positive" else "positive"
        if not body.get("logprobs"):
            return 200, chat_reply("The customer review")
        return 200, chat_reply(label, [(label[:3], -0.2), ("The", -1.5), (" " + other, -2.5)])

    with ScriptedServer(answer) as double:
        _register(project, double.url)
        result = run_cli("eval", "sentiment-chat", "--model", "remote", "--limit", "20", "-o", "r.json",
                         cwd=project, env={"OPENAI_API_KEY": KEY}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "classification (loglik-first-token)" in result.stdout
    assert "first token" in result.stderr
    report = json.loads((project / "r.json").read_text())
    assert [e["prediction"] for e in report["examples"]] == [e["expected"] for e in report["examples"]]
    settings = _run_settings(project)
    assert settings["scoring"] == "loglik-first-token" and "first token" in settings["scoring_note"]
    assert settings["extra"]["scoring_modes"] == {"loglik-first-token": 20}
    # 1 refused extension call, then one call per example (the first one's answer is reused)
    assert len(double.requests) == 21


def test_chat_prompt_without_logprobs_says_it_generated(project: Path) -> None:
    def answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[Any, ...]:
        return 200, chat_reply("positive")  # ignores score_labels and logprobs alike

    with ScriptedServer(answer) as double:
        _register(project, double.url)
        result = run_cli("eval", "sentiment-chat", "--model", "remote", "--limit", "4", cwd=project,
                         env={"OPENAI_API_KEY": KEY}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "classification (generate)" in result.stdout and "(loglik)" not in result.stdout
    assert "returns no logprobs" in result.stderr
    assert _run_settings(project)["scoring"] == "generate"


def test_output_path_and_format_checked_before_any_model_call(project: Path) -> None:
    with ScriptedServer(lambda *a: (200, chat_reply("positive"))) as double:
        _register(project, double.url)
        bad = run_cli("eval", "sentiment", "--model", "remote", "-o", "r.txt", cwd=project, timeout=60)
        two = run_cli("eval", "sentiment@v1", "sentiment@v2", "--model", "remote", "-o", "two.html",
                      cwd=project, timeout=60)
    assert bad.returncode == 2 and "unknown report format '.txt'" in bad.stderr
    assert two.returncode == 2 and "comparison" in two.stderr and ".json" in two.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and len(two.stderr.strip().splitlines()) == 1
    assert double.requests == [] and not (project / "two.html").exists()


def test_targets_outside_the_label_set_stop_lint_and_eval(project: Path) -> None:
    yaml = project / "prompts/sentiment/prompt.yaml"
    yaml.write_text(yaml.read_text().replace("labels: [negative, positive]", "labels: [neg, negative]"))
    lint = run_cli("lint", cwd=project, timeout=120)
    assert lint.returncode != 0 and "unknown-target" in lint.stdout + lint.stderr
    assert "'positive'" in lint.stdout + lint.stderr
    result = run_cli("eval", "sentiment@working", "--model", "fake:x", "--no-store", cwd=project, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "'positive'" in result.stderr and "labels" in result.stderr


@pytest.mark.parametrize("suite", ["sentiment", "headline"])  # label scoring and generation
def test_bad_key_stops_the_run_at_the_first_401(project: Path, suite: str) -> None:
    def answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[Any, ...]:
        return 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}

    with ScriptedServer(answer) as double:
        _register(project, double.url)
        result = run_cli("eval", suite, "--model", "remote", "--limit", "5", cwd=project,
                         env={"OPENAI_API_KEY": KEY}, timeout=60)
    assert result.returncode == 1
    assert "authentication failed" in result.stderr and "401" in result.stderr
    assert result.stderr.count("authentication failed") == 1 and result.stdout.count("\n") <= 2
    assert len(double.requests) == 1  # no retry, no second example
    assert KEY not in result.stdout + result.stderr


def test_dead_endpoint_fails_the_run_fast(project: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _register(project, f"http://127.0.0.1:{port}/v1", backoff=0.5, max_backoff=30)  # default retries
    start = time.monotonic()
    result = run_cli("eval", "sentiment", "--model", "remote", "--limit", "20", cwd=project, timeout=60)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - start < 8
    assert f"cannot reach http://127.0.0.1:{port}/v1" in result.stderr


def test_a_run_whose_every_example_failed_exits_nonzero_and_is_recorded_failed(project: Path) -> None:
    def answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[Any, ...]:
        return 400, {"error": {"message": "model does not support this", "type": "invalid_request_error"}}

    with ScriptedServer(answer) as double:
        _register(project, double.url, scoring="generate")
        result = run_cli("eval", "sentiment", "--model", "remote", "--limit", "3", cwd=project, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "every example failed" in result.stderr
    assert _run_settings(project)["status"] == "failed"


def test_whole_request_is_bounded_by_the_timeout() -> None:
    body = json.dumps(chat_reply("positive " * 20)).encode()

    with ScriptedServer(lambda *a: (200, body, 0.05)) as double:  # ~15 s to trickle the whole body
        provider = open_provider("openai:fixed", base_url=double.url, api_key=KEY, timeout=1.0, max_retries=0)
        _ = provider.client  # imports openai before the clock starts
        start = time.monotonic()
        response = provider.complete([Request(id="a", messages=[{"role": "user", "content": "hi"}])])[0]
        took = time.monotonic() - start
        provider.close()
    assert response.error and "timeout" in response.error
    assert took < 2.5


def test_key_echoed_by_the_endpoint_is_redacted_everywhere(project: Path) -> None:
    def answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[Any, ...]:
        echoed = f"you sent {headers.get('authorization')}"
        return 200, {"choices": [{"index": 0, "text": echoed, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 5}}

    with ScriptedServer(answer) as double:
        _register(project, double.url)
        result = run_cli("eval", "headline", "--model", "remote", "--limit", "3", "-o", "r.html", cwd=project,
                         env={"OPENAI_API_KEY": KEY}, timeout=60)
    assert result.returncode == 0, result.stderr
    written = [project / "r.html", project / ".promptkit" / "runs.db", project / ".promptkit" / "cache.db"]
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    assert "you sent Bearer ***" in (project / "r.html").read_text()
    assert KEY not in result.stdout + result.stderr


def test_project_price_for_a_model_spec_applies(project: Path) -> None:
    (project / "promptkit.yaml").write_text("prices:\n  smollm2: {input: 2.5, output: 10}\n")
    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("prompts/sentiment"), model="smollm2", limit=2)
    assert (plan.price.input, plan.price.output) == (2.5, 10)


def test_options_that_have_no_effect_are_named(project: Path) -> None:
    result = run_cli("eval", "prompts/sentiment", "--model", "fake:x", "--temperature", "0.7", "-j", "4",
                     "--limit", "3", "--no-store", cwd=project, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--temperature has no effect on log-likelihood scoring" in result.stderr
    assert "-j/--concurrency applies to API models only" in result.stderr
