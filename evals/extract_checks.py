"""Python assertions of the extract suite (named in evals/extract.yaml as evals.extract_checks:NAME)."""

from __future__ import annotations

import json
from typing import Any


def quote_in_review(output: str, row: dict[str, Any]) -> dict[str, Any]:
    """The quote is copied from the review: a verbatim piece of it, at least two words long."""
    try:
        quote = json.loads(output).get("quote")
    except (json.JSONDecodeError, AttributeError):
        return {"pass": False, "reason": "no JSON object with a quote"}
    if not isinstance(quote, str) or len(quote.split()) < 2:
        return {"pass": False, "reason": f"quote {quote!r} is not a phrase"}
    if quote.lower().strip(" .") not in row["text"].lower():
        return {"pass": False, "reason": f"quote {quote!r} is not in the review"}
    return {"pass": True, "reason": "quote copied from the review"}
