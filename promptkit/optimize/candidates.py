"""Candidate prompts: variations of the current version's spec, each with a readable description.

Every candidate is an ordinary PromptSpec, so it renders and scores exactly as a published version."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from promptkit.data import Example
from promptkit.library.spec import OUTPUT_KEY, PromptSpec
from promptkit.metrics.relevance import embed

# Answer words tried for common label names (the label itself is always tried too).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "positive": ("good", "great"), "negative": ("bad", "terrible"), "neutral": ("okay", "neutral"),
    "yes": ("Yes", "true"), "no": ("No", "false"), "true": ("yes", "True"), "false": ("no", "False"),
    "spam": ("spam", "junk"), "ham": ("fine", "normal"),
}


@dataclass
class Candidate:
    key: str  # the spec's content hash: one entry per distinct prompt
    spec: PromptSpec
    origin: str  # how it was made, e.g. "verbalizers good/bad", "proposer round 2"
    parent: str | None = None
    scores: dict[int, tuple[int, int]] = field(default_factory=dict)  # rows -> (correct, n) as scored
    calibrated: dict[int, tuple[int, int]] = field(default_factory=dict)  # rows -> cross-fitted (correct, n)
    bias: dict[str, float] | None = None  # fitted on the largest slice scored
    dropped_at: int | None = None  # rung it lost at

    @classmethod
    def of(cls, spec: PromptSpec, origin: str, parent: str | None = None) -> Candidate:
        return cls(spec.content_hash(), spec, origin, parent)

    def best(self) -> tuple[int, int, int, bool]:
        """(rows, correct, n, calibrated) at the largest slice: the better of raw and bias-fitted."""
        if not self.scores:
            return (0, 0, 0, False)
        rows = max(self.scores)
        raw, cal = self.scores[rows], self.calibrated.get(rows, (0, 0))
        if cal[1] and cal[0] / cal[1] > raw[0] / max(1, raw[1]):
            return (rows, cal[0], cal[1], True)
        return (rows, raw[0], raw[1], False)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "spec": self.spec.model_dump(exclude_defaults=True), "origin": self.origin,
                "parent": self.parent, "scores": {str(k): list(v) for k, v in self.scores.items()},
                "calibrated": {str(k): list(v) for k, v in self.calibrated.items()}, "bias": self.bias,
                "dropped_at": self.dropped_at}

    @classmethod
    def from_dict(cls, data: Any) -> Candidate:
        """A candidate as to_dict wrote it. A damaged or edited one raises ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a candidate is not a JSON object")
        spec = PromptSpec.model_validate(data["spec"])
        key, origin, parent, dropped, bias = (data["key"], data["origin"], data.get("parent"), data.get("dropped_at"),
                                              data.get("bias"))
        if key != spec.content_hash():
            raise ValueError(f"candidate {key!r} is not the hash of its prompt")
        if not isinstance(origin, str) or not isinstance(parent, str | None) or not isinstance(dropped, int | None):
            raise ValueError(f"candidate {key!r} has a damaged origin, parent or dropped_at")
        if bias is not None and not (isinstance(bias, dict) and all(
                k in (spec.labels or []) and _finite(v) for k, v in bias.items())):
            raise ValueError(f"candidate {key!r} has a damaged bias {bias!r:.80}")
        return cls(key, spec, origin, parent, _counts(data.get("scores", {})), _counts(data.get("calibrated", {})),
                   bias, dropped)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _counts(data: Any) -> dict[int, tuple[int, int]]:
    """rows -> (correct, n) as to_dict writes them: whole numbers, 0 <= correct <= n."""
    if not isinstance(data, dict):
        raise ValueError(f"scores {data!r} are not a JSON object")
    out = {}
    for rows, value in data.items():
        if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)
                and 0 <= value[0] <= value[1]):
            raise ValueError(f"score {value!r} is not [correct, rows]")
        out[int(rows)] = (value[0], value[1])
    return out


def _with(spec: PromptSpec, **changes: Any) -> PromptSpec:
    data = spec.model_dump(exclude_defaults=True)
    data.update(changes)
    return PromptSpec.model_validate({k: v for k, v in data.items() if v is not None})


