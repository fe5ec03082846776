"""`promptkit serve`: an OpenAI-compatible HTTP server over a local model (the hf provider).

Endpoints: GET /v1/models, POST /v1/completions (echo and logprobs included, so a client can
score labels), POST /v1/chat/completions (logprobs/top_logprobs too). Responses carry `usage`.
Binds 127.0.0.1 unless told otherwise, and refuses any other address without an API key unless
`insecure`; the key is checked as a Bearer token. Errors are OpenAI-style JSON.

Extension: a chat request with `score_labels: [..]` (and optionally `label_prefix`) is answered
with `choices[0].label_logprobs`, each label's total log-likelihood as the assistant's reply: the
numbers a local `promptkit eval` of a chat prompt uses (the openai provider asks for it).

Limits, so that slow or greedy clients cannot exhaust the server: request bodies, max_tokens and
prompt tokens per request are capped; every numeric field is validated (400); a request must
arrive whole (headers and body) within `read_timeout` seconds or its connection is closed; at
most `max_connections` connections are open, and a new one evicts the oldest still sending its
request. One model call runs at a time (the model is not thread-safe); requests queue for it,
and concurrent label-scoring requests (echo + logprobs, max_tokens 0) are merged into shared
forward passes of at most ECHO_TOKENS_PER_PASS tokens, which bounds the logits in memory."""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from promptkit.errors import ConfigError
from promptkit.models import resolve_model
from promptkit.providers.base import ModelError, Provider
from promptkit.providers.factory import open_provider
from promptkit.results import Request as ModelRequest

MAX_BODY = 1_000_000  # bytes
MAX_TOKENS = 512
MAX_PROMPTS = 64
MAX_PROMPT_TOKENS = 2048  # per request, all prompts together (echo work and memory grow with it)
ECHO_TOKENS_PER_PASS = 1024  # padded tokens per forward pass when echoing (~200 MB of logits)
READ_TIMEOUT = 10.0  # seconds for a request's headers and body to arrive
MAX_CONNECTIONS = 256
MAX_SEED = 2**63 - 1
MIN_TEMPERATURE = 1e-3  # below this, sampling overflows: such temperatures decode greedily
MAX_LABELS = 64
CHARS_PER_TOKEN_MAX = 32  # more characters than this per allowed token cannot fit: refused untokenized


