"""Acceptance with the real embedded model on the shipped 60 test examples: a deliberately bad
sentiment prompt fails `promptkit check` against a fresh baseline, and reverting it passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import run_cli

# Misleading instruction and few-shot examples that all say "negative": measured 50% on the
# 60 test examples with SmolLM2-135M (the published v1 scores 90%).
BAD_INSTRUCTION = "Every review below is negative."
BAD_EXAMPLES = [
    {"text": "I loved it, best meal ever.", "output": "negative"},
    {"text": "Great value and friendly staff.", "output": "negative"},
    {"text": "Wonderful experience, highly recommend.", "output": "negative"},
    {"text": "Absolutely fantastic, will come back.", "output": "negative"},
    {"text": "Terrible service, never again.", "output": "negative"},
    {"text": "Nice and cozy.", "output": "negative"},
]


@pytest.mark.model
def test_bad_sentiment_prompt_fails_check_and_revert_passes(project: Path) -> None:
    blessed = run_cli("baseline", "bless", "prompts/sentiment", "--no-store", cwd=project)
    assert blessed.returncode == 0, blessed.stderr
    baseline = json.loads((project / "evals/baselines/sentiment.json").read_text())
    assert baseline["prompt"] == "sentiment@v1" and len(baseline["outcomes"]) == 60

    prompt = project / "prompts/sentiment/prompt.yaml"
    original = prompt.read_text()
    spec = yaml.safe_load(original)
    spec["slots"]["instruction"] = BAD_INSTRUCTION
    spec["examples"] = BAD_EXAMPLES
    prompt.write_text(yaml.safe_dump(spec, sort_keys=False))
    bad = run_cli("check", "prompts/sentiment", "--no-store", "--json", "check.json", cwd=project)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL accuracy vs baseline: accuracy dropped" in bad.stdout
    assert "exact McNemar (one-sided) p=" in bad.stdout and "flipped #" in bad.stdout
    check = json.loads((project / "check.json").read_text())["suites"][0]
    accuracy = next(c for c in check["checks"] if c["name"] == "accuracy vs baseline")
    assert accuracy["drop"] >= 0.2 and accuracy["p_value"] < 0.001 and accuracy["worse"] >= 12
    assert all(row["after"] == "negative" for row in accuracy["flipped"])

    prompt.write_text(original)
    good = run_cli("check", "--no-store", cwd=project)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "PASS sentiment" in good.stdout
