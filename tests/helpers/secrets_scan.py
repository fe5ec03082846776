"""The secrets scan: with a fake API key in the environment, run eval (fake model; the openai provider
against a local stub), check, tune and serve, then search every file written (project, .promptkit/,
cache, HOME, TMPDIR, reports) and everything printed for the key. Shared with scripts/reliability.py."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.helpers.cli import cli_env, run_cli, start_cli
from tests.helpers.json_handler import JSONHandler
from tests.helpers.projects import copy_project
from tests.helpers.serving import free_port


def commands() -> set[str]:
    from promptkit.cli import COMMANDS

    return set(COMMANDS)


def has_provider(name: str) -> bool:
    from promptkit.providers import providers

    return name in providers


class OpenAIDouble(JSONHandler):
    """A minimal OpenAI endpoint on 127.0.0.1. In `echo_key` mode it answers 401 with the caller's
    key in the message (as some gateways do), to check that promptkit redacts it."""

    echo_key = False
    seen_auth: list[str] = []  # noqa: RUF012 - shared on purpose, reset per server

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "double", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        auth = self.headers.get("Authorization", "")
        type(self).seen_auth.append(auth)
        if self.echo_key:
            self._send(401, {"error": {"message": f"Incorrect API key provided: {auth.removeprefix('Bearer ')}",
                                       "type": "invalid_request_error", "code": "invalid_api_key"}})
            return
        if body.get("echo") or (body.get("logprobs") is not None and "chat" not in self.path):
            self._send(400, {"error": {"message": "echo and logprobs are not supported", "type": "invalid_request_error"}})
            return
        usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
        if "chat" in self.path:
            choice = {"index": 0, "message": {"role": "assistant", "content": "positive"}, "finish_reason": "stop"}
            self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model"),
                             "choices": [choice], "usage": usage})
        else:
            prompts = body.get("prompt")
            count = len(prompts) if isinstance(prompts, list) else 1
            choices = [{"index": i, "text": " positive", "finish_reason": "stop", "logprobs": None} for i in range(count)]
            self._send(200, {"id": "x", "object": "text_completion", "created": 0, "model": body.get("model"),
                             "choices": choices, "usage": usage})


def start_double(echo_key: bool) -> tuple[ThreadingHTTPServer, str]:
    handler = type("Double", (OpenAIDouble,), {"echo_key": echo_key, "seen_auth": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def scan(roots: list[Path], texts: dict[str, str], key: str) -> list[str]:
    """Every place the key (or its random part) appears."""
    needles = [key.encode(), key.removeprefix("sk-test-").encode()]
    hits = [f"output of {name}" for name, text in texts.items() if any(n.decode() in text for n in needles)]
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if any(n in data for n in needles):
                    hits.append(str(path))
    return hits


PARTS = ("eval", "openai", "check", "tune", "serve")


def secrets_check(tmp: Path, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    """Run everything that exists with a fake key; returns {"ran": [...], "skipped": [...], "hits": [...]}.
    serve runs the embedded model: its converted copy is cached in PROMPTKIT_CACHE_DIR (scanned too)."""
    key = "sk-test-" + secrets.token_hex(16)
    project, home, cache, out, tmpdir = (tmp / n for n in ("project", "home", "cache", "out", "tmpdir"))
    copy_project(project)
    for folder in (home, cache, out, tmpdir):
        folder.mkdir(parents=True)
    suite = project / "evals" / "sentiment.yaml"
    suite.write_text(suite.read_text().replace("model: smollm2", "model: fake:x"))
    model_cache = Path(os.environ.get("PROMPTKIT_CACHE_DIR") or cache)
    env = cli_env(OPENAI_API_KEY=key, HOME=str(home), PROMPTKIT_CACHE_DIR=str(model_cache), TMPDIR=str(tmpdir),
                  XDG_CACHE_HOME=str(home / ".cache"))
    texts: dict[str, str] = {}
    ran: list[str] = []
    skipped: list[str] = []
    problems: list[str] = []

    def cli(name: str, *args: str, timeout: float = 180, **extra_env: str) -> subprocess.CompletedProcess[str]:
        proc = run_cli(*args, cwd=project, timeout=timeout, env={**env, **extra_env})
        texts[name] = proc.stdout + proc.stderr
        ran.append(name)
        return proc

    available = commands()
    if "eval" in parts:
        proc = cli("eval fake", "eval", "sentiment", "-m", "fake:x", "--limit", "6", "-o", str(out / "report.json"))
        if proc.returncode != 0:
            problems.append(f"eval fake failed: {proc.stderr[-500:]}")
        cli("runs list", "runs", "list")

    if "openai" not in parts:
        pass
    elif has_provider("openai"):
        for echo in (False, True):
            server, url = start_double(echo_key=echo)
            try:
                name = f"eval openai ({'key-echoing' if echo else 'plain'} double)"
                report = str(out / f"openai{echo}.json")
                proc = cli(name, "eval", "sentiment", "-m", "openai:double", "--limit", "4", "-o", report, OPENAI_BASE_URL=url)
                handler: Any = server.RequestHandlerClass
                if not any(key in auth for auth in handler.seen_auth):
                    problems.append(f"{name}: the double never received the key (exit {proc.returncode}: {proc.stderr[-300:]})")
            finally:
                server.shutdown()
    else:
        skipped.append("eval openai (provider not registered)")

    if "check" not in parts:
        pass
    elif "check" in available:
        cli("check", "check", "sentiment", "--limit", "4", "--junit", str(out / "junit.xml"), "--markdown",
            str(out / "check.md"), "--json", str(out / "check.json"))
    else:
        skipped.append("check (command missing)")

    if "tune" not in parts:
        pass
    elif "tune" in available:
        from tests.helpers.finetune_server import FineTuneServer
        from tests.helpers.projects import tune_project

        tune_root = tune_project(project / "tune-project")  # inside the scanned project folder
        with FineTuneServer() as double:
            proc = run_cli("tune", "review", "--backend", "openai", "--force", "--yes", "--no-eval", "--epochs", "2",
                           "--poll-interval", "0.01", cwd=tune_root, timeout=180, env={**env, "OPENAI_BASE_URL": double.url})
            texts["tune hosted"] = proc.stdout + proc.stderr
            ran.append("tune hosted")
            if proc.returncode != 0:
                problems.append(f"tune hosted failed: {proc.stderr[-500:]}")
    else:
        skipped.append("tune (command missing)")

    if "serve" not in parts:
        pass
    elif "serve" in available:
        port = free_port()
        serve = start_cli("serve", "-m", "smollm2", "--name", "served", "--port", str(port), cwd=project,
                          env={**env, "PROMPTKIT_SERVE_API_KEY": key})
        base = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(urllib.request.Request(f"{base}/models", headers={"Authorization": f"Bearer {key}"}),
                                           timeout=2).read()
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if serve.poll() is not None:
                        break
                    time.sleep(0.2)
            replies = []
            for auth in (f"Bearer {key}", "Bearer wrong-key", f"Bearer {key}x"):
                body = {"model": "served", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
                request = urllib.request.Request(f"{base}/chat/completions", method="POST", data=json.dumps(body).encode(),
                                                 headers={"Authorization": auth, "Content-Type": "application/json"})
                try:
                    replies.append(urllib.request.urlopen(request, timeout=10).read().decode())
                except urllib.error.HTTPError as e:
                    replies.append(e.read().decode())
                except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                    replies.append(str(e))
            texts["serve replies"] = "\n".join(replies)
            if '"choices"' not in replies[0] or any('"choices"' in reply for reply in replies[1:]):
                problems.append(f"serve with an API key: right key must answer, wrong keys must not: {replies}")
            if has_provider("openai"):
                cli("eval openai (via serve)", "eval", "sentiment", "-m", "openai:served", "--limit", "4", OPENAI_BASE_URL=base)
        finally:
            serve.terminate()
            try:
                stdout, stderr = serve.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                serve.kill()
                stdout, stderr = serve.communicate()
            texts["serve"] = stdout + stderr
            ran.append("serve")
    else:
        skipped.append("serve (command missing)")

    hits = scan([tmp] if model_cache.is_relative_to(tmp) else [tmp, model_cache], texts, key)
    return {"ran": ran, "skipped": skipped, "hits": hits, "problems": problems}
