"""A programmable local HTTP endpoint for tests (127.0.0.1 only): `answer(path, headers, body)`
returns (status, JSON-able body) or (status, bytes, seconds between bytes) to trickle the body."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[str, dict[str, str], dict[str, Any]], tuple[Any, ...]]


class ScriptedServer:
    def __init__(self, answer: Answer):
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"path": self.path, "body": body, "headers": headers})
                status, payload, *trickle = server.answer(self.path, headers, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if trickle:
                        for i in range(len(data)):
                            self.wfile.write(data[i: i + 1])
                            self.wfile.flush()
                            time.sleep(trickle[0])
                    else:
                        self.wfile.write(data)
                except OSError:  # the client gave up
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_reply(content: str, top: list[tuple[str, float]] | None = None, usage: int = 10) -> dict[str, Any]:
    """A chat completion; with `top`, the first token's top_logprobs (OpenAI/vLLM shape)."""
    logprobs = None
    if top is not None:
        logprobs = {"content": [{"token": top[0][0], "logprob": top[0][1],
                                 "top_logprobs": [{"token": t, "logprob": v} for t, v in top]}]}
    return {"object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": logprobs,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": usage, "completion_tokens": 1}}
