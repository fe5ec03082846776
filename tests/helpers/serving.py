"""`promptkit serve` and `promptkit view` started in the background for tests, and a small client for serve."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.cli import start_cli
from tests.helpers.projects import ROOT


def start_serve(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str, list[str]]:
    """(process, base URL, stderr lines read so far). The URL comes from the server's ready line."""
    process = start_cli("serve", "--port", "0", *args, cwd=cwd, env=env, stdout=None)
    assert process.stderr is not None
    log: list[str] = []
    for line in process.stderr:
        log.append(line)
        if "promptkit serve: model" in line:
            return process, line.split(" at ")[1].split()[0], log
    process.wait(timeout=30)
    raise AssertionError("promptkit serve never became ready:\n" + "".join(log))


_SERVER_KEY = object()


class ServeClient:
    """JSON over HTTP to a running `promptkit serve`; `log` keeps growing with the server's stderr."""

    def __init__(self, process: subprocess.Popen[str], url: str, log: list[str], key: str | None):
        self.process, self.url, self.log, self.key = process, url, log, key

    def call(self, path: str, body: Any = None, key: Any = _SERVER_KEY, raw: bytes | None = None) -> tuple[int, Any]:
        """(status, JSON answer): POST when there is a body, GET otherwise; `key=None` sends no key."""
        key = self.key if key is _SERVER_KEY else key
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET")
        request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


@contextmanager
def serving(*args: str, key: str | None = None, cwd: Path = ROOT) -> Iterator[ServeClient]:
    """`promptkit serve --port 0 ARGS` in `cwd` (the key, if any, from the environment) until the block ends."""
    process, url, log = start_serve(*args, cwd=cwd, env={"PROMPTKIT_SERVE_API_KEY": key} if key else None)
    drain = threading.Thread(target=lambda: log.extend(process.stderr or []), daemon=True)
    drain.start()
    try:
        yield ServeClient(process, url, log, key)
    finally:
        process.terminate()
        process.wait(timeout=30)
        drain.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_view(project: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """(process, start-up URL with its token). Waits until the app answers."""
    port = free_port()
    process = start_cli("--project", str(project), "view", "--port", str(port), *args, stdout=subprocess.DEVNULL)
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
