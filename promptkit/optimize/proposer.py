"""Instruction rewrites from a proposer model (any model spec) that reads the current prompt and the
validation rows it gets wrong."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from promptkit.providers import Provider
from promptkit.results import Request

MAX_FAILURES = 8
META = """You improve prompts for a classification model.

The current instruction is:
<instruction>
{instruction}
</instruction>

The prompt shows each input like this:
<task>
{task}
</task>
The answer is one of: {labels}.

On a validation set it scores {score:.1%}. Some inputs it gets wrong:
{failures}

Write {n} better instructions, one per line, each on a line starting with "INSTRUCTION:".
Keep them short and plain; do not use curly braces."""

_LINE = re.compile(r"^\s*(?:[-*\d.)\s]*)?INSTRUCTION:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def proposal_request(instruction: str, task: str, labels: Sequence[str], score: float,
                     failures: Sequence[tuple[str, str, str | None]], n: int, seed: int) -> Request:
    shown = "\n".join(f"- input: {text!r}; expected {expected}; predicted {predicted or '(none)'}"
                      for text, expected, predicted in failures[:MAX_FAILURES]) or "- (none)"
    content = META.format(instruction=instruction or "(none)", task=task, labels=", ".join(labels), score=score,
                          failures=shown, n=n)
    return Request(id=f"propose-{seed}", messages=[{"role": "user", "content": content}], max_tokens=400,
                   temperature=0.7, seed=seed)


def parse_proposals(output: str, limit: int) -> list[str]:
    """The instructions in a proposer's answer: lines starting 'INSTRUCTION:', else non-empty lines."""
    found = [m.group(1) for m in _LINE.finditer(output)]
    if not found:
        found = [line.strip(" -*\t") for line in output.splitlines() if len(line.strip()) > 8]
    clean = []
    for text in found:
        text = text.strip().strip('"').strip()
        if text and "{" not in text and "}" not in text and len(text) <= 600 and text not in clean:
            clean.append(text)
    return clean[:limit]


def propose(provider: Provider, request: Request) -> tuple[list[str], dict[str, Any]]:
    """(instructions, call record). A failed call proposes nothing; the search goes on."""
    response = provider.complete([request])[0]
    record = {"error": response.error, "tokens_in": response.tokens_in, "tokens_out": response.tokens_out,
              "cost": response.cost}
    if response.error:
        return [], record
    return parse_proposals(response.output, 8), record
