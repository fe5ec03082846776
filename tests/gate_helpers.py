"""Fixtures for the gate tests: a scratch project scored by the fake provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

KEYWORDS = {"positive": ["great"], "negative": ["awful"]}


def fake_project(root: Path, n: int = 200, task: str = "Review: {{ text }}", thresholds: dict | None = None) -> Path:
    """prompts/toy (one published version, v1 = the working copy) and evals/toy.yaml over n examples,
    scored by `fake:toy` with a keyword rule, so every outcome is decided by the example's words."""
    folder = root / "prompts" / "toy"
    folder.mkdir(parents=True)
    write_prompt(root, task)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        word = "great" if label == "positive" else "awful"
        rows.append({"text": f"a {word} place #{i}.", "label": label, "split": "test"})
    data = root / "evals" / "data" / "toy.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    suite = {
        "prompt": "toy",
        "dataset": {"path": "data/toy.jsonl", "fields": {"text": "text"}, "target": "label", "split_field": "split"},
        "split": "test",
        "model": "fake:toy",
        "provider_options": {"keywords": KEYWORDS, "batch_size": 50},
        "metrics": ["accuracy", "f1", "latency", "tokens", "cost", "errors"],
    }
    if thresholds:
        suite["thresholds"] = thresholds
    (root / "evals" / "toy.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return root


def write_prompt(root: Path, task: str) -> None:
    spec = {"description": "toy sentiment", "slots": {"task": task + "\nSentiment:"},
            "labels": ["negative", "positive"], "settings": {"model": "fake:toy", "max_tokens": 3, "stop": ["\n"]}}
    (root / "prompts" / "toy" / "prompt.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """`promptkit --project ROOT ARGS` in process (fast); the result has exit_code, stdout, stderr."""
    from click.testing import CliRunner

    from promptkit.cli import main

    return CliRunner().invoke(main, ["--project", str(root), *args], env=env)