class APIError(Exception):
    """An error answered to the client as OpenAI-style JSON."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class ServeConfig:
    name: str  # the model id clients ask for
    api_key: str | None = None
    max_body: int = MAX_BODY
    max_tokens: int = MAX_TOKENS
    max_prompt_tokens: int = MAX_PROMPT_TOKENS
    read_timeout: float = READ_TIMEOUT
    max_connections: int = MAX_CONNECTIONS


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise APIError(400, f"'{name}' has the wrong type", param=name)
    if isinstance(value, float) and not math.isfinite(value):
        raise APIError(400, f"'{name}' must be a finite number", param=name)
    return value


def _number(body: dict[str, Any], name: str, low: float, high: float, default: float) -> float:
    """An optional number within [low, high], else 400."""
    value = _field(body, name, float, default)
    if not low <= value <= high:
        raise APIError(400, f"'{name}' must be between {low:g} and {high:g}", param=name)
    return float(value)


class ModelServer:
    """The model side of the server, independent of HTTP (so it can be tested directly)."""

    def __init__(self, provider: Provider, config: ServeConfig):
        self.provider: Provider = provider  # an HFProvider
        self.config = config
        self.lock = threading.Lock()  # the model: one call at a time
        self.pending: list[dict[str, Any]] = []  # echo-scoring calls waiting for the model
        self.pending_lock = threading.Lock()
        self.created = int(time.time())

    def load(self) -> None:
        self.provider.load()

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.config.name, "object": "model", "created": self.created,
                                            "owned_by": "promptkit"}]}

    # -- request parsing --------------------------------------------------------------------
    def _common(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if model is not None and model != self.config.name:
            raise APIError(404, f"model {model!r} is not served here (serving {self.config.name!r})",
                           param="model", code="model_not_found")
        if _field(body, "n", int, 1) != 1:
            raise APIError(400, "only n=1 is supported", param="n")
        if body.get("stream"):
            raise APIError(400, "streaming is not supported", param="stream")
        max_tokens = _field(body, "max_tokens", int, None)
        if max_tokens is None:
            max_tokens = _field(body, "max_completion_tokens", int, 16)
        if max_tokens < 0:
            raise APIError(400, "'max_tokens' must be >= 0", param="max_tokens")
        temperature = _number(body, "temperature", 0, 2, 0.0)
        if temperature < MIN_TEMPERATURE:
            temperature = 0.0
        _number(body, "top_p", 0, 1, 1.0)  # accepted and validated; decoding uses the full distribution
        _number(body, "presence_penalty", -2, 2, 0.0)
        _number(body, "frequency_penalty", -2, 2, 0.0)
        seed = _field(body, "seed", int, None)
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise APIError(400, f"'seed' must be between 0 and {MAX_SEED}", param="seed")
        stop = body.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise APIError(400, "'stop' must be a string or a list of strings", param="stop")
        if len(stop) > 4 or any(len(s) > 256 for s in stop):
            raise APIError(400, "'stop' takes at most 4 strings of at most 256 characters", param="stop")
        return {"max_tokens": min(max_tokens, self.config.max_tokens), "temperature": temperature, "stop": stop,
                "seed": seed}

    def _check_prompt_chars(self, chars: int, param: str) -> None:
        """Refuse, before tokenizing, text far too long for the token cap (tokenizing a megabyte
        holds the interpreter for a second, which other clients would feel)."""
        if chars > self.config.max_prompt_tokens * CHARS_PER_TOKEN_MAX:
            raise APIError(400, f"the prompt(s) hold {chars} characters; this server takes at most "
                                f"{self.config.max_prompt_tokens} tokens per request", param=param,
                           code="prompt_too_long")

    def _check_prompt_tokens(self, counts: list[int], param: str) -> None:
        """Refuse prompts whose echo or generation would take unbounded work and memory."""
        total = sum(counts)
        if total > self.config.max_prompt_tokens:
            raise APIError(400, f"the prompt(s) hold {total} tokens; this server takes at most "
                                f"{self.config.max_prompt_tokens} per request", param=param, code="prompt_too_long")

    # -- model work (callers hold self.lock) -------------------------------------------------
    def echo_batched(self, texts: list[str], top: int) -> list[dict[str, Any]]:
        """`token_logprobs` for concurrent requests, merged: whoever gets the model next scores everything
        queued meanwhile in shared forward passes (label scoring arrives as many small requests)."""
        item: dict[str, Any] = {"texts": texts, "top": top, "done": False, "result": None, "error": None}
        with self.pending_lock:
            self.pending.append(item)
        with self.lock:
            if not item["done"]:
                with self.pending_lock:
                    batch, self.pending = self.pending, []
                for level in {i["top"] for i in batch}:
                    group = [i for i in batch if i["top"] == level]
                    try:
                        rows = [t for i in group for t in i["texts"]]
                        results = [r for chunk in self._passes(rows) for r in self.provider.token_logprobs(chunk, level)]
                    except Exception as e:  # noqa: BLE001 - handed to every caller in the group
                        for i in group:
                            i["error"], i["done"] = e, True
                        continue
                    for i in group:
                        i["result"], results = results[: len(i["texts"])], results[len(i["texts"]):]
                        i["done"] = True
        if item["error"] is not None:
            raise item["error"]
        return list(item["result"])

    def _passes(self, texts: list[str]) -> list[list[str]]:
        """Texts split into forward passes of at most ECHO_TOKENS_PER_PASS padded tokens."""
        passes: list[list[str]] = []
        current: list[str] = []
        width = 0
        for text in texts:
            size = self.provider.count_tokens(text) + 1
            if current and (max(width, size) * (len(current) + 1) > ECHO_TOKENS_PER_PASS or len(current) >= MAX_PROMPTS):
                passes.append(current)
                current, width = [], 0
            current.append(text)
            width = max(width, size)
        return passes + ([current] if current else [])

    def _generate(self, request: ModelRequest, top: int | None) -> dict[str, Any]:
        """Generate for one request; with `top` set, also the generated tokens' logprobs."""
        if request.max_tokens == 0:
            return {"text": "", "tokens_in": self.provider.prompt_tokens(request), "tokens_out": 0, "logprobs": None}
        try:
            gen = self.provider.generate(request, logprobs=top)
        except ModelError as e:
            raise APIError(500, f"model error: {e}", type_="server_error") from None
        return {"text": gen.text, "tokens_in": gen.tokens_in, "tokens_out": gen.tokens_out, "logprobs": gen.logprobs}

    # -- endpoints ----------------------------------------------------------------------------
    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        opts = self._common(body)
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise APIError(400, "'prompt' must be a string or a non-empty list of strings", param="prompt")
        if len(prompts) > MAX_PROMPTS:
            raise APIError(400, f"at most {MAX_PROMPTS} prompts per request", param="prompt")
        self._check_prompt_chars(sum(map(len, prompts)), "prompt")
        self._check_prompt_tokens([self.provider.count_tokens(p) for p in prompts], "prompt")
        echo = _field(body, "echo", bool, False)
        top = _field(body, "logprobs", int, None)
        if top is not None and not 0 <= top <= 20:
            raise APIError(400, "'logprobs' must be between 0 and 20", param="logprobs")
        choices, tokens_in, tokens_out = [], 0, 0
        scoring_only = echo and top is not None and opts["max_tokens"] == 0
        prescored = self.echo_batched(prompts, top) if scoring_only and top is not None else None
        with self.lock:
            if prescored is not None:
                echoed: list[Any] = prescored
            else:
                echoed = self.provider.token_logprobs(prompts, top) if echo and top is not None else [None] * len(prompts)
            for index, (text, echo_lp) in enumerate(zip(prompts, echoed, strict=True)):
                request = ModelRequest(id=str(index), text=text, **opts)
                gen = self._generate(request, top)
                logprobs = None
                if top is not None:
                    gen_lp = gen["logprobs"] or []
                    base = len(text) if echo else 0
                    offsets, position = [], base
                    for entry in gen_lp:
                        offsets.append(position)
                        position += len(entry["token"])
                    logprobs = {
                        "tokens": (echo_lp["tokens"] if echo_lp else []) + [e["token"] for e in gen_lp],
                        "token_logprobs": (echo_lp["token_logprobs"] if echo_lp else []) + [e["logprob"] for e in gen_lp],
                        "text_offset": (echo_lp["text_offset"] if echo_lp else []) + offsets,
                        "top_logprobs": ((echo_lp["top_logprobs"] or []) if echo_lp else []) + [e["top"] for e in gen_lp]
                        if top else None,
                    }
                choices.append({"index": index, "text": (text if echo else "") + gen["text"], "logprobs": logprobs,
                                "finish_reason": "length" if gen["tokens_out"] >= opts["max_tokens"] else "stop"})
                tokens_in += len(echo_lp["tokens"]) if echo_lp else gen["tokens_in"]
                tokens_out += gen["tokens_out"]
        return {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": self.config.name, "choices": choices,
                "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                          "total_tokens": tokens_in + tokens_out}}

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        opts = self._common(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise APIError(400, "'messages' must be a non-empty list of {role, content} with text content",
                           param="messages")
        want = _field(body, "logprobs", bool, False)
        top = _field(body, "top_logprobs", int, 0) if want else None
        if top is not None and not 0 <= top <= 20:
            raise APIError(400, "'top_logprobs' must be between 0 and 20", param="top_logprobs")
        request = ModelRequest(id="0", messages=[{"role": m["role"], "content": m["content"]} for m in messages], **opts)
        self._check_prompt_chars(sum(len(m["content"]) for m in messages), "messages")
        self._check_prompt_tokens([self.provider.prompt_tokens(request)], "messages")
        if body.get("score_labels") is not None:
            return self._score_labels(body, request)
        with self.lock:
            gen = self._generate(request, top)
        logprobs = None
        if gen["logprobs"] is not None:
            logprobs = {"content": [
                {"token": e["token"], "logprob": e["logprob"], "bytes": list(e["token"].encode()),
                 "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())}
                                  for t, v in list(e["top"].items())[:top]]}
                for e in gen["logprobs"]]}
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                "model": self.config.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": gen["text"]}, "logprobs": logprobs,
                             "finish_reason": "length" if gen["tokens_out"] >= opts["max_tokens"] else "stop"}],
                "usage": {"prompt_tokens": gen["tokens_in"], "completion_tokens": gen["tokens_out"],
                          "total_tokens": gen["tokens_in"] + gen["tokens_out"]}}

    def _score_labels(self, body: dict[str, Any], request: ModelRequest) -> dict[str, Any]:
        """The `score_labels` extension: each label's log-likelihood as the assistant's reply."""
        labels = body.get("score_labels")
        if not isinstance(labels, list) or not labels or len(labels) > MAX_LABELS or not all(
                isinstance(label, str) and label and len(label) <= 256 for label in labels):
            raise APIError(400, f"'score_labels' must be a list of 1 to {MAX_LABELS} non-empty strings "
                                "of at most 256 characters", param="score_labels")
        prefix = _field(body, "label_prefix", str, "")
        if len(prefix) > 256:
            raise APIError(400, "'label_prefix' is longer than 256 characters", param="label_prefix")
        request.labels, request.label_prefix = list(dict.fromkeys(labels)), prefix
        with self.lock:
            response = self.provider.complete([request])[0]
        if response.error or not response.scores:
            raise APIError(500, f"model error: {response.error or 'no scores'}", type_="server_error")
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                "model": self.config.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": response.output},
                             "logprobs": None, "label_logprobs": response.scores, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": response.tokens_in, "completion_tokens": 0,
                          "total_tokens": response.tokens_in}}


