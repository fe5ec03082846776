"""The response cache: keyed by everything that changes an output; hits skip (and never load) the model."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

import pytest

from promptkit.cache import ResponseCache, provider_identity, request_key
from promptkit.evaluate import plan_eval, run_eval
from promptkit.project import Project
from promptkit.providers.fake import FakeProvider
from promptkit.results import Request, Response
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import write_reviews
from tests.helpers.run_store import db_rows

BASE = Request(id="a", text="Review: fine\nSentiment:", labels=["negative", "positive"], label_prefix=" ",
               max_tokens=3, temperature=0.0, stop=["\n"], seed=None)


def test_key_changes_with_everything_that_changes_an_output() -> None:
    identity = provider_identity(FakeProvider("m"))
    key = request_key(identity, BASE)
    changed = [
        dataclasses.replace(BASE, text="Review: fine!\nSentiment:"),
        dataclasses.replace(BASE, text=None, messages=[{"role": "user", "content": "Review: fine"}]),
        dataclasses.replace(BASE, labels=["neg", "pos"]),
        dataclasses.replace(BASE, label_prefix=""),
        dataclasses.replace(BASE, max_tokens=4),
        dataclasses.replace(BASE, temperature=0.7),
        dataclasses.replace(BASE, stop=[]),
        dataclasses.replace(BASE, seed=1),
    ]
    keys = {request_key(identity, r) for r in changed}
    assert key not in keys and len(keys) == len(changed)
    assert request_key(provider_identity(FakeProvider("other")), BASE) != key
    assert request_key(provider_identity(FakeProvider("m", reply="x")), BASE) != key
    # Neither the example id nor speed settings change an output.
    assert request_key(identity, dataclasses.replace(BASE, id="b")) == key
    assert request_key(provider_identity(FakeProvider("m", batch_size=3, delay=0.1)), BASE) == key


class AdapterFake(FakeProvider):
    """A fake that takes an `adapter` option, as the hf provider does."""

    class Options(FakeProvider.Options):
        adapter: str | None = None


def test_model_and_adapter_files_are_fingerprinted(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.db")
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"weights v1")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"lora 1")
    first = request_key(provider_identity(AdapterFake(str(weights), adapter=str(adapter)), cache), BASE)
    assert request_key(provider_identity(AdapterFake(str(weights), adapter=str(adapter)), cache), BASE) == first
    (adapter / "adapter_model.safetensors").write_bytes(b"lora 2")
    second = request_key(provider_identity(AdapterFake(str(weights), adapter=str(adapter)), cache), BASE)
    weights.write_bytes(b"weights v2")
    third = request_key(provider_identity(AdapterFake(str(weights), adapter=str(adapter)), cache), BASE)
    assert len({first, second, third}) == 3


def _plan(project: Path, tmp_path: Path, n: int = 24, model: str = "fake:m"):  # type: ignore[no-untyped-def]
    proj = Project(project)
    return plan_eval(proj, proj.library.resolve("sentiment"), model=model, data=write_reviews(tmp_path / "d.jsonl", n))


def test_second_run_is_served_from_the_cache(project: Path, tmp_path: Path) -> None:
    plan = _plan(project, tmp_path)
    cache = ResponseCache(tmp_path / "cache.db")
    first_provider = FakeProvider("m", batch_size=5)
    first = run_eval(plan, first_provider, cache=cache)
    assert first_provider.calls == 24 and first.extra["cache_hits"] == 0
    second_provider = FakeProvider("m", batch_size=5)
    second = run_eval(plan, second_provider, cache=ResponseCache(tmp_path / "cache.db"))  # a new connection, same file
    assert second_provider.calls == 0
    assert second.extra["cache_hits"] == 24 and all(r.cached for r in second.results)
    strip = [(r.id, r.prediction, r.scores, r.tokens_in, r.tokens_out) for r in first.results]
    assert strip == [(r.id, r.prediction, r.scores, r.tokens_in, r.tokens_out) for r in second.results]
    assert second.metric("accuracy") == first.metric("accuracy")


def test_failures_are_not_cached(project: Path, tmp_path: Path) -> None:
    plan = _plan(project, tmp_path, n=12)
    cache = ResponseCache(tmp_path / "cache.db")
    run_eval(plan, FakeProvider("m", fail_every=3), cache=cache)
    assert len(cache) == 8
    retry = FakeProvider("m", fail_every=3)
    run = run_eval(plan, retry, cache=cache)
    assert retry.calls == 4 and run.extra["cache_hits"] == 8


def test_cache_is_a_real_sqlite_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state" / "cache.db"
    cache = ResponseCache(path)
    cache.put_many([("k", Response(output="positive", tokens_in=5, tokens_out=1))])
    cache.close()
    assert db_rows(path, "PRAGMA journal_mode") == [("wal",)]
    again = ResponseCache(path)
    assert again.get_many(["k", "missing"])["k"].output == "positive"
    assert (again.hits, again.misses) == (1, 1)
    with pytest.raises(sqlite3.IntegrityError):
        db_rows(path, "INSERT INTO responses (key, response, created) VALUES ('k', '{}', 'now')")


def test_cli_counts_hits_and_no_cache_bypasses(project: Path, tmp_path: Path) -> None:
    data = str(write_reviews(tmp_path / "d.jsonl", 10))
    assert run_cli_in_process(project, "eval", "sentiment", "-m", "fake:m", "--data", data).exit_code == 0
    again = run_cli_in_process(project, "eval", "sentiment", "-m", "fake:m", "--data", data)
    assert "10 of 10 from the cache" in again.output
    bypass = run_cli_in_process(project, "eval", "sentiment", "-m", "fake:m", "--data", data, "--no-cache")
    assert "0 of 10 from the cache" in bypass.output
    extras = [e for (e,) in db_rows(project / ".promptkit" / "runs.db", "SELECT extra FROM runs ORDER BY rowid")]
    assert ['"cache_hits": 0' in extras[0], '"cache_hits": 10' in extras[1], '"cache_hits": 0' in extras[2]] == [True] * 3


@pytest.mark.model
def test_cached_rerun_does_not_load_the_real_model(project: Path, tmp_path: Path, embedded_provider) -> None:  # type: ignore[no-untyped-def]
    from promptkit.providers.factory import open_provider

    plan = _plan(project, tmp_path, n=6, model="smollm2")
    cache = ResponseCache(tmp_path / "cache.db")
    first = run_eval(plan, embedded_provider, cache=cache)
    assert first.extra["cache_hits"] == 0 and not any(r.error for r in first.results)
    fresh = open_provider(plan.model, dtype="float32")  # the fixture's precision
    second = run_eval(plan, fresh, cache=ResponseCache(tmp_path / "cache.db"))
    assert second.extra["cache_hits"] == 6
    assert [r.prediction for r in second.results] == [r.prediction for r in first.results]
    assert fresh._model is None and fresh._tokenizer is None  # neither weights nor tokenizer were loaded


PROBE = """
import sys, runpy
sys.argv = ["promptkit", *sys.argv[1:]]
try:
    runpy.run_module("promptkit", run_name="__main__")
finally:
    print("torch imported:", "torch" in sys.modules, file=sys.stderr)
"""


@pytest.mark.model
def test_cached_rerun_process_never_imports_torch(project: Path, default_precision_provider) -> None:  # type: ignore[no-untyped-def]
    """Acceptance 4, the part a test can check: a fully cached `promptkit eval` process does not even
    import torch. (The 20x whole-process speedup is measured by benchmarks/cache_rerun.py.)"""
    import subprocess
    import sys

    from tests.helpers.projects import ROOT

    lazy = subprocess.run([sys.executable, "-c", "import sys, promptkit.providers.hf; print('torch' in sys.modules)"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert lazy.stdout.strip() == "False", "importing providers/hf.py must not import torch"
    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("sentiment"), limit=4)  # what `promptkit eval sentiment --limit 4` plans
    # The CLI runs the model at the machine's default precision ('auto'), which is part of the cache key.
    run_eval(plan, default_precision_provider, cache=ResponseCache(proj.state_dir / "cache.db"))
    done = subprocess.run([sys.executable, "-c", PROBE, "--project", str(project), "eval", "sentiment", "--limit", "4"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "4 of 4 from the cache" in done.stderr and "torch imported: False" in done.stderr
