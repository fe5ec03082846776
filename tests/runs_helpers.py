"""Helpers for the run-store, cache, estimate and compare tests (helper "runs")."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from promptkit.models import ModelRegistry
from promptkit.project import Project

POSITIVE = ["great", "love", "wonderful", "excellent", "perfect"]
NEGATIVE = ["awful", "broke", "terrible", "refund", "worst"]


def write_data(path: Path, n: int) -> Path:
    """n labelled reviews, each distinct, in a JSONL file."""
    lines = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        word = (POSITIVE if label == "positive" else NEGATIVE)[i % 5]
        lines.append(json.dumps({"text": f"Review number {i}: it was {word}.", "label": label}))
    path.write_text("\n".join(lines) + "\n")
    return path


def register(project: Path, name: str, model: str = "gpt-4o-mini", provider: str = "fake", **options: Any) -> str:
    """Register a named model (e.g. a fake with a delay) in the project's models.yaml."""
    ModelRegistry(Project(project).state_dir / "models.yaml").add(name, provider, model, options=options)
    return name


def cli(project: Path, *args: str) -> Result:
    """Run the CLI in-process (fast) on a project folder."""
    from promptkit.cli import main

    return CliRunner().invoke(main, ["--project", str(project), *args], catch_exceptions=False)


def db_rows(path: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(str(path), timeout=30)
    try:
        return list(db.execute(query, args))
    finally:
        db.close()
