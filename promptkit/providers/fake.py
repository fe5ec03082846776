"""A deterministic provider for unit tests and dry runs: no model, no network."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence

from pydantic import Field

from promptkit.providers.base import NEUTRAL, Provider, ProviderOptions
from promptkit.results import Request, Response


class FakeOptions(ProviderOptions):
    keywords: dict[str, list[str]] = Field(default_factory=dict, description="label -> words that vote for it")
    hints: bool = Field(False, description="also read 'LABEL words: a, b' lines of the prompt as keywords")
    reply: str | None = Field(None, description="the generated text (default: the prompt's last line)")
    fail_every: int = Field(0, ge=0, description="every Nth request fails (0: none)")
    delay: float = Field(0.0, ge=0, json_schema_extra=NEUTRAL, description="seconds to sleep per request")


class FakeProvider(Provider):
    """Model spec `fake:NAME`. Scores labels by a hash of the prompt, or by a keyword
    rule when the options give one (`keywords: {positive: [great, love]}`); with `hints: true` it
    also takes keyword lists from the prompt's own lines such as "positive words: great, love" (a
    stand-in for a model that follows its instructions, so prompt versions score differently); generation
    echoes the last prompt line, or returns `reply` when set. `fail_every: N` makes every
    Nth request fail; `delay: SECONDS` sleeps that long per request (to test interrupts and
    progress). Output tokens are counted the same way an estimate counts them: the chosen
    label's tokens when scoring, the reply's tokens when generating."""

    name = "fake"
    supports_scoring = True
    Options = FakeOptions
    opts: FakeOptions
    calls = 0  # requests answered by this instance (the first `+= 1` makes it the instance's own)

    def _score(self, request: Request, prompt: str) -> dict[str, float]:
        keywords: dict[str, list[str]] = {k: list(v) for k, v in self.opts.keywords.items()}
        if self.opts.hints:
            for label in request.labels or []:
                for found in re.findall(rf"^\s*{re.escape(label)} words:(.*)$", prompt, re.IGNORECASE | re.MULTILINE):
                    keywords.setdefault(label, []).extend(w.strip().lower() for w in found.split(",") if w.strip())
        # Only the example's own text counts, not few-shot examples before it.
        last = prompt.lower().rsplit("\n\n", 1)[-1]
        scores = {}
        for label in request.labels or []:
            hits = sum(word in last for word in keywords.get(label, []))
            noise = int(hashlib.sha256((prompt + label).encode()).hexdigest()[:6], 16) / 16**6
            scores[label] = hits - 1.0 - noise * 0.5
        return scores

    def _complete(self, requests: Sequence[Request]) -> list[Response]:
        responses = []
        fail_every, delay = self.opts.fail_every, self.opts.delay
        for request in requests:
            self.calls += 1
            if delay:
                time.sleep(delay)
            prompt = request.text or "\n\n".join(m["content"] for m in request.messages or [])
            tokens_in = self.prompt_tokens(request)
            if fail_every and self.calls % fail_every == 0:
                responses.append(Response(error="FakeError: injected failure", tokens_in=tokens_in))
                continue
            if request.labels:
                scores = self._score(request, prompt)
                best = max(scores, key=scores.__getitem__)
                responses.append(Response(output=best, scores=scores, tokens_in=tokens_in,
                                          tokens_out=self.count_tokens(request.label_prefix + best)))
            else:
                output = self.opts.reply or prompt.strip().splitlines()[-1]
                output = output[: request.max_tokens * 4]
                responses.append(Response(output=output, tokens_in=tokens_in, tokens_out=self.count_tokens(output)))
        return responses
