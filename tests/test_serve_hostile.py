"""`promptkit serve` against hostile and careless use, over real HTTP on 127.0.0.1: chat label
scoring that matches a local run, every numeric field validated, deeply nested JSON, bounded
prompts, slow clients cut off, a connection flood, and refusing to listen beyond loopback without a key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptkit.evaluate import plan_eval, run_eval
from promptkit.project import Project
from tests.helpers.cli import run_cli
from tests.helpers.projects import ROOT
from tests.helpers.serving import ServeClient, serving

KEY = "sk-hostile-test-key-42"


@pytest.fixture(scope="module")
def served(embedded_provider: Any) -> Iterator[ServeClient]:
    _ = embedded_provider.hf_model  # the converted model, shared with the server through the session cache
    with serving("--read-timeout", "1", "--max-connections", "32", "--max-prompt-tokens", "512", key=KEY) as client:
        yield client


@pytest.mark.model
def test_chat_prompt_over_serve_matches_the_local_run(served: ServeClient, project: Path, embedded_provider: Any) -> None:
    """Issue 11.1: a chat prompt over the openai provider is scored by label log-likelihood
    (serve's score_labels extension) and gives the local result, and says so."""
    result = run_cli("eval", "sentiment-chat", "--model", "openai:smollm2", "--limit", "20", "-o", "r.json",
                     cwd=project, timeout=600, env={"OPENAI_BASE_URL": served.url, "OPENAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert "classification (loglik)" in result.stdout
    report = json.loads((project / "r.json").read_text())
    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("sentiment-chat"), model="smollm2", limit=20)
    local = run_eval(plan, embedded_provider)
    remote = report["examples"]
    assert all(e["error"] is None and e["scores"] for e in remote)
    agree = sum(e["prediction"] == r.prediction for e, r in zip(remote, local.results, strict=True))
    assert agree == 20
    accuracy = report["metrics"]["accuracy"]["value"]
    assert abs(accuracy - (local.metric("accuracy") or 0)) <= 0.01
    assert report["settings"]["scoring"] == "loglik" and "scoring_note" not in report["settings"]


@pytest.mark.model
@pytest.mark.parametrize("field, value", [
    ("temperature", 1e308), ("temperature", -1), ("seed", -1), ("seed", 2**70), ("top_p", 5),
    ("presence_penalty", 1e9), ("max_tokens", -3), ("top_logprobs", 10**30), ("n", 2), ("stop", ["x"] * 9),
])
def test_numeric_fields_out_of_range_are_400(served: ServeClient, field: str, value: Any) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "logprobs": True, field: value}
    status, answer = served.call("/chat/completions", body)
    assert status == 400 and answer["error"]["param"] == field


@pytest.mark.model
def test_tiny_temperature_nested_json_and_long_prompts(served: ServeClient) -> None:
    status, _ = served.call("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
                                                  "temperature": 1e-300, "seed": 2**63 - 1})
    assert status == 200  # decoded greedily, not a sampling overflow
    status, answer = served.call("/completions", raw=b"[" * 50_000 + b"]" * 50_000)
    assert status == 400 and "nested" in answer["error"]["message"]
    status, answer = served.call("/completions", {"prompt": "word " * 600, "echo": True, "logprobs": 5, "max_tokens": 0})
    assert status == 400 and answer["error"]["code"] == "prompt_too_long"
    status, answer = served.call("/chat/completions", {"messages": [{"role": "user", "content": "x" * 200_000}]})
    assert status == 400 and answer["error"]["code"] == "prompt_too_long"
    status, answer = served.call("/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                       "score_labels": [{"a": 1}]})
    assert status == 400 and answer["error"]["param"] == "score_labels"


@pytest.mark.model
def test_hostile_clients_script_small(served: ServeClient) -> None:
    """Acceptance 18.5 in small: slow headers and bodies are cut off, a connection flood and a
    large echo leave normal requests answered within 1 s, memory stays under 2 GB."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "hostile_clients.py"), "--url", served.url, "--key", KEY,
         "--pid", str(served.process.pid), "--connections", "150", "--slow", "8", "--duration", "4", "--tick", "0.2",
         "--echo-bytes", "200000", "--max-latency", "1.0"],
        capture_output=True, text=True, timeout=120)
    summary = json.loads(result.stdout)
    assert result.returncode == 0, summary
    assert summary["slow_header_sockets_cut_off"] == 8 and summary["slow_body_sockets_cut_off"] == 8
    assert summary["server_peak_rss_mb"] < 2048


def test_refuses_to_listen_beyond_loopback_without_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMPTKIT_SERVE_API_KEY"}
    exposed = run_cli("serve", "--host", "0.0.0.0", "--port", "0", cwd=tmp_path, env=env, timeout=60)
    assert exposed.returncode == 2 and "--insecure" in exposed.stderr
    assert len(exposed.stderr.strip().splitlines()) == 1
    empty = run_cli("serve", "--port", "0", cwd=tmp_path, env={**env, "PROMPTKIT_SERVE_API_KEY": ""}, timeout=60)
    assert empty.returncode == 2 and "API key is empty" in empty.stderr


def test_hostile_script_refuses_other_hosts() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "hostile_clients.py"), "--url",
                             "http://192.0.2.1:8000/v1"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "loopback" in result.stderr
