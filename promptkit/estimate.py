"""What a run will cost before any model call: tokens in and out, and money at the model's price.

Tokens in are counted with the provider's own tokenizer (no weights loaded). Tokens out are
what the provider says it bills (see promptkit.pricing.expected_tokens_out), else the labels' tokens
when labels are scored by log-likelihood, else the average output of
earlier runs of the same prompt version on the same model, else max_tokens (an upper bound).
Examples already in the response cache count with their recorded tokens and cost nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from promptkit.cache import provider_identity, request_key
from promptkit.evaluate import build_request
from promptkit.pricing import expected_tokens_out
from promptkit.providers.base import Provider

if TYPE_CHECKING:
    from promptkit.cache import ResponseCache
    from promptkit.evaluate import EvalPlan
    from promptkit.runs import RunStore


@dataclass
class Estimate:
    examples: int
    cached: int  # examples the cache already answers (free)
    tokens_in: int
    tokens_out: int
    cost: float  # the whole run at list price, as its report will show it
    to_spend: float  # what the uncached examples will cost
    price_in: float  # $ per million tokens
    price_out: float
    out_basis: str  # how tokens out were estimated: labels, observed, max_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_run(plan: EvalPlan, provider: Provider, cache: ResponseCache | None = None,
                 store: RunStore | None = None) -> Estimate:
    """Tokens and money a plan will take, without calling (or loading) the model."""

    price = plan.price
    requests = [build_request(plan, e) for e in plan.examples]
    hits = {}
    keys: list[str] = []
    if cache is not None:
        identity = provider_identity(provider, cache)
        keys = [request_key(identity, r) for r in requests]
        hits = cache.get_many(keys)
    observed = None
    basis = "labels"
    if not any(r.labels for r in requests):
        observed = store.mean_tokens_out(plan.version.hash, plan.model.spec) if store is not None else None
        basis = "observed" if observed is not None else "max_tokens"
    tokens_in = 0
    tokens_out = 0.0
    cost = to_spend = 0.0
    for i, request in enumerate(requests):
        hit = hits.get(keys[i]) if keys else None
        if hit is not None:
            t_in, t_out = float(hit.tokens_in), float(hit.tokens_out)
        else:
            t_in, t_out = float(provider.prompt_tokens(request)), expected_tokens_out(provider, request, observed)
        tokens_in += int(t_in)
        tokens_out += t_out
        money = (t_in * price.input + t_out * price.output) / 1_000_000
        cost += money
        if hit is None:
            to_spend += money
    return Estimate(len(requests), len(hits), tokens_in, round(tokens_out), cost, to_spend, price.input, price.output, basis)
