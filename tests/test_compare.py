"""Comparisons: several prompt versions and/or models side by side, with deltas and changed examples."""

from __future__ import annotations

import json
from pathlib import Path

from promptkit.compare import Side, compare
from promptkit.results import ExampleResult
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import write_reviews


def _result(example_id: str, prediction: str, expected: str = "positive", error: str | None = None) -> ExampleResult:
    return ExampleResult(id=example_id, index=0, input={"text": example_id}, expected=expected, output=prediction,
                         prediction=prediction, correct=None if error else prediction == expected, error=error)


def test_deltas_and_changed_examples() -> None:
    base = Side("v1", {"accuracy": {"value": 0.5, "higher_is_better": True},
                       "latency_p50": {"value": 0.2, "higher_is_better": False, "unit": "s"}},
                [_result("a", "positive"), _result("b", "negative"), _result("c", "positive")])
    new = Side("v2", {"accuracy": {"value": 0.75, "higher_is_better": True},
                      "latency_p50": {"value": 0.3, "higher_is_better": False, "unit": "s"},
                      "bleu": {"value": 0.1, "higher_is_better": True}},
               [_result("a", "positive"), _result("b", "positive"), _result("c", "x", error="boom"), _result("d", "n")])
    comparison = compare([base, new])
    rows = {m.name: m for m in comparison.metrics}
    assert rows["accuracy"].deltas[1] == 0.25 and rows["accuracy"].better(1) is True
    assert rows["latency_p50"].better(1) is False
    assert rows["bleu"].values == [None, 0.1] and rows["bleu"].deltas == [None, None]
    assert comparison.common == 3  # "d" is only in one side
    assert [c.id for c in comparison.changed] == ["b", "c"]
    assert comparison.changed[0].outcomes == ["negative (wrong)", "positive (right)"]
    assert comparison.changed[1].outcomes[1] == "error"
    json.dumps(comparison.to_dict())


def test_eval_two_published_versions_side_by_side(project: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(project)  # "prompts/sentiment@v2" is a path: relative to the working directory
    working = project / "prompts" / "sentiment" / "prompt.yaml"
    working.write_text(working.read_text().replace("Review: {{ text }}", "Customer review: {{ text }}"))
    published = run_cli_in_process(project, "prompt", "new-version", "sentiment", "-m", "reworded")
    assert "published sentiment@v" in published.output, published.output
    newest = published.output.split("published sentiment@")[1].split()[0]
    data = str(write_reviews(tmp_path / "d.jsonl", 40))
    out = run_cli_in_process(project, "eval", "prompts/sentiment@v1", f"prompts/sentiment@{newest}", "-m", "fake:m",
                             "--data", data, "-o", str(tmp_path / "cmp.json"))
    assert out.exit_code == 0, out.output
    assert "comparison (deltas against the first column)" in out.output
    assert "sentiment@v1" in out.output and f"sentiment@{newest}" in out.output and "accuracy" in out.output
    report = json.loads((tmp_path / "cmp.json").read_text())
    assert [s["name"] for s in report["sides"]] == ["sentiment@v1", f"sentiment@{newest}"]
    assert report["common_examples"] == 40
    # The fake model's answers depend on the whole prompt, so rewording changes some outcomes.
    assert report["changed"] and f"{len(report['changed'])} of 40 examples changed outcome" in out.output
    accuracy = next(m for m in report["metrics"] if m["name"] == "accuracy")
    assert accuracy["deltas"][1] == accuracy["values"][1] - accuracy["values"][0]


def test_eval_several_models_and_runs_compare(project: Path, tmp_path: Path) -> None:
    data = str(write_reviews(tmp_path / "d.jsonl", 30))
    out = run_cli_in_process(project, "eval", "sentiment", "-m", "fake:one", "-m", "fake:two", "--data", data)
    assert out.exit_code == 0, out.output
    assert "fake:one" in out.output and "fake:two" in out.output and "changed outcome" in out.output
    from promptkit.runs import RunStore

    ids = [r.id for r in RunStore(project / ".promptkit" / "runs.db").runs()]
    again = run_cli_in_process(project, "runs", "compare", ids[1], ids[0], "-o", str(tmp_path / "c.json"))
    assert again.exit_code == 0, again.output
    sides = json.loads((tmp_path / "c.json").read_text())["sides"]
    assert [s["run_id"] for s in sides] == [ids[1], ids[0]]
