"""Issue 18 classes 9 and 11, new cases of their own (counted by scripts/reliability.py): a key echoed
inside an error body or a chat reply never reaches stderr, reports or the run store; an endpoint that
accepts the connection and never answers, and one that answers 500 and then goes down, end the run
fast with exit 1 and one clear line."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from tests.helpers.cli import run_cli
from tests.helpers.scripted_server import ScriptedServer, chat_reply
from tests.test_http_eval import KEY, _register

WRITTEN = ("r.json", ".promptkit/runs.db", ".promptkit/cache.db")


def _no_key_anywhere(project: Path, output: str) -> None:
    assert KEY not in output
    for name in WRITTEN:
        path = project / name
        if path.exists():
            assert KEY.encode() not in path.read_bytes(), path


def test_class9_key_echoed_inside_a_json_error_body(project: Path) -> None:
    def answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[Any, ...]:
        return 400, {"error": {"message": f"bad request from {headers.get('authorization')}"}}

    with ScriptedServer(answer) as double:
        _register(project, double.url, scoring="generate")
        result = run_cli("eval", "sentiment", "--model", "remote", "--limit", "3", "-o", "r.json", cwd=project,
                         env={"OPENAI_API_KEY": KEY}, timeout=60)
    assert result.returncode == 1, result.stderr
    _no_key_anywhere(project, result.stdout + result.stderr)


def test_class9_key_echoed_in_a_chat_reply(project: Path) -> None:
    def answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[Any, ...]:
        return 200, chat_reply(f"positive, and your key is {headers.get('authorization', '')[7:]}")

    with ScriptedServer(answer) as double:
        _register(project, double.url)
        result = run_cli("eval", "sentiment-chat", "--model", "remote", "--limit", "3", "-o", "r.json", cwd=project,
                         env={"OPENAI_API_KEY": KEY}, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    _no_key_anywhere(project, result.stdout + result.stderr)


def test_class11_endpoint_that_accepts_and_never_answers(project: Path) -> None:
    with socket.socket() as silent:  # the kernel accepts connections into the backlog; nobody reads them
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        _register(project, f"http://127.0.0.1:{port}/v1", timeout=1.0, max_retries=0, scoring="generate")
        start = time.monotonic()
        result = run_cli("eval", "sentiment", "--model", "remote", "--limit", "3", cwd=project, timeout=90)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - start < 30
    assert "request took longer than the 1 s timeout" in result.stderr and "Traceback" not in result.stderr


def test_class11_endpoint_that_answers_500_then_goes_down(project: Path) -> None:
    with ScriptedServer(lambda *a: (500, {"error": {"message": "internal server error"}})) as double:
        url = double.url
        _register(project, url, scoring="generate")
        first = run_cli("eval", "sentiment", "--model", "remote", "--limit", "3", cwd=project, timeout=60)
    assert first.returncode == 1 and "Traceback" not in first.stderr
    start = time.monotonic()
    down = run_cli("eval", "sentiment", "--model", "remote", "--limit", "20", "--no-cache", cwd=project, timeout=60)
    assert down.returncode == 1, down.stderr
    assert time.monotonic() - start < 8
    assert f"cannot reach {url}" in down.stderr
