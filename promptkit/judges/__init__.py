"""Judge models: a model spec asked to grade outputs, through the eval's own providers, cache and prices.

A judge's prompt is a versioned prompt of the library shipped in promptkit/judges/prompts/
(llm-rubric, factuality, pairwise); a project prompt of the same name overrides it. Judge
answers are parsed strictly (one JSON object, see `parse_object`): anything else is a judge
error, counted apart, never a score."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptkit.cache import provider_identity, request_key
from promptkit.errors import ConfigError, PromptkitError
from promptkit.library import Library, PromptVersion
from promptkit.models import ModelRef, resolve_model
from promptkit.pricing import price_for
from promptkit.providers import Provider, providers
from promptkit.providers.factory import open_provider
from promptkit.results import Request, Response
from promptkit.strict_json import loads_strict, unfence

if TYPE_CHECKING:
    from promptkit.pricing import Price
    from promptkit.project import Project

SHIPPED = Path(__file__).parent / "prompts"


class JudgeError(ValueError):
    """The judge's answer could not be read as a judgment."""


def judge_prompt(name: str, project: Project | None) -> PromptVersion:
    """The project's prompt NAME if it has one, else the shipped one."""
    if project is not None and name in project.library.names():
        return project.library.resolve(name)
    return Library(SHIPPED).resolve(name)


def parse_object(answer: str, required: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The answer as exactly one JSON object (optionally in a ```json fence) holding `required` keys
    of the given types. Raises JudgeError otherwise: no scanning for a stray object in prose."""
    try:  # strict: a key written twice ("pass": false, ..., "pass": true) is no judgment, nor is NaN
        data = loads_strict(unfence(answer), JudgeError, "judge answer has the key {key!r} twice",
                            "judge answer holds {name}, not a number")
    except (json.JSONDecodeError, RecursionError):
        raise JudgeError(f"judge answer is not one JSON object: {' '.join(answer.split())[:60]!r}") from None
    if not isinstance(data, dict):
        raise JudgeError(f"judge answer is JSON {type(data).__name__}, not an object")
    for key, kind in required.items():
        if key not in data:
            raise JudgeError(f"judge answer has no {key!r}")
        value = data[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise JudgeError(f"judge answer's {key!r} is a boolean, not a number")
        if not isinstance(value, kind):
            raise JudgeError(f"judge answer's {key!r} is {type(value).__name__}")
    return data


class Judge:
    """One judge model for a run. The provider is made on first use (a run whose judged
    assertions all come from the cache never loads it)."""

    def __init__(self, ref: ModelRef, project: Project, prices: dict[str, Price] | None = None):
        self.ref = ref
        self.project = project
        self.prices = prices
        self._provider: Provider | None = None
        self.spent = 0.0  # dollars on uncached judge calls, this process
        self.calls = 0
        self.errors = 0  # judge answers that could not be parsed, or failed calls

    @classmethod
    def resolve(cls, spec: str, project: Project, where: str, prices: dict[str, Price] | None = None) -> Judge:
        try:
            ref = resolve_model(spec, project.models)
        except PromptkitError as e:
            raise ConfigError(f"judge model: {e.message}", where=where, hint=e.hint) from None

        if ref.provider not in providers:
            raise ConfigError(f"judge model {spec!r} names unknown provider {ref.provider!r}", where=where)
        return cls(ref, project, prices)

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = open_provider(self.ref, self.project)
        return self._provider

    def request(self, prompt: str, variables: dict[str, Any], request_id: str) -> Request:
        version = judge_prompt(prompt, self.project)
        rendered = version.template.render(variables, what=f"judge prompt {version.ref}")
        settings = version.spec.settings
        return Request(id=request_id, text=rendered.text, messages=rendered.messages,
                       max_tokens=int(settings.max_tokens), temperature=float(settings.temperature),
                       stop=list(settings.stop))

    def ask(self, requests: Sequence[Request], cache: Any | None = None) -> list[Response]:
        """Answers in order; cached ones are not asked again. Costs are filled from the price table."""
        if not requests:
            return []

        keys: list[str] = []
        hits: dict[str, Response] = {}
        if cache is not None:
            identity = {**provider_identity(self.provider, cache), "role": "judge"}
            keys = [request_key(identity, r) for r in requests]
            hits = cache.get_many(keys)
        missing = [i for i in range(len(requests)) if not keys or keys[i] not in hits]
        answers: dict[int, Response] = {}
        if missing:
            batch = self.provider.complete([requests[i] for i in missing])
            price = price_for(self.ref.model, self.prices)
            for i, response in zip(missing, batch, strict=True):
                if not response.cost and (response.tokens_in or response.tokens_out):
                    response.cost = price.cost(response.tokens_in, response.tokens_out)
                answers[i] = response
                self.spent += response.cost
                self.calls += 1
            if cache is not None:
                cache.put_many((keys[i], answers[i]) for i in missing if answers[i].error is None)
        return [answers[i] if i in answers else hits[keys[i]] for i in range(len(requests))]

    def close(self) -> None:
        if self._provider is not None:
            self._provider.close()
            self._provider = None


__all__ = ["SHIPPED", "Judge", "JudgeError", "judge_prompt", "parse_object"]