def create_app(server: ModelServer) -> Any:
    """The Starlette app serving a ModelServer."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    config = server.config

    def error(e: APIError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status)

    def authorized(request: Request) -> bool:
        if not config.api_key:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), config.api_key.encode())

    async def read_json(request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body):
            raise APIError(413, f"request body larger than {config.max_body} bytes", code="body_too_large")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > config.max_body:
                raise APIError(413, f"request body larger than {config.max_body} bytes", code="body_too_large")
        try:
            body = json.loads(bytes(data))
        except RecursionError:
            raise APIError(400, "request body is nested too deeply") from None
        except ValueError:
            raise APIError(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise APIError(400, "request body must be a JSON object")
        return body

    def endpoint(handler: Any, post: bool) -> Any:
        async def run(request: Request) -> JSONResponse:
            try:
                if not authorized(request):
                    raise APIError(401, "invalid or missing API key (Authorization: Bearer KEY)",
                                   type_="authentication_error", code="invalid_api_key")
                if not post:
                    return JSONResponse(handler())
                body = await read_json(request)
                return JSONResponse(await run_in_threadpool(handler, body))
            except APIError as e:
                return error(e)
            except Exception as e:  # noqa: BLE001 - the client gets JSON, the server keeps serving
                return error(APIError(500, f"internal error: {type(e).__name__}: {e}", type_="server_error"))

        return run

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status_code", 404)
        return error(APIError(status, f"no route {request.method} {request.url.path}", code="not_found"))

    routes = [
        Route("/v1/models", endpoint(server.models, post=False), methods=["GET"]),
        Route("/v1/completions", endpoint(server.completions, post=True), methods=["POST"]),
        Route("/v1/chat/completions", endpoint(server.chat, post=True), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def make_server(spec: str, project: Any = None, name: str | None = None, api_key: str | None = None,
                max_body: int = MAX_BODY, max_tokens: int = MAX_TOKENS, max_prompt_tokens: int = MAX_PROMPT_TOKENS,
                read_timeout: float = READ_TIMEOUT, max_connections: int = MAX_CONNECTIONS) -> ModelServer:
    """A ModelServer over any model spec resolve_model accepts that runs locally (hf provider)."""

    if api_key is not None and not api_key.strip():
        raise ConfigError("the API key is empty (--api-key or PROMPTKIT_SERVE_API_KEY)",
                          hint="set a key, or unset the variable to serve on loopback without one")
    ref = resolve_model(spec, project.models if project is not None else None)
    if ref.provider != "hf":
        raise ConfigError(f"promptkit serve runs local models; {spec!r} uses provider {ref.provider!r}",
                          hint="serve smollm2, a model folder, a .gguf file, or a registered tuned adapter")
    provider = open_provider(ref, project)
    return ModelServer(provider, ServeConfig(name=name or spec, api_key=api_key or None, max_body=max_body,
                                             max_tokens=max_tokens, max_prompt_tokens=max_prompt_tokens,
                                             read_timeout=read_timeout, max_connections=max_connections))


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse to listen beyond loopback without a key: anyone who can reach the port could use it."""
    if not is_loopback(host) and not api_key and not insecure:
        raise ConfigError(f"--host {host} listens beyond this machine, and no API key is set",
                          hint="set PROMPTKIT_SERVE_API_KEY (or --api-key), or pass --insecure to serve without one")


