"""What every provider takes and returns. A call never raises for one bad example:
failures come back as data in Response.error.

Each provider declares its options as a pydantic `Options` model: types, ranges, help text, and
which options never change an output (`output_neutral`, read by the response cache key and the
baseline fingerprint). `batch_size` means one thing everywhere: the examples the eval loop hands
the provider per call; how a provider cuts them further (forward passes, requests in flight) is
its own option (hf `forward_batch`, openai `concurrency`)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from promptkit.errors import ConfigError, did_you_mean
from promptkit.results import Request, Response

NEUTRAL: dict[str, Any] = {"output_neutral": True}  # json_schema_extra of an option that never changes an output


class ModelError(Exception):
    """A model call that failed (the Response's error), raised by the one-request methods."""


@dataclass
class Generation:
    """A generated text, with each generated token's log-probability and top alternatives when asked."""

    text: str
    tokens_in: int
    tokens_out: int
    logprobs: list[dict[str, Any]] | None = None  # [{"token", "logprob", "top": {token: logprob}}]


class ProviderOptions(BaseModel):
    """Options every provider takes. Subclasses add theirs; unknown options are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    batch_size: int | None = Field(None, ge=1, json_schema_extra=NEUTRAL,
                                   description="examples the eval loop hands the provider per call")

    def loop_batch(self) -> int:
        """Examples per call from the eval loop."""
        return self.batch_size or 8

    @classmethod
    def output_neutral(cls) -> frozenset[str]:
        """Options that change how fast or how safely a model answers, never what it answers."""
        return frozenset(name for name, f in cls.model_fields.items()
                         if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("output_neutral"))


def parse_options(provider: str, schema: type[ProviderOptions], options: dict[str, Any]) -> ProviderOptions:
    """Options checked once; a bad one is one ConfigError line naming the option and the provider."""
    try:
        return schema.model_validate(options)
    except ValidationError as e:
        error = e.errors()[0]
        name = ".".join(str(p) for p in error["loc"]) or "?"
        if error["type"] == "extra_forbidden":
            raise ConfigError(f"unknown option {name!r} for provider {provider!r}",
                              hint=did_you_mean(name, list(schema.model_fields))) from None
        field = schema.model_fields.get(str(error["loc"][0])) if error["loc"] else None
        about = f" ({field.description})" if field is not None and field.description else ""
        raise ConfigError(f"provider {provider!r} option {name!r}: {error['msg']}{about}",
                          hint=f"got {error.get('input')!r}") from None


class Provider(ABC):
    """A model behind some API. Subclasses implement `_complete` for a batch and may declare
    `Options`; the public methods below have defaults that fit a provider without the ability."""

    name: ClassVar[str] = "base"
    supports_scoring: ClassVar[bool] = False  # can score labels by log-likelihood
    probes_scoring: ClassVar[bool] = False  # resolve_scoring sends a first request to learn what the endpoint gives
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions

    def __init__(self, model: str, *, project_root: str | Path | None = None, **options: Any):
        self.model = model
        self.options = options  # as given (the cache key reads the output-shaping ones)
        self.opts = parse_options(self.name, self.Options, options)
        self.project_root = Path(project_root) if project_root else None  # where the project's price table is
        self.batch_size = self.opts.loop_batch()
        self.fatal: str | None = None  # set when the run cannot go on (bad key, endpoint down)
        self.scoring_modes: dict[str, int] = {}  # which scoring each request got
        self.stats: dict[str, Any] = {}  # requests, retries, faults, for the run record

    @property
    def context_window(self) -> int | None:
        return None

    @property
    def identity(self) -> dict[str, Any]:
        """Everything about the model that can change an output (for caches and run records)."""
        return {"provider": self.name, "model": self.model}

    @property
    def run_settings(self) -> dict[str, Any]:
        """What the provider resolved to run with (e.g. device and dtype), recorded with a run."""
        return {}

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` with this model's tokenizer."""
        return max(1, len(text) // 4)

    def prompt_text(self, request: Request) -> str:
        """The exact string the model reads for a request."""
        if request.text is not None:
            return request.text
        return "\n\n".join(m["content"] for m in request.messages or [])

    def expected_tokens_out(self, request: Request) -> float | None:
        """Output tokens a request is billed for when the provider bills in its own way; None: the estimator's rules."""
        return None

    def resolve_scoring(self, request: Request) -> tuple[str, str | None]:
        """Which scoring a label request really gets ("loglik", "loglik-first-token", "generate") and why
        when not full log-likelihood. Providers with `probes_scoring` send the request to find out."""
        return "loglik", None

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load the model now rather than on the first call."""

    def token_logprobs(self, texts: Sequence[str], top: int) -> list[dict[str, Any]]:
        """Each text's per-token log-probabilities (OpenAI completions `logprobs` format: tokens,
        token_logprobs, text_offset, top_logprobs)."""
        raise NotImplementedError(f"provider {self.name!r} gives no prompt log-probabilities")

    def generate(self, request: Request, logprobs: int | None = None) -> Generation:
        """Generate for one request; with `logprobs` (top alternatives per token), also the generated
        tokens' log-probabilities. Raises ModelError with the model's error."""
        if logprobs is not None:
            raise NotImplementedError(f"provider {self.name!r} gives no generation log-probabilities")
        response = self.complete([request])[0]
        if response.error:
            raise ModelError(response.error)
        return Generation(response.output, response.tokens_in, response.tokens_out)

    def prompt_tokens(self, request: Request) -> int:
        """Tokens the model sees for a request (chat template included where it has one)."""
        if request.text is not None:
            return self.count_tokens(request.text)
        return sum(self.count_tokens(m["content"]) + 4 for m in request.messages or [])

    def complete(self, requests: Sequence[Request]) -> list[Response]:
        """Run a batch. Never raises for a model failure: each Response carries its error."""
        start = time.perf_counter()
        try:
            responses = self._complete(requests)
        except Exception as e:  # noqa: BLE001 - failure is data: the run goes on
            message = f"{type(e).__name__}: {e}"
            responses = [Response(error=message) for _ in requests]
        elapsed = time.perf_counter() - start
        for response in responses:
            if not response.latency:
                response.latency = elapsed / max(1, len(requests))
        return responses

    @abstractmethod
    def _complete(self, requests: Sequence[Request]) -> list[Response]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, connections)."""
