"""Token prices per model, in dollars per million tokens, and the cost of a call.

Built-in prices cover common hosted models; local models cost nothing. A project can
override or add prices in `promptkit.yaml` at its root:

    prices:
      gpt-4o-mini: {input: 0.15, output: 0.60}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptkit.config import line_of, load_yaml
from promptkit.errors import ConfigError, did_you_mean
from promptkit.results import Request

if TYPE_CHECKING:
    from promptkit.providers.base import Provider


@dataclass(frozen=True)
class Price:
    input: float  # $ per million input tokens
    output: float  # $ per million output tokens

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input + tokens_out * self.output) / 1_000_000


FREE = Price(0.0, 0.0)

# Published list prices (USD per 1M tokens). Fine-tuned models ("ft:BASE:...") use their base's
# fine-tuned inference price where it is listed here, else the base price.
BUILTIN: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "ft:gpt-4o-mini": Price(0.30, 1.20),
    "ft:gpt-4.1-mini": Price(0.80, 3.20),
    "ft:gpt-4.1-nano": Price(0.20, 0.80),
    "ft:gpt-3.5-turbo": Price(3.00, 6.00),
}

PROJECT_FILE = "promptkit.yaml"
PROJECT_KEYS = frozenset({"prices"})  # the keys promptkit.yaml may hold
# $ per million tokens (a thousand dollars a token): a larger finite price, such as 1e305, makes a
# cost overflow to infinity, which no report or run store can hold.
MAX_PRICE = 1e9


def load_prices(root: Path | str | None = None) -> dict[str, Price]:
    """Built-in prices overlaid with the project's `prices:` table, if any."""
    table = dict(BUILTIN)
    if root is None:
        return table
    path = Path(root) / PROJECT_FILE
    if not path.is_file():
        return table
    data, text = load_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of keys, got {type(data).__name__}", where=str(path),
                          hint="write 'prices: {MODEL: {input: N, output: N}}'")
    for key in data or {}:
        if key not in PROJECT_KEYS:  # a misspelt 'prices:' would silently leave the built-in prices in force
            raise ConfigError(f"unknown key {key!r}", where=_place(path, text, str(key)),
                              hint=did_you_mean(str(key), sorted(PROJECT_KEYS)))
    prices: Any = (data or {}).get("prices", {})
    if not isinstance(prices, dict):
        raise ConfigError("'prices' must map model names to {input: N, output: N}", where=_place(path, text, "prices"))
    for name, entry in prices.items():
        where = _place(path, text, "prices", str(name))
        if not isinstance(entry, dict) or set(entry) - {"input", "output"}:
            raise ConfigError(f"price for {name!r} must be {{input: N, output: N}}", where=where)
        try:
            values = [entry.get("input", 0), entry.get("output", 0)]
            if any(isinstance(v, bool) or not isinstance(v, (int, float, str)) for v in values):
                raise TypeError
            numbers = [float(v) for v in values]
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
            raise ConfigError(f"price for {name!r} must be finite numbers from 0 to {MAX_PRICE:,.0f}", where=where,
                              hint="dollars per million tokens, e.g. 0.15") from None
        if not all(math.isfinite(n) and 0 <= n <= MAX_PRICE for n in numbers):
            raise ConfigError(f"price for {name!r} must be finite numbers from 0 to {MAX_PRICE:,.0f}, got {values}",
                              where=where, hint="dollars per million tokens, e.g. 0.15")
        table[str(name)] = Price(numbers[0], numbers[1])
    return table


def _place(path: Path, text: str, *loc: str) -> str:
    """file:line of a key path of promptkit.yaml (the file alone when the key is not found)."""
    line = line_of(text, loc)
    return f"{path}:{line}" if line else str(path)


def price_for(model: str, prices: dict[str, Price] | None = None) -> Price:
    """The price of a model name; dated snapshots ("gpt-4o-mini-2024-07-18") match their family.
    Unknown models, local ones included, are free."""
    table = prices if prices is not None else BUILTIN
    if model in table:
        return table[model]
    if model.startswith("ft:"):
        base = model.split(":")[1]
        return table.get(f"ft:{base}") or price_for(base, table)
    family = max((name for name in table if model.startswith(name + "-")), key=len, default=None)
    return table[family] if family else FREE


def cost(model: str, tokens_in: int, tokens_out: int, prices: dict[str, Price] | None = None) -> float:
    return price_for(model, prices).cost(tokens_in, tokens_out)


def expected_tokens_out(provider: Provider, request: Request, observed: float | None = None) -> float:
    """Output tokens one request is expected to produce. A provider that bills in its own way says
    so in `expected_tokens_out(request)` (None: use the rules here)."""
    own = provider.expected_tokens_out(request)
    if own is not None:
        return float(own)
    if request.labels:
        counts = [provider.count_tokens(request.label_prefix + label) for label in request.labels]
        return sum(counts) / len(counts)
    if observed is not None:
        return observed
    return float(request.max_tokens)


def expected_cost(price: Price, provider: Provider, request: Request, observed: float | None = None) -> float:
    """Dollars one request is expected to cost at `price`."""
    if not price.input and not price.output:
        return 0.0
    tokens_in = provider.prompt_tokens(request)
    tokens_out = expected_tokens_out(provider, request, observed)
    return (tokens_in * price.input + tokens_out * price.output) / 1_000_000
