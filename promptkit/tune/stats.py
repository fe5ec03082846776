"""The paired McNemar test: did model B get significantly more of the same examples right than A?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promptkit.significance import ALPHA


@dataclass(frozen=True)
class McNemar:
    n: int  # paired examples
    a_only: int  # A right, B wrong
    b_only: int  # B right, A wrong
    p_value: float  # exact two-sided binomial test on the discordant pairs

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.p_value < alpha


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: binomial(n = discordant, 0.5) tail, doubled, capped at 1."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    # sum in log space: n can be large
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(x - top) for x in logs)
    return min(1.0, 2 * tail)


def mcnemar(a: Sequence[Any], b: Sequence[Any]) -> McNemar:
    """Pair two runs' results (objects or dicts with `id` and `correct`) by example id."""

    def correct(results: Sequence[Any]) -> dict[str, bool]:
        out = {}
        for r in results:
            rid, ok = (r["id"], r["correct"]) if isinstance(r, dict) else (r.id, r.correct)
            out[str(rid)] = bool(ok)
        return out

    ca, cb = correct(a), correct(b)
    shared = [k for k in ca if k in cb]
    a_only = sum(ca[k] and not cb[k] for k in shared)
    b_only = sum(cb[k] and not ca[k] for k in shared)
    return McNemar(len(shared), a_only, b_only, mcnemar_exact(a_only, b_only))
