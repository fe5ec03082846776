"""promptkit lint: each problem reported with file and line, exit 1; the repo's own prompts are clean."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from tests.helpers.cli import run_cli, run_cli_in_process
from tests.helpers.projects import ROOT


def _prompt(root: Path, name: str, spec: dict) -> Path:
    folder = root / "prompts" / name
    folder.mkdir(parents=True)
    path = folder / "prompt.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _suite(root: Path, name: str, prompt: str, fields: dict | None, model: str = "fake:x") -> Path:
    dataset: dict = {"path": "data/reviews.jsonl", "target": "label"}
    if fields is not None:
        dataset["fields"] = fields
    path = root / "evals" / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"prompt": prompt, "dataset": dataset, "model": model}, sort_keys=False), encoding="utf-8")
    return path


def broken_project(root: Path) -> Path:
    data = root / "evals" / "data" / "reviews.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("".join(json.dumps({"text": f"review {i}", "label": "positive"}) + "\n" for i in range(5)))
    labels = ["negative", "positive"]
    undefined = _prompt(root, "undefined", {})
    undefined.write_text("slots:\n  instruction: Classify.\n  task: |-\n    Review: {{ text }}\n    Stars: {{ stars }}\n"
                         "labels: [negative, positive]\n")
    _suite(root, "undefined", "undefined", {"text": "text"})
    _prompt(root, "missing", {"slots": {"task": "Review: {{ body }}"}, "labels": labels})
    _suite(root, "missing", "missing", {"body": "review_body"})
    _prompt(root, "labels", {"slots": {"task": "Review: {{ text }}"}, "labels": ["very good", "very bad"]})
    _suite(root, "labels", "labels", None)
    _prompt(root, "long", {"slots": {"context": "word " * 40000, "task": "Review: {{ text }}"}, "labels": labels})
    _suite(root, "long", "long", None, model="smollm2")
    _prompt(root, "gen", {"slots": {"task": "Summarise: {{ text }}"}, "settings": {"max_tokens": 200}})
    _suite(root, "gen", "gen", None)
    return root


def test_lint_reports_each_problem_with_file_and_line(tmp_path: Path) -> None:
    root = broken_project(tmp_path)
    result = run_cli_in_process(root, "lint", "--json", str(root / "lint.json"))
    assert result.exit_code == 1, result.output
    findings = json.loads((root / "lint.json").read_text())
    by_code: dict[str, list[dict]] = {}
    for f in findings:
        by_code.setdefault(f["code"], []).append(f)
    undefined = by_code["undefined-variable"][0]
    assert "'stars'" in undefined["message"]
    assert undefined["where"] == f"{root / 'prompts/undefined/prompt.yaml'}:5"  # the template line using it
    missing = by_code["missing-field"][0]
    assert "'review_body'" in missing["message"] and "line 1" in missing["message"]
    assert missing["where"].startswith(str(root / "evals/missing.yaml") + ":")
    shared = by_code["label-prefix"][0]
    assert "'very good' and 'very bad'" in shared["message"]
    assert shared["where"].startswith(str(root / "prompts/labels/prompt.yaml") + ":")
    window = by_code["context-window"][0]
    assert "holds 8192" in window["message"] and window["where"].startswith(str(root / "prompts/long/prompt.yaml") + ":")
    assert by_code["no-stop"][0]["where"].startswith(str(root / "prompts/gen/prompt.yaml"))
    for line in result.stdout.splitlines():
        assert line.split(": ")[0].count(":") == 1  # file:line on every finding


def test_lint_reports_schema_errors_and_unknown_prompts(tmp_path: Path) -> None:
    root = broken_project(tmp_path)
    (root / "prompts" / "undefined" / "prompt.yaml").write_text("slots:\n  task: x\nlables: [a, b]\n")
    _suite(root, "orphan", "nosuch", None)
    result = run_cli_in_process(root, "lint")
    assert result.exit_code == 1
    assert f"{root / 'prompts/undefined/prompt.yaml'}:3: schema: unknown key 'lables'" in result.stdout
    assert f"{root / 'evals/orphan.yaml'}:1: unknown-prompt: unknown prompt 'nosuch'" in result.stdout


def test_the_repo_is_lint_clean_in_seconds() -> None:
    start = time.perf_counter()
    result = run_cli("lint", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lint: clean" in result.stderr
    assert time.perf_counter() - start < 30
