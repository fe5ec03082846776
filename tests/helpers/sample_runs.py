"""Eval runs for the metric, report and view tests: built through the real eval loop with the fake provider,
or stored with hostile text (HTML, script) in every field."""

from __future__ import annotations

import json
from pathlib import Path

from promptkit.evaluate import compute_metrics, plan_eval, run_eval
from promptkit.project import Project
from promptkit.providers.factory import open_provider
from promptkit.results import EvalRun, ExampleResult, MetricValue
from promptkit.runs import RunStore
from tests.helpers.projects import copy_project

GENERATION_ROWS = [
    {"question": "What colour is the sky on a clear day?", "answer": "The sky is blue."},
    {"question": "Name the capital of France.", "answer": "Paris is the capital of France."},
    {"question": "How many legs does a spider have?", "answer": "A spider has eight legs."},
    {"question": "<script>alert('x')</script> & friends?", "answer": "Never run untrusted scripts."},
]


def example_result(expected: str | None, output: str, error: str | None = None, **kw: object) -> ExampleResult:
    """A bare ExampleResult for metric tests."""
    fields: dict = {"id": str(kw.pop("id", "x")), "index": 0, "input": kw.pop("input", {"text": "in"}),
                    "expected": expected, "output": output, "prediction": output, "correct": None, "error": error}
    fields.update(kw)
    return ExampleResult(**fields)


def classification_run(tmp_path: Path, fail_every: int = 0) -> EvalRun:
    project = Project(copy_project(tmp_path))
    version = project.library.resolve("sentiment")
    plan = plan_eval(project, version, model="fake:test", split=None)
    options = {"keywords": {"positive": ["great", "love", "wonderful", "good"], "negative": ["bad", "stopped", "worst"]},
               "fail_every": fail_every}
    run = run_eval(plan, open_provider("fake:test", **options))
    for i, r in enumerate(run.results):  # spread latencies and costs so the plots have shape
        r.latency = 0.02 + 0.01 * (i % 7) + 0.002 * i
        r.cost = 1e-6 * (r.tokens_in + r.tokens_out)
    run.metrics = compute_metrics(run.plan, run.results)
    return run


def generation_run(tmp_path: Path) -> EvalRun:
    (tmp_path / "prompts" / "qa").mkdir(parents=True)
    (tmp_path / "prompts" / "qa" / "prompt.yaml").write_text(
        "description: Answer a question.\nstyle: text\nslots:\n  task: |-\n    Question: {{ question }}\n"
        "settings:\n  max_tokens: 40\n")
    (tmp_path / "evals" / "data").mkdir(parents=True)
    (tmp_path / "evals" / "data" / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GENERATION_ROWS))
    (tmp_path / "evals" / "qa.yaml").write_text(
        "prompt: qa\ntask: generation\ndataset:\n  path: data/qa.jsonl\n  fields: {question: question}\n"
        "  target: answer\nmodel: fake:echo\n")
    project = Project(tmp_path)
    plan = plan_eval(project, project.library.resolve("qa"))
    return run_eval(plan, open_provider("fake:echo"))


# Text that must stay text wherever a run is shown.
HOSTILE_OUTPUT = '<script>window.__pwned = 1</script><b>bold</b>'
HOSTILE_INPUT = '<img src=x onerror="window.__pwned = 2">'
HOSTILE_PROMPT = '<i>evil</i>@v1'


def hostile_run(project: Path) -> str:
    """A stored run whose prompt name, input and output carry HTML and script."""
    store = RunStore(project / ".promptkit" / "runs.db")
    try:
        run_id = store.create_run({"prompt": HOSTILE_PROMPT, "prompt_hash": "<h1>x</h1>", "suite": "<u>suite</u>",
                                   "model": "fake:<s>m</s>", "task": "generation", "examples": 2,
                                   "dataset": "/tmp/<b>d</b>.jsonl", "decoding": {"stop": ["</td>"]}})
        results = [ExampleResult(f"e{i}", i, {"text": HOSTILE_INPUT}, "<em>expected</em>", HOSTILE_OUTPUT, HOSTILE_OUTPUT,
                                 False, latency=0.01) for i in range(2)]
        store.add_results(run_id, results)
        store.finish_run(run_id, [MetricValue("exact_match", 0.0, True, 0.0, 0.6, n=2)])
    finally:
        store.close()
    return run_id
