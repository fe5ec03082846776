"""Helpers for the `promptkit view` tests (helper "view"): a running app, and a run full of hostile text."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTILE_OUTPUT = '<script>window.__pwned = 1</script><b>bold</b>'
HOSTILE_INPUT = '<img src=x onerror="window.__pwned = 2">'
HOSTILE_PROMPT = '<i>evil</i>@v1'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_view(project: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """(process, start-up URL with its token). Waits until the app answers."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "promptkit", "--project", str(project), "view", "--port", str(port),
                                *args], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "promptkit view: http" in line, line
    url = line.split("promptkit view: ")[1].split()[0]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/prompts", timeout=2).read()
            return process, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    process.kill()
    raise AssertionError("promptkit view never answered")


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def hostile_run(project: Path) -> str:
    """A stored run whose prompt name, input and output carry HTML and script."""
    from promptkit.results import ExampleResult, MetricValue
    from promptkit.runs import RunStore

    store = RunStore(project / ".promptkit" / "runs.db")
    try:
        run_id = store.create_run({"prompt": HOSTILE_PROMPT, "prompt_hash": "<h1>x</h1>", "suite": "<u>suite</u>",
                                   "model": "fake:<s>m</s>", "task": "generation", "examples": 2,
                                   "dataset": "/tmp/<b>d</b>.jsonl", "decoding": {"stop": ["</td>"]}})
        results = [ExampleResult(f"e{i}", i, {"text": HOSTILE_INPUT}, "<em>expected</em>", HOSTILE_OUTPUT, HOSTILE_OUTPUT,
                                 False, latency=0.01) for i in range(2)]
        store.add_results(run_id, results)
        store.finish_run(run_id, [MetricValue("exact_match", 0.0, True, 0.0, 0.6, n=2)])
    finally:
        store.close()
    return run_id
