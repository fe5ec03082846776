"""JSON read strictly: a key written twice in one object, or NaN/Infinity, is an error, not a silent pick."""

from __future__ import annotations

import json
from typing import Any


def loads_strict(text: str, error: type[Exception], duplicate: str, constant: str) -> Any:
    """`json.loads`, raising `error` with `duplicate` (formatted with {key!r}) for a repeated key and
    `constant` (formatted with {name}) for NaN/Infinity; each caller words these for its own file."""

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise error(duplicate.format(key=key))
            out[key] = value
        return out

    def no_constant(name: str) -> Any:
        raise error(constant.format(name=name))

    return json.loads(text, object_pairs_hook=unique_keys, parse_constant=no_constant)
