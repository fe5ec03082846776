"""Training sets built from exactly what the evals render.

Every training row goes through the same prompt version, suite and `build_request` as an eval
example; the target (label or reference) becomes the assistant turn. Rows whose input also sits
in the eval split are refused."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write
from promptkit.data import file_hash, read_rows
from promptkit.errors import ConfigError
from promptkit.evaluate import EvalPlan, build_request, plan_eval
from promptkit.library import PromptVersion
from promptkit.project import Project, Suite
from promptkit.results import Request

TRAIN_SPLIT = "train"
_DUP = re.compile(r"-\d+$")


@dataclass
class TrainRow:
    """One training example: the request the eval would send, and the answer to learn."""

    id: str
    request: Request
    target: str

    def record(self) -> dict[str, Any]:
        """The chat JSONL form: prompt messages plus the assistant answer (text prompts: prompt/completion)."""
        if self.request.messages is not None:
            return {"messages": [*self.request.messages, {"role": "assistant", "content": self.target}]}
        return {"prompt": self.request.text, "completion": self.request.label_prefix + self.target}


@dataclass
class TrainSet:
    rows: list[TrainRow]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def chat(self) -> bool:
        return all(r.request.messages is not None for r in self.rows)

    def jsonl(self) -> str:
        return "".join(json.dumps(r.record(), ensure_ascii=False) + "\n" for r in self.rows)

    def write(self, folder: Path) -> Path:
        """train.jsonl plus manifest.json in `folder`; returns the JSONL path."""
        folder.mkdir(parents=True, exist_ok=True)
        text = self.jsonl()
        self.manifest["trainset_hash"] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        path = folder / "train.jsonl"
        atomic_write(path, text)
        atomic_write(folder / "manifest.json", json.dumps(self.manifest, indent=2, ensure_ascii=False) + "\n")
        return path

    def split(self, fraction: float, seed: int) -> tuple[list[TrainRow], list[TrainRow]]:
        """(train, validation): a seeded hold-out of `fraction` of the rows (at least one when possible)."""
        import random

        if fraction <= 0 or len(self.rows) < 4:
            return list(self.rows), []
        order = list(range(len(self.rows)))
        random.Random(seed).shuffle(order)
        n_val = max(1, round(len(self.rows) * fraction))
        held = set(order[:n_val])
        return [r for i, r in enumerate(self.rows) if i not in held], [r for i, r in enumerate(self.rows) if i in held]


def base_id(example_id: str) -> str:
    """The input hash of an example id (duplicates carry a '-N' suffix)."""
    return _DUP.sub("", example_id)


def eval_plan(project: Project, version: PromptVersion, suite: Suite | None = None, model: str | None = None,
              data: Path | None = None, split: str | None = None, limit: int | None = None) -> EvalPlan:
    """The eval a tuned model is judged on: the suite's eval split (or DATA with SPLIT)."""
    return plan_eval(project, version, suite=suite, model=model, data=data, split=split, limit=limit)


