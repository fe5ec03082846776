"""The prompt file format: slots, few-shot examples, labels and model settings."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, field_validator

from promptkit.config import Strict

SLOT_ORDER = ("context", "instruction", "format", "task")
OUTPUT_KEY = "output"  # the key of a few-shot example that holds its answer


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


class PromptSpec(Strict):
    description: str = ""
    style: Literal["text", "chat"] = Field("text", description="render to plain text or to chat messages")
    slots: Slots
    examples: list[dict[str, Any]] = Field(default_factory=list, description="few-shot examples")
    labels: list[str] | None = Field(None, description="the label set, for classification")
    label_prefix: str | None = Field(
        None, description="text between prompt and label when scoring; default ' ' for text, '' for chat"
    )
    settings: Settings = Field(default_factory=Settings)

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
        return examples

    @property
    def prefix(self) -> str:
        if self.label_prefix is not None:
            return self.label_prefix
        return " " if self.style == "text" else ""

    def content(self) -> dict[str, Any]:
        """What a version's hash covers: everything that changes what the model sees."""
        return self.model_dump(exclude={"description"}, exclude_defaults=True)

    def content_hash(self) -> str:
        return content_hash(self.content())


def content_hash(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
