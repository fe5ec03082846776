"""Scratch projects and the files in them: a copy of the repo's prompts/ and evals/, a toy project scored
by the fake provider's keyword rule, a project for tuning, a project with a slow fake model; dataset writers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data" / "sentiment"


def copy_project(where: Path) -> Path:
    """A scratch copy of the repo's prompts/ and evals/ in `where` (created if missing)."""
    where.mkdir(parents=True, exist_ok=True)
    for name in ("prompts", "evals"):
        shutil.copytree(ROOT / name, where / name, dirs_exist_ok=True)
    return where


def write_prompt(root: Path, name: str, data: dict[str, Any]) -> Path:
    """prompts/NAME/prompt.yaml holding `data`; returns the prompt's folder."""
    folder = root / "prompts" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompt.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


# ---------------------------------------------------------------- datasets

def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """One JSON object per line."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


POSITIVE_WORDS = ["great", "love", "wonderful", "excellent", "perfect"]
NEGATIVE_WORDS = ["awful", "broke", "terrible", "refund", "worst"]


def write_reviews(path: Path, n: int) -> Path:
    """n labelled reviews, each distinct, in a JSONL file."""
    lines = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        word = (POSITIVE_WORDS if label == "positive" else NEGATIVE_WORDS)[i % 5]
        lines.append(json.dumps({"text": f"Review number {i}: it was {word}.", "label": label}))
    path.write_text("\n".join(lines) + "\n")
    return path


def register_model(project: Path, name: str, model: str = "gpt-4o-mini", provider: str = "fake", **options: Any) -> str:
    """Register a named model (e.g. a fake with a delay) in the project's models.yaml."""
    from promptkit.models import ModelRegistry
    from promptkit.project import Project

    ModelRegistry(Project(project).state_dir / "models.yaml").add(name, provider, model, options=options)
    return name


# ---------------------------------------------------------------- the toy project (gate tests)

TOY_KEYWORDS = {"positive": ["great"], "negative": ["awful"]}


def toy_project(root: Path, n: int = 200, task: str = "Review: {{ text }}", thresholds: dict | None = None) -> Path:
    """prompts/toy (one published version, v1 = the working copy) and evals/toy.yaml over n examples,
    scored by `fake:toy` with a keyword rule, so every outcome is decided by the example's words."""
    write_toy_prompt(root, task)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        word = "great" if label == "positive" else "awful"
        rows.append({"text": f"a {word} place #{i}.", "label": label, "split": "test"})
    (root / "evals" / "data").mkdir(parents=True)
    write_jsonl(root / "evals" / "data" / "toy.jsonl", rows)
    suite = {
        "prompt": "toy",
        "dataset": {"path": "data/toy.jsonl", "fields": {"text": "text"}, "target": "label", "split_field": "split"},
        "split": "test",
        "model": "fake:toy",
        "provider_options": {"keywords": TOY_KEYWORDS, "batch_size": 50},
        "metrics": ["accuracy", "f1", "latency", "tokens", "cost", "errors"],
    }
    if thresholds:
        suite["thresholds"] = thresholds
    (root / "evals" / "toy.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return root


def write_toy_prompt(root: Path, task: str) -> None:
    """The toy prompt's working copy with `task` as its task slot."""
    write_prompt(root, "toy", {"description": "toy sentiment", "slots": {"task": task + "\nSentiment:"},
                               "labels": ["negative", "positive"],
                               "settings": {"model": "fake:toy", "max_tokens": 3, "stop": ["\n"]}})


# ---------------------------------------------------------------- the tune project

POS = ["Great value and it works perfectly.", "I love this phone case.", "Excellent sound, very happy.",
       "The staff were friendly and quick.", "Best pizza in town.", "Works like a charm.",
       "Really comfortable and well made.", "Fast delivery, great product.", "Superb battery life.",
       "Wonderful service, will come back.", "Five stars, no complaints.", "The screen is bright and sharp."]
NEG = ["It broke after two days.", "Terrible customer service.", "The worst meal I have had.",
       "Never buying this again.", "Bad fit and cheap material.", "The battery died within an hour.",
       "Cold food and rude waiter.", "It stopped charging after a week.", "Awful sound quality.",
       "The item arrived damaged.", "Complete waste of money.", "The app keeps crashing."]


def tune_project(root: Path, style: str = "chat", overlap: bool = False) -> Path:
    """prompts/review (chat or text style) and evals/review.yaml with a train and a test split."""
    (root / "prompts" / "review").mkdir(parents=True)
    (root / "evals" / "data").mkdir(parents=True)
    if style == "chat":
        slots = "  instruction: Classify the sentiment of the review. Answer positive or negative.\n  task: '{{ text }}'\n"
    else:
        slots = "  task: |-\n    Review: {{ text }}\n    Sentiment:\n"
    (root / "prompts" / "review" / "prompt.yaml").write_text(
        f"description: test prompt\nstyle: {style}\nslots:\n{slots}labels: [negative, positive]\n"
        "settings: {model: smollm2, temperature: 0, max_tokens: 3}\n")
    rows = []
    for i, (p, n) in enumerate(zip(POS, NEG, strict=True)):
        split = "test" if i < 4 else "train"
        rows += [{"text": p, "label": "positive", "split": split}, {"text": n, "label": "negative", "split": split}]
    if overlap:
        rows.append({"text": POS[0], "label": "positive", "split": "train"})
    write_jsonl(root / "evals" / "data" / "reviews.jsonl", rows)
    (root / "evals" / "review.yaml").write_text(
        "prompt: review\ntask: classification\ndataset:\n  path: data/reviews.jsonl\n  fields: {text: text}\n"
        "  target: label\n  split_field: split\nsplit: test\nmodel: smollm2\nmetrics: [accuracy, f1]\n")
    return root


def tune_job(root: Path, backend_options: dict | None = None, name: str = "review-tuned", **kw):  # type: ignore[no-untyped-def]
    """A TuneJob on tune_project's prompt and suite."""
    from promptkit.project import Project
    from promptkit.tune.base import TuneJob
    from promptkit.tune.trainset import build_trainset

    project = Project(root)
    version = project.library.resolve("review@working")
    suite = project.suite("review")
    trainset = build_trainset(project, version, suite)
    return TuneJob(project, version, suite, trainset, name, root / ".promptkit" / "adapters" / name,
                   options=dict(backend_options or {}), **kw)


# ---------------------------------------------------------------- the slow project (kill trials, concurrency)

def slow_project(where: Path, rows: int = 40, batch: int = 2, delay: float = 0.05) -> Path:
    """A copy of the repo's project with a suite `slow`: `rows` distinct examples, the slow fake model
    (tests/helpers/fakes.py) sleeping `delay` seconds per batch of `batch`."""
    project = copy_project(where)
    lines = [json.dumps({"text": f"review number {i}: {'great' if i % 2 else 'awful'}",
                         "label": "positive" if i % 2 else "negative"}) for i in range(rows)]
    (project / "evals" / "data" / "slow.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (project / "evals" / "slow.yaml").write_text(
        "prompt: sentiment\ndataset: {path: data/slow.jsonl}\n"
        f"provider_options: {{batch_size: {batch}, delay: {delay}}}\n", encoding="utf-8")
    return project