def build_trainset(
    project: Project,
    version: PromptVersion,
    suite: Suite | None = None,
    train_data: Path | None = None,
    train_split: str | None = None,
    eval_data: Path | None = None,
    eval_split: str | None = None,
    limit: int | None = None,
) -> TrainSet:
    """Render the train split (or TRAIN_DATA) through VERSION as the eval does. Refuses an overlap
    with the eval split, rows without a target, and a train split equal to the eval split."""
    suite = suite or project.suite_for(version)
    default_eval_split = suite.config.split
    if train_data is None:
        train_split = train_split or TRAIN_SPLIT
    plan = plan_eval(project, version, suite=suite, data=train_data, split=train_split)
    evals = eval_plan(project, version, suite, data=eval_data, split=eval_split)
    if plan.data_path == evals.data_path and plan.split == evals.split:
        raise ConfigError(
            f"the training rows are the eval rows ({plan.data_path}, split {plan.split or 'all'})",
            hint=f"train on the '{TRAIN_SPLIT}' split, or give --train-data and --eval-data files"
                 f" (the suite evaluates split {default_eval_split!r})",
        )
    examples = plan.examples[:limit] if limit is not None else plan.examples
    eval_ids = {base_id(e.id) for e in evals.examples}
    overlap = [e for e in examples if base_id(e.id) in eval_ids]
    if overlap:
        first = overlap[0]
        raise ConfigError(
            f"{len(overlap)} training row(s) also appear in the eval split (same input), e.g. row {first.index + 1}",
            where=str(plan.data_path),
            hint="remove them from the training data; tuning on eval rows would fake the gain",
        )
    rows: list[TrainRow] = []
    for example in examples:
        if example.target is None or not str(example.target).strip():
            raise ConfigError(f"row {example.index + 1} has no target", where=str(plan.data_path),
                              hint=f"every training row needs '{suite.config.dataset.target}'")
        if plan.labels and example.target not in plan.labels:
            raise ConfigError(f"row {example.index + 1} has target {example.target!r}, not one of {plan.labels}",
                              where=str(plan.data_path))
        request = build_request(plan, example)
        request.labels = None  # a training row carries its answer, not a label set to score
        # the model learns the text the eval scores: the label's verbalizer when the version has one
        target = version.spec.answer_of(str(example.target)) if plan.labels else str(example.target)
        rows.append(TrainRow(example.id, request, target))
    manifest = {
        "prompt": version.ref,
        "prompt_hash": version.hash,
        "suite": suite.name,
        "style": version.spec.style,
        "dataset": str(plan.data_path),
        "dataset_hash": plan.data_hash,
        "split": plan.split,
        "eval_dataset": str(evals.data_path),
        "eval_dataset_hash": evals.data_hash,
        "eval_split": evals.split,
        "eval_examples": len(evals.examples),
        "rows": len(rows),
        "targets": dict(Counter(r.target for r in rows)),
        "overlap_checked": True,
    }
    return TrainSet(rows, manifest)


def load_trainset(path: Path, label_prefix: str = "") -> TrainSet:
    """A prepared training file: chat JSONL ({"messages": [..., assistant]}) or {"prompt", "completion"}."""
    rows: list[TrainRow] = []
    for line, record in read_rows(path):
        where = f"{path}:{line}"
        if "messages" in record:
            messages = record["messages"]
            if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict) \
                    or messages[-1].get("role") != "assistant":
                raise ConfigError("the last message must be the assistant's answer", where=where)
            for m in messages:
                if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in (
                        "system", "user", "assistant"):
                    raise ConfigError("each message needs a role (system/user/assistant) and text content", where=where)
            # the chat template needs a turn to answer; an empty answer teaches nothing
            if not any(m["role"] == "user" for m in messages[:-1]):
                raise ConfigError("no user message before the assistant's answer", where=where,
                                  hint="put the prompt in a {\"role\": \"user\"} message")
            if not messages[-1]["content"].strip():
                raise ConfigError("the assistant's answer is empty", where=where, hint="give every row its answer")
            request = Request(id=str(line), messages=[dict(m) for m in messages[:-1]], label_prefix=label_prefix)
            rows.append(TrainRow(str(line), request, str(messages[-1]["content"])))
        elif "prompt" in record and "completion" in record:
            # a number or list would silently train on its Python text ("['a']")
            for key in ("prompt", "completion"):
                if not isinstance(record[key], str) or not record[key].strip():
                    raise ConfigError(f"{key!r} must be non-empty text, got {json.dumps(record[key])[:40]}",
                                      where=where)
            request = Request(id=str(line), text=record["prompt"])
            rows.append(TrainRow(str(line), request, record["completion"]))
        else:
            raise ConfigError("expected {\"messages\": [...]} or {\"prompt\": ..., \"completion\": ...}", where=where)
    return TrainSet(rows, {"dataset": str(path), "dataset_hash": file_hash(path), "split": None, "rows": len(rows),
                           "targets": dict(Counter(r.target for r in rows))})


def check_prepared_overlap(trainset: TrainSet, plan: EvalPlan) -> None:
    """Refuse a prepared training file whose prompts equal an eval example's rendered prompt."""
    rendered = {json.dumps([build_request(plan, e).messages, build_request(plan, e).text], sort_keys=True): e
                for e in plan.examples}
    for row in trainset.rows:
        example = rendered.get(json.dumps([row.request.messages, row.request.text], sort_keys=True))
        if example is not None:
            raise ConfigError(
                f"training row {row.id} is eval example {example.index + 1} of {plan.data_path}",
                where=trainset.manifest.get("dataset"),
                hint="remove eval rows from the training file; tuning on them would fake the gain",
            )
