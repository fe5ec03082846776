"""A local test double of OpenAI's files and fine_tuning.jobs endpoints (stdlib http.server, 127.0.0.1).

Each retrieve of a job advances it one state: validating_files -> running -> (succeeded | failed),
per the server's `behaviour`: "succeed", "fail", "hang" (stays running until cancelled) or
"cancel" (cancelled from elsewhere while being followed). `/v1/chat/completions` answers with the
first label found in the system prompt so the fine-tuned model can be evaluated."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.helpers.json_handler import JSONHandler


class State:
    def __init__(self) -> None:
        self.behaviour = "succeed"
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def event(self, job_id: str, message: str, level: str = "info") -> None:
        self.events[job_id].append({"id": f"ftevent-{uuid.uuid4().hex[:12]}", "object": "fine_tuning.job.event",
                                    "created_at": int(time.time()), "level": level, "message": message,
                                    "type": "message", "data": {}})

    def advance(self, job: dict[str, Any]) -> None:
        status, jid = job["status"], job["id"]
        if status in ("succeeded", "failed", "cancelled"):
            return
        if status == "validating_files":
            job["status"] = "running"
            self.event(jid, "Fine-tuning job started")
            return
        if self.behaviour == "hang":
            self.event(jid, "Step 1/10: training loss=0.91")
            return
        if self.behaviour == "cancel":
            job["status"] = "cancelled"
            self.event(jid, "Fine-tuning job cancelled")
        elif self.behaviour == "fail":
            job["status"] = "failed"
            job["error"] = {"code": "invalid_training_file", "message": "Example 3 has no assistant message",
                            "param": "training_file"}
            self.event(jid, "Fine-tuning job failed: Example 3 has no assistant message", "error")
        else:
            job["status"] = "succeeded"
            job["fine_tuned_model"] = f"ft:{job['model']}:promptkit:{job['suffix'] or 'ft'}:{jid[-6:]}"
            job["trained_tokens"] = len(self.contents.get(job["training_file"], b"")) // 4 * 3
            self.event(jid, "Step 10/10: training loss=0.02")
            self.event(jid, "The job has successfully completed")
        job["finished_at"] = int(time.time())


def _method_hyperparameters(method: dict[str, Any] | None) -> dict[str, Any]:
    method = method or {}
    return (method.get(method.get("type", "supervised")) or {}).get("hyperparameters", {})


def _file_error(method: dict[str, Any] | None, data: bytes) -> str | None:
    """What the API says of a training file that does not fit the job's method (DPO pairs only)."""
    if (method or {}).get("type") != "dpo":
        return None
    for n, line in enumerate(data.decode().splitlines(), start=1):
        record = json.loads(line)
        if set(record) != {"input", "preferred_output", "non_preferred_output"}:
            return f"invalid DPO example on line {n}: keys {sorted(record)}"
    return None


def _multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    boundary = re.search(r"boundary=\"?([^\";]+)", content_type)
    if not boundary:
        return {}
    parts: dict[str, tuple[str | None, bytes]] = {}
    for chunk in body.split(b"--" + boundary.group(1).encode()):
        if b"\r\n\r\n" not in chunk:
            continue
        head, _, data = chunk.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        if name:
            parts[name.group(1).decode()] = (filename.group(1).decode() if filename else None, data.rstrip(b"\r\n"))
    return parts


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(JSONHandler):
        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": None}})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            with state.lock:
                state.requests.append(("POST", path))
                if path == "/v1/files":
                    parts = _multipart(self._body(), self.headers.get("Content-Type", ""))
                    filename, data = parts.get("file", ("upload.jsonl", b""))
                    fid = f"file-{uuid.uuid4().hex[:12]}"
                    state.contents[fid] = data
                    state.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                                        "filename": filename, "purpose": parts.get("purpose", (None, b""))[1].decode(),
                                        "status": "processed"}
                    return self._send(200, state.files[fid])
                if path == "/v1/fine_tuning/jobs":
                    params = json.loads(self._body() or b"{}")
                    if params.get("training_file") not in state.files:
                        return self._error(400, f"invalid training_file: {params.get('training_file')}")
                    problem = _file_error(params.get("method"), state.contents[params["training_file"]])
                    if problem:
                        return self._error(400, problem)
                    jid = f"ftjob-{uuid.uuid4().hex[:12]}"
                    job = {"id": jid, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
                           "fine_tuned_model": None, "finished_at": None, "model": params["model"],
                           "organization_id": "org-test", "result_files": [], "seed": params.get("seed", 0),
                           "status": "validating_files", "trained_tokens": None,
                           "training_file": params["training_file"], "validation_file": params.get("validation_file"),
                           "suffix": params.get("suffix"), "method": params.get("method"),
                           "hyperparameters": _method_hyperparameters(params.get("method"))}
                    state.jobs[jid] = job
                    state.events[jid] = []
                    state.event(jid, f"Created fine-tuning job: {jid}")
                    return self._send(200, job)
                match = re.fullmatch(r"/v1/fine_tuning/jobs/([^/]+)/cancel", path)
                if match:
                    job = state.jobs.get(match.group(1))
                    if job is None:
                        return self._error(404, "no such job")
                    if job["status"] in ("succeeded", "failed", "cancelled"):
                        return self._error(400, f"job is already {job['status']}")
                    job["status"] = "cancelled"
                    state.event(job["id"], "Fine-tuning job cancelled")
                    return self._send(200, job)
                if path == "/v1/chat/completions":
                    params = json.loads(self._body() or b"{}")
                    text = " ".join(str(m.get("content", "")) for m in params.get("messages", [])).lower()
                    answer = "negative" if any(w in text for w in ("bad", "terrible", "broke", "worst", "never")) \
                        else "positive"
                    return self._send(200, {
                        "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                        "model": params.get("model"), "choices": [{"index": 0, "finish_reason": "stop",
                                                                   "message": {"role": "assistant", "content": answer}}],
                        "usage": {"prompt_tokens": len(text) // 4, "completion_tokens": 1,
                                  "total_tokens": len(text) // 4 + 1}})
            self._error(404, f"no route POST {path}")

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            with state.lock:
                state.requests.append(("GET", path))
                if path == "/v1/fine_tuning/jobs":
                    jobs = sorted(state.jobs.values(), key=lambda j: j["created_at"], reverse=True)
                    return self._send(200, {"object": "list", "data": jobs, "has_more": False})
                match = re.fullmatch(r"/v1/fine_tuning/jobs/([^/]+)(/events)?", path)
                if match:
                    job = state.jobs.get(match.group(1))
                    if job is None:
                        return self._error(404, "no such job")
                    if match.group(2):
                        return self._send(200, {"object": "list", "data": list(reversed(state.events[job["id"]])),
                                                "has_more": False})
                    state.advance(job)
                    return self._send(200, job)
            self._error(404, f"no route GET {path}")

    return Handler


class FineTuneServer:
    """Start with `with FineTuneServer() as d:`; d.url is the base URL for the openai client."""

    def __init__(self) -> None:
        self.state = State()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FineTuneServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    with FineTuneServer() as double:
        print(double.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
