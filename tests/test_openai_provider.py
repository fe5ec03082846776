"""The openai provider over real HTTP against local OpenAI-compatible servers (127.0.0.1 only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptkit.evaluate import plan_eval, run_eval
from promptkit.project import Project
from promptkit.providers.factory import open_provider
from promptkit.providers.openai import count_tiktoken, retry_after
from promptkit.results import Request
from tests.helpers.cli import run_cli, start_cli
from tests.helpers.fault_server import FaultServer

FAST = {"timeout": 1.0, "backoff": 0.005, "max_backoff": 0.05, "max_retries": 10}


def plan_for(project: Path, limit: int = 20):  # type: ignore[no-untyped-def]
    proj = Project(project)
    return plan_eval(proj, proj.library.resolve("prompts/sentiment"), model="openai:fixed", limit=limit)


def test_retry_after_parsing() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_tiktoken_counts_offline() -> None:
    assert count_tiktoken("hello world") == 2


def test_scores_labels_through_logprobs(project: Path) -> None:
    plan = plan_for(project)
    with FaultServer() as server:
        provider = open_provider("openai:fixed", base_url=server.url, api_key="sk-test-secret", **{**FAST, "timeout": 10})
        run = run_eval(plan, provider)
        provider.close()
    assert plan.scoring == "loglik"
    assert all(r.error is None and r.scores and set(r.scores) == {"negative", "positive"} for r in run.results)
    assert all(r.tokens_in > 0 for r in run.results)
    assert provider.stats["requests"] == len(plan.examples) and provider.stats["retries"] == 0
    assert set(server.auth_headers) == {"Bearer sk-test-secret"}


def test_acceptance_faults_retried_nothing_lost(project: Path) -> None:
    """Acceptance 2: 429 (Retry-After), 500, timeouts and malformed bodies on 20% of requests."""
    plan = plan_for(project, limit=40)
    with FaultServer() as clean:
        expected = run_eval(plan, open_provider("openai:fixed", base_url=clean.url, **FAST))
    with FaultServer(fault_rate=0.2, seed=3, timeout_delay=1.6) as server:
        provider = open_provider("openai:fixed", base_url=server.url, concurrency=8, **FAST)
        run = run_eval(plan, provider)
        provider.close()
    assert len(run.results) == len(plan.examples) == 40
    assert [r.id for r in run.results] == [e.id for e in plan.examples]
    assert all(r.error is None for r in run.results)
    assert [r.prediction for r in run.results] == [r.prediction for r in expected.results]
    stats = provider.stats
    assert sum(server.injected.values()) >= 4 and set(server.injected) == {"rate_limit", "server_error", "timeout",
                                                                           "malformed"}
    assert stats["faults"]["rate_limit"] == server.injected["rate_limit"]
    assert stats["faults"]["server_error"] == server.injected["server_error"]
    assert stats["faults"]["malformed"] == server.injected["malformed"]
    # A loaded machine can time out a healthy request too: every injected timeout is seen, maybe more.
    assert stats["faults"]["timeout"] >= server.injected["timeout"]
    assert stats["retries"] >= sum(server.injected.values()) and stats["failed"] == 0
    summary = provider.fault_summary()  # type: ignore[attr-defined]
    assert summary and "rate_limit" in summary and "timeout" in summary


def test_gives_up_as_data_not_exception(project: Path) -> None:
    plan = plan_for(project, limit=3)
    with FaultServer(fault_rate=1.0, kinds=("server_error",)) as server:
        provider = open_provider("openai:fixed", base_url=server.url, api_key="sk-hidden-123",
                                 **{**FAST, "max_retries": 2})
        run = run_eval(plan, provider)
    assert all(r.error and "HTTP 500" in r.error and "gave up after 3 attempts" in r.error for r in run.results)
    assert provider.stats["failed"] == 3 and provider.stats["faults"]["server_error"] == 9
    assert "sk-hidden-123" not in json.dumps(provider.identity) + "".join(r.error or "" for r in run.results)


def test_falls_back_to_generation_without_logprobs(project: Path) -> None:
    plan = plan_for(project, limit=4)
    with FaultServer(logprobs=False, reply="Negative.") as server:
        provider = open_provider("openai:fixed", base_url=server.url, **FAST)
        run = run_eval(plan, provider)
    assert all(r.error is None and r.scores is None and r.prediction == "negative" for r in run.results)
    assert all(r.tokens_out > 0 for r in run.results)


def test_chat_messages_and_cost(tmp_path: Path) -> None:
    (tmp_path / "promptkit.yaml").write_text("prices:\n  fixed: {input: 1000000, output: 2000000}\n")
    with FaultServer(reply="hello there") as server:
        provider = open_provider("openai:fixed", Project(tmp_path), base_url=server.url, **FAST)
        [response] = provider.complete([Request(id="1", messages=[{"role": "user", "content": "Say hi"}])])
    assert response.error is None and response.output == "hello there"
    assert (response.tokens_in, response.tokens_out) == (9, 2)
    assert response.cost == pytest.approx(9 * 1 + 2 * 2)


def test_unreachable_endpoint_is_an_error_per_example() -> None:
    """An endpoint never reached is declared down after two attempts; later requests fail at once."""
    provider = open_provider("openai:fixed", base_url="http://127.0.0.1:9/v1", **{**FAST, "concurrency": 1})
    responses = provider.complete([Request(id=str(i), text="x") for i in range(3)])
    assert all(r.error and "connection" in r.error for r in responses)
    assert provider.stats["faults"]["connection"] == 2
    assert provider.fatal and "cannot reach http://127.0.0.1:9/v1" in provider.fatal


def test_eval_cli_through_registered_openai_model(project: Path) -> None:
    """`promptkit eval --model NAME` with a registered openai model whose options set base_url."""
    with FaultServer(fault_rate=0.2, seed=5, timeout_delay=1.6) as server:
        (project / ".promptkit").mkdir()
        entry = {"flaky": {"provider": "openai", "model": "fixed", "options": {"base_url": server.url, **FAST}}}
        (project / ".promptkit" / "models.yaml").write_text(json.dumps(entry))
        result = run_cli("eval", "prompts/sentiment", "--model", "flaky", "--limit", "12", "--no-store",
                         "-o", "r.json", cwd=project, env={"OPENAI_API_KEY": "sk-never-logged"}, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((project / "r.json").read_text())
    assert len(report["examples"]) == 12 and all(e["error"] is None for e in report["examples"])
    assert sum(server.injected.values()) > 0
    assert "retries" in result.stderr  # the provider's fault summary
    assert "sk-never-logged" not in result.stdout + result.stderr + (project / "r.json").read_text()


def test_without_usage_tokens_are_counted_like_the_estimate(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-from-named-env")
    plan = plan_for(project, limit=3)
    with FaultServer(usage=False) as server:
        provider = open_provider("openai:fixed", base_url=server.url, api_key_env="MY_KEY", **FAST)
        from promptkit.evaluate import build_request

        requests = [build_request(plan, e) for e in plan.examples]
        responses = provider.complete(requests)
    assert [r.tokens_in for r in responses] == [provider.prompt_tokens(q) for q in requests]
    assert all(r.tokens_in > 2 * count_tiktoken(q.text or "") - 2 for r, q in zip(responses, requests, strict=True))
    assert set(server.auth_headers) == {"Bearer sk-from-named-env"}


def test_serve_resolves_local_and_registered_models(project: Path) -> None:
    from promptkit.errors import ConfigError
    from promptkit.models import ALIASES
    from promptkit.serve import make_server

    (project / ".promptkit").mkdir()
    (project / ".promptkit" / "models.yaml").write_text(json.dumps({"mine": {"provider": "hf", "model": ALIASES["smollm2"][1]}}))
    server = make_server("mine", Project(project), api_key="k")
    assert server.config.name == "mine" and server.provider.name == "hf" and server.provider._model is None
    assert make_server("smollm2", name="small").models()["data"][0]["id"] == "small"
    with pytest.raises(ConfigError, match="runs local models"):
        make_server("openai:gpt-4o-mini")


def test_ctrl_c_stops_waiting_retries_at_once(project: Path) -> None:
    import signal
    import time


    with FaultServer(fault_rate=1.0, kinds=("rate_limit",), retry_after="20") as server:
        (project / ".promptkit").mkdir()
        entry = {"slow": {"provider": "openai", "model": "fixed", "options": {"base_url": server.url, "max_backoff": 30}}}
        (project / ".promptkit" / "models.yaml").write_text(json.dumps(entry))
        process = start_cli("eval", "prompts/sentiment", "--model", "slow", "--limit", "4", "--no-store", cwd=project,
                            stdout=None)
        deadline = time.monotonic() + 60
        while server.requests < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        start = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - start < 10
    assert process.returncode == 130, stderr