def structural(spec: PromptSpec) -> list[tuple[PromptSpec, str]]:
    """Verbalizers, style: the cheap variations that need no data and no proposer."""
    labels = list(spec.labels or [])
    out: list[tuple[PromptSpec, str]] = []
    base = {k: v for k, v in spec.model_dump(exclude_defaults=True).items() if k not in ("calibration",)}
    base_spec = PromptSpec.model_validate(base)
    options = [[w for w in SYNONYMS.get(label.lower(), ()) if w != label] for label in labels]
    for i in range(max((len(o) for o in options), default=0)):
        words = {label: (o[i] if i < len(o) else label) for label, o in zip(labels, options, strict=True)}
        if len(set(words.values())) == len(words) and any(words[k] != k for k in words):
            out.append((_with(base_spec, verbalizers=words), "verbalizers " + "/".join(words.values())))
    capital = {label: label[:1].upper() + label[1:] for label in labels}
    if any(capital[k] != k for k in capital) and len(set(capital.values())) == len(capital):
        out.append((_with(base_spec, verbalizers=capital), "verbalizers " + "/".join(capital.values())))
    cued = None
    if not base_spec.slots.task.rstrip().endswith(":"):
        # a text prompt whose task ends with the input leaves the model unsure an answer comes next
        slots = {**base_spec.slots.model_dump(exclude_none=True), "task": base_spec.slots.task.rstrip() + "\nAnswer:"}
        cued = _with(base_spec, style="text", label_prefix=None, slots=slots)
        out.append((cued, "style text + answer cue" if spec.style == "chat" else "answer cue"))
    other = "chat" if spec.style == "text" else "text"
    # a chat prompt's label prefix is '' and a text prompt's ' ': let the new style take its default
    out.append((_with(base_spec, style=other, label_prefix=None), f"style {other}"))
    return out if cued is None else [*out, *_cue_variants(base_spec, cued)]


def _cue_variants(base: PromptSpec, cued: PromptSpec) -> list[tuple[PromptSpec, str]]:
    """The answer-cued prompt with the label verbalizers capitalized (how a text answer often starts)."""
    labels = list(base.labels or [])
    capital = {label: label[:1].upper() + label[1:] for label in labels}
    if any(capital[k] != k for k in capital) and len(set(capital.values())) == len(capital):
        return [(_with(cued, verbalizers=capital), "answer cue + verbalizers " + "/".join(capital.values()))]
    return []


def balanced(pool: Sequence[Example], labels: Sequence[str], k: int, seed: int, diverse: bool) -> list[Example]:
    """k examples with the labels in turn; `diverse` picks, within each label, examples far apart
    in embedding space (greedy farthest point) rather than at random."""
    by_label = {label: [e for e in pool if e.target == label] for label in labels}
    rng = random.Random(seed)
    picked: dict[str, list[Example]] = {}
    per = -(-k // max(1, len(labels)))
    for label, rows in by_label.items():
        rows = list(rows)
        rng.shuffle(rows)
        if diverse and len(rows) > per:
            rows = rows[:200]
            vectors = embed([_text(e) for e in rows])
            chosen = [0]
            while len(chosen) < per:
                nearest = (vectors @ vectors[chosen].T).max(axis=1)
                nearest[chosen] = 2.0
                chosen.append(int(nearest.argmin()))
            rows = [rows[i] for i in chosen]
        picked[label] = rows[:per]
    order: list[Example] = []
    for i in range(per):  # interleave labels so that no label is always last
        for label in (labels if i % 2 == 0 else list(reversed(labels))):
            if i < len(picked[label]) and len(order) < k:
                order.append(picked[label][i])
    return order


def _text(example: Example) -> str:
    return " ".join(str(v) for v in example.vars.values())


def as_shot(example: Example) -> dict[str, Any]:
    return {**example.vars, OUTPUT_KEY: example.target}


def fewshot(spec: PromptSpec, pool: Sequence[Example], k_values: Sequence[int], seed: int,
            pool_size: int = 64, embeddings: bool = True) -> list[tuple[PromptSpec, str]]:
    """Static balanced and diverse examples, and per-input similar examples from a stored pool."""
    labels = list(spec.labels or [])
    out: list[tuple[PromptSpec, str]] = []
    for k in k_values:
        if len(pool) < k:
            continue
        out.append((_with(spec, examples=[as_shot(e) for e in balanced(pool, labels, k, seed, False)]),
                    f"few-shot {k} balanced"))
        if not embeddings:
            continue
        out.append((_with(spec, examples=[as_shot(e) for e in balanced(pool, labels, k, seed, True)]),
                    f"few-shot {k} balanced+diverse"))
        stored = balanced(pool, labels, min(len(pool), pool_size), seed, False)
        out.append((_with(spec, fewshot={"select": "similar", "k": k, "pool": [as_shot(e) for e in stored]}),
                    f"few-shot {k} similar (pool {len(stored)})"))
    return out


def with_instruction(spec: PromptSpec, instruction: str) -> PromptSpec:
    slots = spec.slots.model_dump(exclude_none=True)
    slots["instruction"] = instruction.strip()
    return _with(spec, slots=slots)
