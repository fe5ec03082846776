"""Few-shot examples chosen per input: the rule stored in a version (`fewshot:`), applied at render
time so that eval, check, serve and tune all show the model the same examples.

Selection is deterministic: the k pool examples whose task text is most similar to the input's
(cosine of all-MiniLM-L6-v2 embeddings, ties broken by pool order), most similar last, nearest the
input. An example identical to the input is never shown as its own answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptkit.library.spec import PromptSpec
from promptkit.metrics.relevance import embed

TaskText = Callable[[dict[str, Any], str], str]  # (variables, what) -> the rendered task slot


def select_examples(spec: PromptSpec, task_text: TaskText, query: str) -> list[dict[str, Any]]:
    """The pool examples to show before the input whose rendered task slot is `query`."""
    rule = spec.fewshot
    if rule is None:
        return []

    texts = [task_text(ex, f"few-shot pool example {i}") for i, ex in enumerate(rule.pool)]
    vectors = embed([*texts, query])
    sims = vectors[:-1] @ vectors[-1]
    order = sorted(range(len(texts)), key=lambda i: (-float(sims[i]), i))
    chosen = [i for i in order if texts[i] != query][: rule.k]
    return [rule.pool[i] for i in reversed(chosen)]
