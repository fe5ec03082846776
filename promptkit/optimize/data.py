"""The rows an optimize run may search on, and the rows it must never see.

Validation rows are a seeded sample of the training data (the suite's train split, or
--train-data); the rest of the training data is the pool few-shot examples are drawn from.
Test rows (the suite's eval split, or --eval-data) are scored once, at the end, and only there.
A training row whose input also appears in the test rows is refused, as `tune` does."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from promptkit.data import Example
from promptkit.errors import ConfigError
from promptkit.evaluate import EvalPlan, plan_eval
from promptkit.library import PromptVersion
from promptkit.project import Project, Suite

TRAIN_SPLIT = "train"
_DUP = re.compile(r"-\d+$")


def text_hash(example: Example) -> str:
    """The input text, whitespace- and case-folded: catches a test row copied with other fields."""
    text = " ".join(" ".join(str(v) for v in example.vars.values()).split()).lower()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class OptimizeData:
    validation: list[Example]  # the search scores candidates on these (in order: growing slices)
    pool: list[Example]  # the other training rows: few-shot examples come from here
    train_plan: EvalPlan  # plan over the training rows (examples replaced per candidate)
    test_plan: EvalPlan  # the final, once-only comparison
    data_hash: str  # training and test file hashes and the seed: what the search saw

    def validation_plan(self, version: PromptVersion, rows: int) -> EvalPlan:
        return replace(self.train_plan, version=version, examples=self.validation[:rows])


def carve(project: Project, version: PromptVersion, suite: Suite, train_data: Path | None, eval_data: Path | None,
          validation_size: int, seed: int, model: str | None = None) -> OptimizeData:
    train_plan = plan_eval(project, version, suite=suite, model=model, data=train_data,
                           split=None if train_data is not None else TRAIN_SPLIT)
    test_plan = plan_eval(project, version, suite=suite, model=model, data=eval_data)
    if train_plan.data_path == test_plan.data_path and train_plan.split == test_plan.split:
        raise ConfigError(f"the training rows are the test rows ({train_plan.data_path}, split {train_plan.split or 'all'})",
                          hint=f"give the suite a '{TRAIN_SPLIT}' split, or --train-data and --eval-data files")
    test_ids = {_DUP.sub("", e.id) for e in test_plan.examples}
    test_texts = {text_hash(e) for e in test_plan.examples}
    overlap = [e for e in train_plan.examples if _DUP.sub("", e.id) in test_ids or text_hash(e) in test_texts]
    if overlap:
        raise ConfigError(
            f"{len(overlap)} training row(s) also appear in the test rows (same input), e.g. row {overlap[0].index + 1}",
            where=str(train_plan.data_path),
            hint="remove them from the training data; searching on test rows would fake the gain")
    labelled = [e for e in train_plan.examples if e.target is not None and str(e.target).strip()]
    if train_plan.labels:
        labelled = [e for e in labelled if e.target in train_plan.labels]
    if len(labelled) < 8:
        raise ConfigError(f"only {len(labelled)} labelled training row(s); the search needs at least 8",
                          where=str(train_plan.data_path), hint="give --train-data with more rows")
    seen = sorted({str(e.target) for e in labelled})
    if len(seen) < 2:
        # a fitted bias would win by always answering that label, and be published as an improvement
        raise ConfigError(f"every training row has the label {seen[0]!r}; the search needs rows of at least two labels",
                          where=str(train_plan.data_path), hint="give --train-data with rows of every label")
    order = list(labelled)
    random.Random(seed).shuffle(order)
    n_val = min(validation_size, max(4, len(order) * 2 // 3))
    blob = f"{train_plan.data_hash}:{train_plan.split}:{test_plan.data_hash}:{test_plan.split}:{seed}:{n_val}"
    return OptimizeData(order[:n_val], order[n_val:], train_plan, test_plan, hashlib.sha256(blob.encode()).hexdigest()[:16])