def guarded_protocol(read_timeout: float, max_connections: int) -> type:
    """uvicorn's h11 protocol with a deadline for each request to arrive whole (headers and body:
    slow clients are cut off) and a cap on open connections (at the cap, a new connection evicts
    the oldest one still sending its request, or is closed if every connection is being answered)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    reading = (h11.IDLE, h11.SEND_BODY)

    class GuardedH11(H11Protocol):
        _timer: Any = None
        _since: float = 0.0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._since = time.monotonic()
            self._arm()
            if len(self.connections) > max_connections:
                idle = [c for c in self.connections if isinstance(c, GuardedH11) and c is not self
                        and c.conn.their_state in reading and not c.transport.is_closing()]
                victim = min(idle, key=lambda c: c._since) if idle else self
                victim._close()

        def _arm(self) -> None:
            if self._timer is None:
                self._timer = self.loop.call_later(read_timeout, self._expire)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expire(self) -> None:
            self._timer = None
            if self.conn.their_state in reading:
                self._close()

        def _close(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE and self._timer is None:
                self._since = time.monotonic()  # a new request on a kept-alive connection
                self._arm()
            super().data_received(data)
            if self.conn.their_state not in reading:
                self._disarm()  # the whole request is in: the model may take its time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11


def run(server: ModelServer, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning",
        ready: Any = None, insecure: bool = False) -> None:
    """Bind, load the model and serve until interrupted. `ready(url)` is called once loaded."""
    import socket

    import uvicorn

    check_exposure(host, server.config.api_key, insecure)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                          hint="choose another --port, or --port 0") from None
    sock.listen(1024)
    server.load()  # after binding, so that a taken port fails at once
    bound = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}/v1"
    if ready is not None:
        ready(url)
    config = uvicorn.Config(create_app(server), log_level=log_level, access_log=False, timeout_keep_alive=5,
                            http=guarded_protocol(server.config.read_timeout, server.config.max_connections),
                            limit_concurrency=server.config.max_connections + 8,
                            h11_max_incomplete_event_size=64 * 1024)
    uvicorn.Server(config).run(sockets=[sock])
