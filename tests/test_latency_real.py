"""Latency as measured, against the real parts: the openai provider over real HTTP times each
call; the embedded model times each batch and shares it among the batch's examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptkit.evaluate import plan_eval, run_eval
from promptkit.project import Project
from promptkit.providers.factory import open_provider
from tests.helpers.fault_server import FaultServer

FAST = {"timeout": 2.0, "backoff": 0.005, "max_backoff": 0.05, "max_retries": 3}


def _latency(run) -> dict:  # type: ignore[no-untyped-def]
    return {m.name: m for m in run.metrics if m.name.startswith("latency_")}


def test_api_provider_latency_is_per_call(project: Path) -> None:
    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("prompts/sentiment"), model="openai:fixed", limit=12)
    with FaultServer(latency=0.01) as server:
        provider = open_provider("openai:fixed", base_url=server.url, **FAST)
        run = run_eval(plan, provider)
        provider.close()
    p95 = _latency(run)["latency_p95"]
    assert p95.n == 12 and p95.note == "per call, over 12 calls"
    assert p95.value >= 0.01 and p95.low is not None and p95.low <= p95.value <= p95.high


@pytest.mark.model
def test_local_batches_report_per_batch_time_amortised(project: Path, embedded_provider) -> None:  # type: ignore[no-untyped-def]
    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("prompts/sentiment"), limit=20)
    run = run_eval(plan, embedded_provider)
    latency = {r.latency for r in run.results}
    assert len(latency) < len(run.results)  # examples of one batch share its time
    p50 = _latency(run)["latency_p50"]
    assert p50.note is not None and p50.note.startswith("per batch, amortised per example")
    assert p50.n == len(latency) < 20
