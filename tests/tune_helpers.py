"""Fixtures for the tune tests: a scratch project with a chat prompt and a split dataset."""

from __future__ import annotations

import json
from pathlib import Path

POS = ["Great value and it works perfectly.", "I love this phone case.", "Excellent sound, very happy.",
       "The staff were friendly and quick.", "Best pizza in town.", "Works like a charm.",
       "Really comfortable and well made.", "Fast delivery, great product.", "Superb battery life.",
       "Wonderful service, will come back.", "Five stars, no complaints.", "The screen is bright and sharp."]
NEG = ["It broke after two days.", "Terrible customer service.", "The worst meal I have had.",
       "Never buying this again.", "Bad fit and cheap material.", "The battery died within an hour.",
       "Cold food and rude waiter.", "It stopped charging after a week.", "Awful sound quality.",
       "The item arrived damaged.", "Complete waste of money.", "The app keeps crashing."]


def write_project(root: Path, style: str = "chat", overlap: bool = False) -> Path:
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
    (root / "evals" / "data" / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "evals" / "review.yaml").write_text(
        "prompt: review\ntask: classification\ndataset:\n  path: data/reviews.jsonl\n  fields: {text: text}\n"
        "  target: label\n  split_field: split\nsplit: test\nmodel: smollm2\nmetrics: [accuracy, f1]\n")
    return root


def make_job(root: Path, backend_options: dict | None = None, name: str = "review-tuned", **kw):  # type: ignore[no-untyped-def]
    from promptkit.project import Project
    from promptkit.tune.base import TuneJob
    from promptkit.tune.trainset import build_trainset

    project = Project(root)
    version = project.library.resolve("review@working")
    suite = project.suite("review")
    trainset = build_trainset(project, version, suite)
    return TuneJob(project, version, suite, trainset, name, root / ".promptkit" / "adapters" / name,
                   options=dict(backend_options or {}), **kw)
