"""JSON read strictly: a key written twice in one object, NaN/Infinity, or a number too large to hold
(an integer over Python's 4300-digit conversion limit, a float that overflows to infinity) is an error,
not a silent pick or a ValueError that is no JSONDecodeError."""

from __future__ import annotations

import json
import math
import re
from typing import Any

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads_strict(text: str, error: type[Exception], duplicate: str, constant: str) -> Any:
    """`json.loads`, raising `error` with `duplicate` (formatted with {key!r}) for a repeated key and
    `constant` (formatted with {name}) for NaN/Infinity; each caller words these for its own file. A number
    too large to hold raises `error` too."""

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise error(duplicate.format(key=key))
            out[key] = value
        return out

    def no_constant(name: str) -> Any:
        raise error(constant.format(name=name))

    def bounded_int(digits: str) -> int:
        try:
            return int(digits)
        except ValueError:  # over sys.get_int_max_str_digits(): a plain ValueError, not a JSONDecodeError
            raise error(f"an integer of {len(digits)} digits is too large a number") from None

    def finite_float(digits: str) -> float:
        value = float(digits)
        if value in (math.inf, -math.inf):
            raise error(f"the number {digits[:20]}{'...' if len(digits) > 20 else ''} is too large (it overflows to infinity)")
        return value

    value = json.loads(text, object_pairs_hook=unique_keys, parse_constant=no_constant, parse_int=bounded_int,
                       parse_float=finite_float)
    if _SURROGATE_ESCAPE.search(text):
        try:  # a \ud800 escape not paired with its other half is no character: no file or page can hold it
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise error("a \\uD800-\\uDFFF escape that is half of a character (a lone surrogate)") from None
    return value


def finite(value: Any) -> Any:
    """`value` with NaN and infinities (a label's log-likelihood, a plugin's metric) replaced by None, so
    that the JSON written from it is strict (jq and JavaScript read it); the run store keeps them so too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def unfence(text: str) -> str:
    """The text inside a ```json (or bare ```) fence when the whole stripped text is one, else the text.
    Plain string tests: the regular expression this replaces (```(?:json)?\\s*(.*?)\\s*```) backtracked
    cubically, hanging for minutes on an output of ``` and a few thousand spaces."""
    text = text.strip()
    if len(text) >= 6 and text.startswith("```") and text.endswith("```"):
        inner = text[3:-3]
        return (inner[4:] if inner.startswith("json") else inner).strip()
    return text
