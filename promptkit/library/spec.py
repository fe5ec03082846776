"""The prompt file format: slots, few-shot examples, labels and model settings."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from promptkit.config import Strict

SLOT_ORDER = ("context", "instruction", "format", "task")
OUTPUT_KEY = "output"  # the key of a few-shot example that holds its answer
MAX_FEWSHOT_K = 32  # examples a few-shot rule may show per input


class Slots(Strict):
    """Jinja templates. Only `task` is required; it renders one example's input."""

    context: str | None = Field(None, description="background the model needs")
    instruction: str | None = Field(None, description="what to do")
    format: str | None = Field(None, description="how to answer")
    task: str = Field(description="the input of one example, e.g. 'Review: {{ text }}'")


class Settings(Strict):
    """The model settings the prompt was written for."""

    model: str | None = Field(None, description="model spec, e.g. smollm2, hf:/path, openai:gpt-4o-mini")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(64, ge=1, le=32768)
    stop: list[str] = Field(default_factory=list)


def _check_text_keys(value: Any, what: str) -> None:
    """Refuse a mapping inside an example keyed by a number, boolean or null (`{1: a}`): the content
    hash writes keys as JSON text, so `{1: a}` and `{'1': a}` would share a hash and render differently."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{what} has the key {key!r} ({type(key).__name__}); keys must be text, e.g. '{key}'")
            _check_text_keys(inner, what)
    elif isinstance(value, list):
        for inner in value:
            _check_text_keys(inner, what)


class FewShotRule(Strict):
    """Few-shot examples chosen per example: the k pool examples most similar to its input
    (MiniLM embeddings of the task slot's text), rendered before the fixed `examples`."""

    select: Literal["similar"] = Field("similar", description="how to choose: 'similar' (embedding similarity)")
    k: int = Field(4, ge=1, le=MAX_FEWSHOT_K, description="examples shown per input")
    pool: list[dict[str, Any]] = Field(description="candidate examples, each with the task's variables and 'output'")

    @field_validator("pool")
    @classmethod
    def _pool_has_output(cls, pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not pool:
            raise ValueError("a few-shot pool needs at least one example")
        for i, ex in enumerate(pool):
            if OUTPUT_KEY not in ex:
                raise ValueError(f"few-shot pool example {i} has no '{OUTPUT_KEY}' key (its answer)")
            _check_text_keys(ex, f"few-shot pool example {i}")
        return pool


class PromptSpec(Strict):
    description: str = ""
    style: Literal["text", "chat"] = Field("text", description="render to plain text or to chat messages")
    slots: Slots
    examples: list[dict[str, Any]] = Field(default_factory=list, description="few-shot examples")
    labels: list[str] | None = Field(
        None, description="the label set, for classification; a mapping label: answer text sets verbalizers too")
    verbalizers: dict[str, str] | None = Field(
        None, description="label -> the answer text scored (after label_prefix) in place of the label's name")
    calibration: dict[str, float] | None = Field(
        None, description="label -> bias added to its log-likelihood before the best label is picked")
    fewshot: FewShotRule | None = Field(None, description="few-shot examples selected per input")
    label_prefix: str | None = Field(
        None, description="text between prompt and label when scoring; default ' ' for text, '' for chat"
    )
    settings: Settings = Field(default_factory=Settings)

    @model_validator(mode="before")
    @classmethod
    def _labels_mapping(cls, data: Any) -> Any:
        """`labels: {positive: great, negative: terrible}` is the label list plus its verbalizers."""
        if isinstance(data, dict) and isinstance(data.get("labels"), dict):
            mapping = data["labels"]
            data = {**data, "labels": [str(k) for k in mapping]}
            if mapping and all(isinstance(v, str) for v in mapping.values()):
                data["verbalizers"] = {**{str(k): v for k, v in mapping.items()}, **(data.get("verbalizers") or {})}
            else:
                raise ValueError("a labels mapping gives each label its answer text, e.g. {positive: great}")
        return data

    @model_validator(mode="after")
    def _label_keys_known(self) -> PromptSpec:
        for name in ("verbalizers", "calibration"):
            keys = getattr(self, name)
            if keys is None:
                continue
            if not self.labels:
                raise ValueError(f"'{name}' needs a label set ('labels: [...]')")
            unknown = [k for k in keys if k not in self.labels]
            if unknown:
                raise ValueError(f"'{name}' names {unknown[0]!r}, which is not one of the labels {self.labels}")
        if self.verbalizers and len(set(self.answers)) != len(self.answers):
            raise ValueError("verbalizers must give distinct answer texts")
        return self

    @field_validator("labels")
    @classmethod
    def _labels_distinct(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            if len(labels) < 2:
                raise ValueError("a label set needs at least two labels")
            if len(set(labels)) != len(labels):
                raise ValueError("labels must be distinct")
        return labels

    @field_validator("examples")
    @classmethod
    def _examples_have_output(cls, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, ex in enumerate(examples):
            if OUTPUT_KEY not in ex:
                raise ValueError(f"few-shot example {i} has no '{OUTPUT_KEY}' key (its answer)")
            _check_text_keys(ex, f"few-shot example {i}")
        return examples

    @property
    def prefix(self) -> str:
        if self.label_prefix is not None:
            return self.label_prefix
        return " " if self.style == "text" else ""

    @property
    def answers(self) -> list[str]:
        """The text scored for each label, in label order: its verbalizer, else its name."""
        verbal = self.verbalizers or {}
        return [verbal.get(label, label) for label in self.labels or []]

    def answer_of(self, output: str) -> str:
        """A few-shot example's answer as rendered: a label's verbalizer, else the output itself."""
        return (self.verbalizers or {}).get(output, output)

    def decide(self, scores: dict[str, float]) -> tuple[str | None, dict[str, float]]:
        """The predicted label from a provider's answer-text log-likelihoods, and the scores by label
        name. Calibration biases are added here, the one place label scores become a prediction."""
        by_answer = dict(zip(self.answers, self.labels or [], strict=True))
        named = {by_answer.get(text, text): value for text, value in scores.items()}
        if not named:
            return None, named
        bias = self.calibration or {}
        best = max(named, key=lambda label: named[label] + bias.get(label, 0.0))
        return best, named

    def content(self) -> dict[str, Any]:
        """What a version's hash covers: everything that changes what the model sees."""
        return self.model_dump(exclude={"description"}, exclude_defaults=True)

    def content_hash(self) -> str:
        return content_hash(self.content())


def content_hash(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
