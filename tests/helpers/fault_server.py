"""A local OpenAI-compatible server with fixed outputs that injects faults: 429 with Retry-After,
500, timeouts (answers after the client gave up) and malformed bodies, on a share of requests.

Library use (tests):  with FaultServer(fault_rate=0.2) as server: ... server.url ... server.injected
Command line (benchmarks):  python tests/helpers/fault_server.py --latency 0.05  (prints its URL, serves until killed)

Completions with echo+logprobs return word-level tokens with deterministic log-probabilities, so
label scores are the same on every run; generation returns `reply`; `usage` counts words
(usage=False leaves it out, so that clients count tokens themselves)."""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = ("rate_limit", "server_error", "timeout", "malformed")
TOKEN = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")


def token_logprob(prefix: str, token: str) -> float:
    """A fixed pseudo log-probability of `token` after `prefix`; 'good' words favour positive."""
    digest = int(hashlib.sha256((prefix + "\x00" + token).encode()).hexdigest()[:8], 16)
    value = -0.5 - (digest % 1000) / 250
    lowered = prefix.lower()
    if token.strip() == "positive":
        value += 3 * sum(w in lowered for w in ("great", "good", "love", "excellent", "best"))
    if token.strip() == "negative":
        value += 3 * sum(w in lowered for w in ("bad", "terrible", "worst", "awful", "not"))
    return value


def words(text: str) -> int:
    return max(1, len(TOKEN.findall(text)))


class FaultServer:
    def __init__(self, fault_rate: float = 0.0, latency: float = 0.0, seed: int = 0, kinds: tuple[str, ...] = KINDS,
                 timeout_delay: float = 1.0, retry_after: str = "0.02", reply: str = "positive",
                 logprobs: bool = True, usage: bool = True, host: str = "127.0.0.1", port: int = 0):
        self.fault_rate, self.latency, self.kinds = fault_rate, latency, kinds
        self.timeout_delay, self.retry_after, self.reply, self.logprobs = timeout_delay, retry_after, reply, logprobs
        self.usage = usage
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self.auth_headers: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out without waiting for a delayed ACK
            wbufsize = 1 << 16  # one write per response (flushed after each request)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            def do_GET(self) -> None:
                self.send(200, json.dumps({"object": "list", "data": [{"id": "fixed", "object": "model"}]}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.auth_headers.append(self.headers.get("Authorization", ""))
                fault = server.pick_fault()
                if server.latency:
                    time.sleep(server.latency)
                if fault == "rate_limit":
                    error = {"error": {"message": "slow down", "type": "rate_limit_error"}}
                    return self.send(429, json.dumps(error).encode(), {"Retry-After": server.retry_after})
                if fault == "server_error":
                    return self.send(500, b'{"error": {"message": "boom", "type": "server_error"}}')
                if fault == "timeout":
                    time.sleep(server.timeout_delay)
                if fault == "malformed":
                    return self.send(200, b'{"id": "cmpl-1", "choices": [{"text": "posi')
                status, answer = server.answer(self.path, body)
                if not server.usage:
                    answer.pop("usage", None)
                self.send(status, json.dumps(answer).encode())

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]  # clients that gave up
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def pick_fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            if self.fault_rate and self.random.random() < self.fault_rate:
                kind = self.random.choice(self.kinds)
                self.injected[kind] += 1
                return kind
        return None

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path.endswith("/chat/completions"):
            prompt_tokens = sum(words(m.get("content", "")) + 4 for m in body.get("messages", [])) + 3
            choice = {"index": 0, "message": {"role": "assistant", "content": self.reply}, "finish_reason": "stop"}
            return 200, {"object": "chat.completion", "choices": [choice],
                         "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": words(self.reply)}}
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else prompts or [""]
        echo, logprobs = body.get("echo"), body.get("logprobs")
        if echo and logprobs is not None and not self.logprobs:
            return 400, {"error": {"message": "echo with logprobs is not supported", "type": "invalid_request_error"}}
        choices = []
        for index, prompt in enumerate(prompts):
            if echo and logprobs is not None:
                matches = list(TOKEN.finditer(prompt))
                lp = {"tokens": [m.group() for m in matches], "text_offset": [m.start() for m in matches],
                      "token_logprobs": [None] + [token_logprob(prompt[: m.start()], m.group()) for m in matches[1:]],
                      "top_logprobs": None}
                choices.append({"index": index, "text": prompt, "logprobs": lp, "finish_reason": "length"})
            else:
                choices.append({"index": index, "text": self.reply, "logprobs": None, "finish_reason": "stop"})
        generated = 0 if body.get("max_tokens") == 0 else words(self.reply) * len(prompts)
        return 200, {"object": "text_completion", "choices": choices,
                     "usage": {"prompt_tokens": sum(words(p) for p in prompts), "completion_tokens": generated}}

    def start(self) -> FaultServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    args = parser.parse_args()
    server = FaultServer(fault_rate=args.fault_rate, latency=args.latency, port=args.port)
    print(server.url, flush=True)
    try:
        server.httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
