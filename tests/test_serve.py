"""`promptkit serve` on the embedded model, exercised over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptkit.evaluate import plan_eval, run_eval
from promptkit.models import resolve_model
from promptkit.project import Project
from tests.helpers.cli import run_cli
from tests.helpers.serving import ServeClient, serving

KEY = "sk-serve-test-key-0123"
pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def served(embedded_provider: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeClient]:
    """`promptkit serve --port 0` in a subprocess; the key comes from the environment."""
    _ = embedded_provider.hf_model  # converts the GGUF once into the session cache the server then reuses
    # Served in float32 like the fixture, so log-likelihoods can be compared to 1e-3 (bf16 rounding
    # depends on how requests are batched).
    home = tmp_path_factory.mktemp("serve-home")
    (home / ".promptkit").mkdir()
    (home / ".promptkit" / "models.yaml").write_text(
        f"smollm2-fp32:\n  provider: hf\n  model: {resolve_model('smollm2').model}\n  options: {{dtype: float32}}\n")
    with serving("--model", "smollm2-fp32", "--name", "smollm2", "--max-tokens", "8", "--max-body", "4096",
                 key=KEY, cwd=home) as client:
        yield client


def test_acceptance_eval_over_http_matches_hf(served: ServeClient, project: Path, embedded_provider: Any) -> None:
    """Acceptance 1: `promptkit eval` through the openai provider against `promptkit serve`
    gives the hf provider's labels (and log-likelihoods) on the same examples."""
    result = run_cli("eval", "prompts/sentiment", "--model", "openai:smollm2", "--limit", "8", "--no-store",
                     "-o", "r.json", cwd=project, timeout=300,
                     env={"OPENAI_BASE_URL": served.url, "OPENAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    over_http = json.loads((project / "r.json").read_text())["examples"]
    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("prompts/sentiment"), model="smollm2", limit=8)
    local = run_eval(plan, embedded_provider).results
    assert len(over_http) == len(local) == 8
    assert [e["prediction"] for e in over_http] == [r.prediction for r in local]
    for remote, here in zip(over_http, local, strict=True):
        assert remote["error"] is None and remote["scores"] is not None and here.scores is not None
        for label, value in here.scores.items():
            assert remote["scores"][label] == pytest.approx(value, abs=1e-3)
    assert KEY not in result.stdout + result.stderr + (project / "r.json").read_text()


def test_endpoints_and_errors(served: ServeClient) -> None:
    status, models = served.call("/models")
    assert status == 200 and models["data"][0]["id"] == "smollm2"
    assert served.call("/models", key=None)[0] == 401
    assert served.call("/models", key="wrong")[1]["error"]["type"] == "authentication_error"
    status, chat = served.call("/chat/completions", {"model": "smollm2", "max_tokens": 4, "logprobs": True,
                                                     "top_logprobs": 2,
                                                     "messages": [{"role": "user", "content": "Say hi"}]})
    assert status == 200 and isinstance(chat["choices"][0]["message"]["content"], str)
    assert 1 <= chat["usage"]["completion_tokens"] <= 4 and chat["usage"]["prompt_tokens"] > 3
    assert len(chat["choices"][0]["logprobs"]["content"]) == chat["usage"]["completion_tokens"]
    status, cmpl = served.call("/completions", {"model": "smollm2", "prompt": "One, two,", "max_tokens": 1000})
    assert status == 200 and cmpl["usage"]["completion_tokens"] <= 8  # capped by --max-tokens
    assert served.call("/completions", {"model": "gpt-4", "prompt": "x"})[1]["error"]["code"] == "model_not_found"
    assert served.call("/completions", raw=b"{not json")[0] == 400
    assert served.call("/completions", {"prompt": 5})[1]["error"]["param"] == "prompt"
    assert served.call("/completions", raw=b" " * 5000)[0] == 413
    assert served.call("/nowhere")[0] == 404
    assert KEY not in "".join(served.log)


def test_concurrent_scoring_requests_share_forward_passes(embedded_provider: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from promptkit.serve import ModelServer, ServeConfig

    server = ModelServer(embedded_provider, ServeConfig(name="m"))
    texts = [[f"Review: item {i} was {w}.\nSentiment: {label}" for label in ("negative", "positive")]
             for i, w in enumerate(["great", "awful", "fine", "bad"])]
    alone = [server.provider.token_logprobs(t, 0) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        merged = list(pool.map(lambda t: server.echo_batched(t, 0), texts))
    for one, many in zip(alone, merged, strict=True):
        for a, b in zip(one, many, strict=True):
            assert a["tokens"] == b["tokens"] and a["text_offset"] == b["text_offset"]
            assert b["token_logprobs"][1:] == pytest.approx(a["token_logprobs"][1:], abs=1e-3)
