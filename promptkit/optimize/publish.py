"""Before the search: what it will cost. After it: the winner as a new published version."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from promptkit.config import atomic_write, dump_yaml
from promptkit.library import PromptVersion
from promptkit.library.spec import PromptSpec
from promptkit.library.store import PromptFolder

if TYPE_CHECKING:
    from promptkit.optimize.run import Search

ROWS_PER_SECOND = {"hf": 20.0}  # measured label scoring of short inputs on 2 cores; API providers: 5/s


def estimate(search: Search, cache: Any | None) -> dict[str, Any]:
    """Calls, tokens, dollars and minutes of the whole run, before anything runs: structural candidates
    and few-shot raced by halving, proposer rounds, the final test of two versions."""
    from promptkit.estimate import estimate_run
    from promptkit.optimize import candidates as cands

    o, rungs = search.options, search.rungs
    n_structural = 1 + len(cands.structural(search.base.spec)) + len(o.instructions)
    n_fewshot = (3 if o.embeddings else 1) * len([k for k in o.fewshot_k if k <= len(search.data.pool)])
    rounds = o.rounds if o.proposer else 0

    def halving(count: int) -> int:
        rows, alive, previous = 0, count, 0
        for size in rungs:
            rows += alive * (size - previous)  # the first rows of a larger slice are cached
            previous = size
            alive = max(1, -(-alive // 2))
        return rows

    # the incumbent of each later phase is already scored: count only the new candidates
    search_rows = halving(n_structural) + (halving(n_fewshot + 1) - rungs[-1] if n_fewshot else 0)
    search_rows += rounds * (halving(o.proposals + 1) - rungs[-1])
    sample = search.data.validation_plan(search.base, min(len(search.data.validation), 50))
    per_row = estimate_run(sample, search.provider)
    test = estimate_run(search.data.test_plan, search.provider, cache=cache)
    tokens_per_row = (per_row.tokens_in + per_row.tokens_out) / max(1, per_row.examples)
    cost_per_row = per_row.cost / max(1, per_row.examples)
    rate = ROWS_PER_SECOND.get(search.data.train_plan.model.provider, 5.0)
    test_rows = 2 * (test.examples - test.cached)
    return {"validation_rows": len(search.data.validation), "rungs": rungs, "pool_rows": len(search.data.pool),
            "test_rows": test.examples, "candidates": n_structural + n_fewshot + rounds * o.proposals,
            "search_calls": search_rows, "proposer_calls": rounds, "test_calls": test_rows,
            "tokens": round((search_rows + test_rows) * tokens_per_row),
            "search_cost": search_rows * cost_per_row, "test_cost": 2 * test.to_spend,
            "minutes": (search_rows + test_rows) / rate / 60}


def publish(base: PromptVersion, spec: PromptSpec, record: dict[str, Any]) -> PromptVersion:
    """Publish `spec` as the next version of base's prompt, with `optimized:` saying how it was found.
    Content identical to a published version publishes nothing and returns that version."""
    folder = PromptFolder(base.folder, base.name)
    digest = spec.content_hash()
    for version in folder.versions():
        if version.hash == digest:
            return version
    numbers = folder.version_numbers()
    number = (numbers[-1] + 1) if numbers else 1
    body = {
        "version": number,
        "hash": digest,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "message": f"optimized from {base.ref}: {record.get('winner', '')}",
        "prompt": spec.model_dump(exclude_defaults=True),
        "optimized": record,
    }
    header = "# Published prompt version: immutable. Found by 'promptkit optimize' (see 'optimized:').\n"
    folder.versions_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(folder.versions_dir / f"v{number}.yaml", header + dump_yaml(body))
    return folder.version(number)
