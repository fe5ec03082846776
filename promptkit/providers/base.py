"""What every provider takes and returns. A call never raises for one bad example:
failures come back as data in Response.error."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from promptkit.results import Request, Response


class Provider(ABC):
    """A model behind some API. Subclasses implement `_complete` for a batch."""

    name: ClassVar[str] = "base"
    supports_scoring: ClassVar[bool] = False  # can score labels by log-likelihood

    def __init__(self, model: str, **options: Any):
        self.model = model
        self.options = options
        self.batch_size = int(options.get("batch_size", 8))

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
