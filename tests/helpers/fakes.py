"""Fake providers for tests, beyond promptkit's own `fake`: `slowfake:NAME` sleeps `delay` seconds per
batch (a provider option), so tests can kill a run mid-way.

`python -m tests.helpers.fakes ARGS` = `python -m promptkit ARGS` with these providers registered."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from promptkit.providers import providers
from promptkit.providers.fake import FakeProvider
from promptkit.results import Request, Response


class SlowFakeProvider(FakeProvider):
    name = "slowfake"

    def __init__(self, model: str, **options: Any):
        super().__init__(model, **options)
        self.delay = float(options.get("delay", 0.05))

    def _complete(self, requests: Sequence[Request]) -> list[Response]:
        time.sleep(self.delay)
        return super()._complete(requests)


if "slowfake" not in providers:
    providers.register("slowfake", SlowFakeProvider)

if __name__ == "__main__":
    from promptkit.cli import main

    main(prog_name="promptkit")
