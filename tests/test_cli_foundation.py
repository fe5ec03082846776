"""The foundation slice through the real CLI: prompt commands, clear errors, and an
end-to-end eval on the embedded model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import run_cli


def assert_clear_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_lists_commands() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("eval", "prompt", "runs"):
        assert command in proc.stdout


def test_prompt_list_new_version_label_and_diff(project: Path) -> None:
    listed = run_cli("prompt", "list", cwd=project)
    assert listed.returncode == 0 and "sentiment" in listed.stdout

    prompt_file = project / "prompts" / "sentiment" / "prompt.yaml"
    data = yaml.safe_load(prompt_file.read_text())
    data["slots"] = {"instruction": "Say whether the review is positive or negative.", **data["slots"]}
    prompt_file.write_text(yaml.safe_dump(data, sort_keys=False))
    published = run_cli("prompt", "new-version", "sentiment", "-m", "add an instruction", cwd=project)
    assert published.returncode == 0, published.stderr
    newest = max(int(p.stem[1:]) for p in (project / "prompts" / "sentiment" / "versions").glob("v*.yaml"))

    diff = run_cli("prompt", "diff", "sentiment@v1", f"sentiment@v{newest}", cwd=project)
    assert diff.returncode == 0, diff.stderr
    assert "instruction" in diff.stdout and "added" in diff.stdout
    assert "+Say whether the review is positive or negative." in diff.stdout

    labelled = run_cli("prompt", "label", f"sentiment@v{newest}", "staging", cwd=project)
    assert labelled.returncode == 0, labelled.stderr
    assert yaml.safe_load((project / "prompts" / "sentiment" / "versions" / "labels.yaml").read_text())["staging"] == f"v{newest}"


def test_hand_edited_version_stops_eval_naming_the_file(project: Path) -> None:
    version_file = project / "prompts" / "sentiment" / "versions" / "v1.yaml"
    version_file.write_text(version_file.read_text().replace("Sentiment:", "Mood:"))
    proc = run_cli("eval", "sentiment@v1", "--limit", "2", "--no-store", cwd=project)
    assert_clear_error(proc, "v1.yaml")


def _break(project: Path, path: str, old: str, new: str) -> None:
    target = project / path
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("path", "old", "new", "needles"),
    [
        ("prompts/sentiment/prompt.yaml", "style: text", "style: [text", ("prompt.yaml:",)),
        ("prompts/sentiment/prompt.yaml", "style: text", "style: text\ncolour: blue", ("prompt.yaml:", "colour")),
        ("prompts/sentiment/prompt.yaml", "{{ text }}", "{{ review_text }}", ("prompt.yaml", "review_text")),
        ("evals/sentiment.yaml", "prompt: sentiment", "prompt: sentiment\nprovider_option: {}", ("sentiment.yaml:",)),
    ],
    ids=["yaml-syntax", "unknown-key", "undefined-variable", "unknown-suite-key"],
)
def test_bad_config_gives_one_clear_line(project: Path, path: str, old: str, new: str,
                                         needles: tuple[str, ...]) -> None:
    _break(project, path, old, new)
    proc = run_cli("eval", "sentiment@working", "--limit", "2", "--no-store", cwd=project)
    assert_clear_error(proc, *needles)


def test_missing_dataset_and_unknown_model(project: Path) -> None:
    missing = run_cli("eval", "prompts/sentiment", "--data", "nope.jsonl", "--no-store", cwd=project)
    assert_clear_error(missing, "nope.jsonl")
    unknown = run_cli("eval", "prompts/sentiment", "--model", "smolm2", "--no-store", cwd=project)
    assert_clear_error(unknown, "smolm2", "smollm2")


@pytest.mark.model
def test_eval_end_to_end_on_the_embedded_model(project: Path) -> None:
    report = project / "r.json"
    proc = run_cli("eval", "prompts/sentiment", "--limit", "8", "--output", str(report), cwd=project)
    assert proc.returncode == 0, proc.stderr
    for column in ("accuracy", "f1_macro", "latency_p50", "latency_p95", "tokens_in"):
        assert column in proc.stdout
    data = json.loads(report.read_text())
    examples = data["examples"]
    assert len(examples) == 8
    for field in ("input", "output", "expected", "correct", "tokens_in", "latency"):
        assert field in examples[0]
    assert sum(e["correct"] for e in examples) >= 5  # the shipped prompt scores ~90% on the shipped data
    assert data["settings"]["prompt_hash"]

    runs = run_cli("runs", "list", cwd=project, env={"COLUMNS": "200"})
    assert runs.returncode == 0 and "sentiment@v1" in runs.stdout


@pytest.mark.model
def test_prompt_show_counts_tokens_per_slot(project: Path) -> None:
    proc = run_cli("prompt", "show", "prompts/sentiment", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "task" in proc.stdout and "tokens" in proc.stdout.lower()
