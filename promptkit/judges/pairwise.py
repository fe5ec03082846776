"""Pairwise judging: which of two runs' outputs is better, per example, by a judge model.

Each pair is asked twice, with the outputs in both orders, to cancel the judge's position bias:
a side wins when both orders pick it, anything else (a split or a tie) is a tie, and an
unreadable answer is a judge error. Win/loss counts are tested with a two-sided exact sign test
(binomial, p=1/2, ties left out). The decided pairs go to a preference file, one JSON object a line:
{"prompt", "chosen", "rejected"} plus the example id, ready for preference tuning."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write
from promptkit.evaluate import build_request
from promptkit.judges import Judge, JudgeError, parse_object
from promptkit.results import EvalRun


@dataclass
class Pair:
    id: str
    index: int
    prompt: str
    a: str
    b: str
    verdict: str  # "a", "b", "tie", "error" (judge) or "skipped" (a model call failed)
    reasons: list[str] = field(default_factory=list)


@dataclass
class PairwiseResult:
    a: str
    b: str
    judge: str
    pairs: list[Pair]
    preferences: Path | None = None

    def count(self, verdict: str) -> int:
        return sum(p.verdict == verdict for p in self.pairs)

    @property
    def p_value(self) -> float:
        return sign_test(self.count("a"), self.count("b"))

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "judge": self.judge, "a_wins": self.count("a"), "b_wins": self.count("b"),
                "ties": self.count("tie"), "judge_errors": self.count("error"), "skipped": self.count("skipped"),
                "sign_test_p": self.p_value, "preferences": str(self.preferences) if self.preferences else None}


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: P(a split at least this uneven) under Binomial(wins+losses, 1/2)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = max(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n
    return min(1.0, 2 * tail)


def _winner(answer: str) -> str:
    data = parse_object(answer, {"winner": str, "reason": str})
    winner = data["winner"].strip().lower()
    if winner not in ("a", "b", "tie"):
        raise JudgeError(f"judge winner {data['winner']!r} is not A, B or tie")
    return winner


def _prompt_text(run: EvalRun, index: int) -> str:
    request = build_request(run.plan, run.plan.examples[index])
    if request.text is not None:
        return request.text
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in request.messages or [])


def judge_pairs(run_a: EvalRun, run_b: EvalRun, judge: Judge, cache: Any | None = None) -> PairwiseResult:
    """Judge the examples both runs have, in both orders, in one batch."""
    by_id = {r.id: r for r in run_b.results}
    positions = {e.id: i for i, e in enumerate(run_a.plan.examples)}
    pairs: list[Pair] = []
    for ra in run_a.results:
        rb = by_id.get(ra.id)
        if rb is None:
            continue
        skipped = ra.error is not None or rb.error is not None
        pairs.append(Pair(ra.id, ra.index, _prompt_text(run_a, positions[ra.id]), ra.output, rb.output,
                          "skipped" if skipped else "pending"))
    asked = [p for p in pairs if p.verdict == "pending"]
    requests = []
    for p in asked:
        text = next(r for r in run_a.results if r.id == p.id).input
        shown = text.get("text") if isinstance(text.get("text"), str) else "\n".join(f"{k}: {v}" for k, v in text.items())
        requests.append(judge.request("pairwise", {"input": shown, "first": p.a, "second": p.b}, f"{p.id}:ab"))
        requests.append(judge.request("pairwise", {"input": shown, "first": p.b, "second": p.a}, f"{p.id}:ba"))
    answers = judge.ask(requests, cache)
    for i, p in enumerate(asked):
        first, second = answers[2 * i], answers[2 * i + 1]
        try:
            if first.error or second.error:
                raise JudgeError(f"judge call failed: {first.error or second.error}")
            ab, ba = _winner(first.output), _winner(second.output)
        except JudgeError as e:
            p.verdict, p.reasons = "error", [str(e)]
            judge.errors += 1
            continue
        swapped = {"a": "b", "b": "a", "tie": "tie"}[ba]  # the second order shows b as "A"
        p.verdict = ab if ab == swapped and ab != "tie" else "tie"
        p.reasons = [first.output.strip()[:200], second.output.strip()[:200]]
    return PairwiseResult(f"{run_a.plan.version.ref} · {run_a.plan.model.spec}",
                          f"{run_b.plan.version.ref} · {run_b.plan.model.spec}", judge.ref.spec, pairs)


def write_preferences(result: PairwiseResult, path: Path) -> int:
    """The decided pairs as {prompt, chosen, rejected, id} JSONL; returns how many were written."""

    lines = []
    for p in result.pairs:
        if p.verdict in ("a", "b"):
            chosen, rejected = (p.a, p.b) if p.verdict == "a" else (p.b, p.a)
            lines.append(json.dumps({"prompt": p.prompt, "chosen": chosen, "rejected": rejected, "id": p.id},
                                    ensure_ascii=False))
    atomic_write(path, "".join(line + "\n" for line in lines))
    result.preferences = path
    return len(lines)
