"""Assertions (promptkit/assertions), model-graded ones and pairwise judging (promptkit/judges),
custom metrics and assertion functions named only in YAML, and entry-point plugins."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from promptkit.assertions import AssertionSpec, Context, assertion_types
from promptkit.judges import JudgeError, parse_object
from promptkit.judges.pairwise import sign_test
from promptkit.results import ExampleResult
from tests.helpers.cli import run_cli
from tests.helpers.judge_server import JudgeServer, verdict

ECHO_PROMPT = """description: Echo the input (the fake provider answers with the prompt's last line).
style: text
slots:
  task: "{{ text }}"
settings: {temperature: 0, max_tokens: 64}
"""
ROWS = [
    {"text": '{"answer": "good", "n": 1}', "ref": "good"},
    {"text": '{"answer": "good", "n": 2}', "ref": "good", "assert": [{"type": "contains", "value": '"n": 2',
                                                                       "metric": "row"}]},
    {"text": "a bad answer, sorry", "ref": "good"},
    {"text": "garbled good answer", "ref": "good"},
]


def _check(kind: str, value: Any, output: str, row: dict[str, Any] | None = None, folder: Path = Path("."),
           **extra: Any) -> Any:
    spec = AssertionSpec(type=kind, value=value, **extra)
    check = assertion_types.get(kind)(spec, folder, folder)
    result = ExampleResult("id", 0, {}, None, output, output, None, latency=0.5, cost=0.002)
    return check.check(output, Context(row or {}, result, folder))


@pytest.mark.parametrize(("kind", "value", "output", "passed"), [
    ("contains", "refund", "Our refund policy applies.", True),
    ("contains", ["refund", "policy"], "Our refund rules.", False),
    ("icontains", "REFUND", "our refund policy", True),
    ("contains-any", ["x", "policy"], "our policy", True),
    ("not-contains", ["sorry", "apolog"], "We apologise.", False),
    ("not-icontains", "SORRY", "fine", True),
    ("equals", "yes", "  yes\n", True),
    ("starts-with", "Yes", "No, yes", False),
    ("regex", r"\d{3}-\d{4}", "call 555-1234", True),
    ("not-regex", r"(?i)as an ai", "As an AI model", False),
    ("is-json", None, '```json\n{"a": 1}\n```', True),
    ("is-json", None, "{'a': 1}", False),
    ("length", {"min": 3, "max": 5}, "abcdef", False),
    ("word-count", {"max": 3}, "one two three", True),
    ("sentence-count", {"min": 2}, "One. Two! Three", True),
    ("sentence-count", {"max": 1}, "One. Two.", False),
    ("latency", None, "x", True),
])
def test_builtin_types(kind: str, value: Any, output: str, passed: bool) -> None:
    extra = {"threshold": 1.0} if kind == "latency" else {}
    outcome = _check(kind, value, output, **extra)
    assert outcome.passed is passed, outcome.reason
    assert outcome.reason


def test_row_fields_fill_values_and_cost_limit() -> None:
    assert _check("icontains", "{{ aspect }}", '{"aspect": "Battery"}', {"aspect": "battery"}).passed
    outcome = _check("cost", None, "x", threshold=0.001)
    assert outcome.passed is False and "over the limit" in outcome.reason


def test_json_schema_inline_and_file(tmp_path: Path) -> None:
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
    assert _check("json-schema", schema, '{"a": 1}').passed
    outcome = _check("json-schema", schema, '{"a": "x"}')
    assert outcome.passed is False and outcome.reason.startswith("schema: a:")
    (tmp_path / "s.json").write_text(json.dumps(schema))
    assert _check("json-schema", "s.json", '{"b": 1}', folder=tmp_path).passed is False
    with pytest.raises(ValueError, match="invalid JSON schema"):
        _check("json-schema", {"type": "objekt"}, "{}")


def test_judge_answers_are_parsed_strictly() -> None:
    assert parse_object(' {"pass": true, "score": 1, "reason": "ok"} ', {"pass": bool, "score": (int, float)})
    for bad in ['Sure! {"pass": true, "score": 1}', '{"pass": "yes", "score": 1}', '{"pass": true, "score": true}',
                "[1]", ""]:
        with pytest.raises(JudgeError):
            parse_object(bad, {"pass": bool, "score": (int, float)})


def test_sign_test_is_exact_binomial() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 1024)
    assert sign_test(3, 3) == 1.0
    assert sign_test(8, 2) == pytest.approx(2 * sum(__import__("math").comb(10, i) for i in range(8, 11)) / 1024)


def _project(root: Path, suite_extra: str = "", rows: list[dict[str, Any]] | None = None) -> Path:
    (root / "prompts" / "echo").mkdir(parents=True)
    (root / "prompts" / "echo" / "prompt.yaml").write_text(ECHO_PROMPT)
    (root / "evals" / "data").mkdir(parents=True)
    (root / "evals" / "data" / "echo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows or ROWS))
    (root / "evals" / "echo.yaml").write_text(
        "prompt: echo\ntask: generation\ndataset: {path: data/echo.jsonl, fields: {text: text}, target: ref}\n"
        "model: fake:x\n" + ("" if "metrics:" in suite_extra else "metrics: [exact_match]\n") + suite_extra)
    return root


def test_acceptance_custom_metric_and_python_assertion_from_yaml_only(tmp_path: Path) -> None:
    """Acceptance 1 and 3: a metric class and an assertion function in the project folder, named only
    in the suite YAML; per-assertion pass rates with Wilson intervals and per-example reasons in the
    JSON and HTML reports."""
    project = _project(tmp_path, """metrics: [exact_match, {name: brevity, class: "mymetrics:Brevity"}]
assert:
  - {type: is-json, metric: json}
  - {type: icontains, value: "{{ ref }}"}
  - {type: python, value: "checks.quality:has_n", metric: json}
  - {type: not-contains, value: [sorry], weight: 0}
""")
    (project / "mymetrics.py").write_text(
        "from promptkit.metrics import MeanMetric\n\n"
        "class Brevity(MeanMetric):\n    tasks = ('generation',)\n\n"
        "    def scores(self, results):\n        return [1.0 / (1 + len(r.output.split())) for r in results]\n")
    (project / "checks").mkdir()
    (project / "checks" / "quality.py").write_text(
        "import json\n\ndef has_n(output, row):\n    try:\n        n = json.loads(output).get('n')\n"
        "    except ValueError:\n        return {'pass': False, 'reason': 'no JSON'}\n"
        "    return {'pass': n is not None, 'score': 1.0, 'reason': f'n={n}'}\n")
    result = run_cli("eval", "echo", "--no-store", "-o", "r.json", cwd=project)
    assert result.returncode == 0, result.stderr
    report = json.loads((project / "r.json").read_text())
    metrics = report["metrics"]
    assert metrics["brevity"]["value"] > 0
    assert metrics["assert:json"]["value"] == 0.5 and metrics["assert:json"]["interval"] == "wilson"
    assert metrics["assert:json"]["low"] < 0.5 < metrics["assert:json"]["high"]
    assert metrics["assert:icontains"]["value"] == 0.75  # "a bad answer, sorry" lacks "good"
    assert metrics["assert:row"]["n"] == 1 and metrics["assert:row"]["value"] == 1.0  # the row's own assertion
    assert metrics["assert:not-contains"]["value"] == 0.75
    assert metrics["assertions"]["value"] == 0.5  # weight 0 does not count towards passing
    third = report["examples"][2]["assertions"]
    assert [a["pass"] for a in third] == [False, False, False, False]
    assert third[0]["reason"].startswith("not JSON") and third[2]["reason"] == "no JSON"
    html = run_cli("eval", "echo", "--no-store", "-o", "r.html", cwd=project)
    assert html.returncode == 0, html.stderr
    page = (project / "r.html").read_text()
    assert "<th>assertions</th>" in page and "✗ icontains: does not contain &#x27;good&#x27;" in page


def test_acceptance_entry_points_add_metrics_and_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Acceptance 3: the promptkit.metrics / promptkit.providers entry-point groups, via an importlib.metadata stub."""
    import importlib.metadata as md

    from promptkit.registry import Registry

    fake = {"promptkit.metrics": [md.EntryPoint("plugin_exact", "promptkit.metrics.text:ExactMatch", "promptkit.metrics")],
            "promptkit.providers": [md.EntryPoint("echo", "promptkit.providers.fake:FakeProvider", "promptkit.providers")]}
    monkeypatch.setattr(md, "entry_points", lambda group=None, **_: fake.get(group or "", []))
    metrics: Registry[Any] = Registry("metric", group="promptkit.metrics")
    providers: Registry[Any] = Registry("provider", group="promptkit.providers")
    providers.register("fake", "promptkit.providers.fake:FakeProvider")
    assert "plugin_exact" in metrics and metrics.get("plugin_exact").name == "exact_match"
    assert providers.names() == ["echo", "fake"]
    assert providers.get("echo")("m").complete([__import__("promptkit.providers", fromlist=["Request"]).Request(
        id="1", text="hi")])[0].output == "hi"


def _rubric_judge(prompt: str) -> str:
    output = prompt.split("Output:")[-1]
    if "garbled" in output:
        return "I think this one is fine."  # not a judgment: a judge error
    ok = "good" in output and "bad" not in output
    return verdict(ok, 1.0 if ok else 0.2, "says good" if ok else "does not say good")


def test_acceptance_llm_rubric_against_openai_double(tmp_path: Path) -> None:
    """Acceptance 2: llm-rubric through the openai provider against a local double with canned
    judgments; the unparseable answer is a judge error, not a score; cache and cost accounting apply."""
    with JudgeServer(_rubric_judge) as double:
        project = _project(tmp_path, "judge: graded\nassert:\n  - {type: llm-rubric, value: 'Says good.', metric: rubric}\n")
        (project / ".promptkit").mkdir()
        (project / ".promptkit" / "models.yaml").write_text(
            f"graded: {{provider: openai, model: gpt-4o-mini, options: {{base_url: '{double.url}', api_key: k}}}}\n")
        result = run_cli("eval", "echo", "--no-store", "-o", "r.json", cwd=project)
        assert result.returncode == 0, result.stderr
        report = json.loads((project / "r.json").read_text())
        assert double.requests == 4 and "Rubric:\nSays good." in double.prompts[0]
        rubric = [e["assertions"][0] for e in report["examples"]]
        assert [r["pass"] for r in rubric] == [True, True, False, None]
        assert rubric[3]["judge_error"] and "not one JSON object" in rubric[3]["reason"]
        assert rubric[0]["score"] == 1.0 and rubric[2]["score"] == 0.2 and rubric[0]["judge_cost"] > 0
        metrics = report["metrics"]
        assert metrics["assert:rubric"]["n"] == 3 and metrics["assert:rubric"]["value"] == pytest.approx(2 / 3)
        assert metrics["judge_errors"]["value"] == 1
        again = run_cli("eval", "echo", "--no-store", "-o", "r.json", cwd=project)  # judgments come from the cache
        assert again.returncode == 0 and double.requests == 4
        assert json.loads((project / "r.json").read_text())["metrics"]["judge_errors"]["value"] == 1


def test_project_prompt_overrides_the_shipped_judge_prompt(tmp_path: Path) -> None:
    with JudgeServer(_rubric_judge) as double:
        project = _project(tmp_path, "judge: graded\nassert:\n  - {type: llm-rubric, value: 'Says good.'}\n")
        (project / "prompts" / "llm-rubric").mkdir()
        (project / "prompts" / "llm-rubric" / "prompt.yaml").write_text(
            "style: text\nslots:\n  task: 'MY JUDGE. Output: {{ output }}'\n")
        (project / ".promptkit").mkdir()
        (project / ".promptkit" / "models.yaml").write_text(
            f"graded: {{provider: openai, model: m, options: {{base_url: '{double.url}', api_key: k}}}}\n")
        result = run_cli("eval", "echo", "--no-store", "--no-cache", cwd=project)
        assert result.returncode == 0, result.stderr
        assert all(p.startswith("MY JUDGE.") for p in double.prompts)


def _pairwise_judge(prompt: str) -> str:
    first = prompt.split("Output A:")[1].split("Output B:")[0]
    second = prompt.split("Output B:")[1]
    if "garbled" in first + second:
        return "A, obviously"
    if "v2" in first and "v2" not in second:
        return json.dumps({"reason": "mentions v2", "winner": "A"})
    if "v2" in second and "v2" not in first:
        return json.dumps({"reason": "mentions v2", "winner": "B"})
    return json.dumps({"reason": "position bias", "winner": "A"})


def test_acceptance_pairwise_against_openai_double(tmp_path: Path) -> None:
    """Acceptance 2: pairwise judging in both orders (position bias cancels into ties), a sign test,
    judge errors counted apart, and a preference file of {prompt, chosen, rejected}."""
    rows = [{"text": f"answer {i}", "ref": "x"} for i in range(6)] + [{"text": "garbled", "ref": "x"}]
    with JudgeServer(_pairwise_judge) as double:
        project = _project(tmp_path, rows=rows)
        (project / "prompts" / "echo2").mkdir()
        (project / "prompts" / "echo2" / "prompt.yaml").write_text(ECHO_PROMPT.replace('"{{ text }}"', '"{{ text }} v2"'))
        result = run_cli("eval", "echo", "echo2", "--suite", "echo", "--no-store", "-o", "cmp.json",
                         "--judge", "openai:judge-model", cwd=project, env={"OPENAI_BASE_URL": double.url,
                                                                            "OPENAI_API_KEY": "k"})
        assert result.returncode == 0, result.stderr
        assert double.requests == 14  # 7 examples x both orders
        pairwise = json.loads((project / "cmp.json").read_text())["pairwise"]
        assert (pairwise["a_wins"], pairwise["b_wins"], pairwise["ties"], pairwise["judge_errors"]) == (0, 6, 0, 1)
        assert pairwise["sign_test_p"] == pytest.approx(2 / 64)
        lines = [json.loads(x) for x in (project / pairwise["preferences"]).read_text().splitlines()]
        assert len(lines) == 6 and lines[0]["chosen"] == "answer 0 v2" and lines[0]["rejected"] == "answer 0"
        assert lines[0]["prompt"] == "answer 0"
        assert re.search(r"sign test p=0\.0312", result.stdout)


def test_pairwise_position_bias_becomes_ties(tmp_path: Path) -> None:
    with JudgeServer(lambda prompt: json.dumps({"reason": "first", "winner": "A"})) as double:
        project = _project(tmp_path)
        (project / "prompts" / "echo2").mkdir()
        (project / "prompts" / "echo2" / "prompt.yaml").write_text(ECHO_PROMPT.replace('"{{ text }}"', '"{{ text }}!"'))
        result = run_cli("eval", "echo", "echo2", "--suite", "echo", "--no-store", "--no-cache", "-o", "c.json",
                         "--judge", "openai:j", "--preferences", "prefs.jsonl", cwd=project,
                         env={"OPENAI_BASE_URL": double.url, "OPENAI_API_KEY": "k"})
        assert result.returncode == 0, result.stderr
        pairwise = json.loads((project / "c.json").read_text())["pairwise"]
        assert pairwise["ties"] == 4 and pairwise["sign_test_p"] == 1.0
        assert (project / "prefs.jsonl").read_text() == ""


def test_gate_compares_assertion_pass_rates(tmp_path: Path) -> None:
    """Acceptance 1: `check` stores assertion outcomes per example in the baseline and fails a significant drop."""
    rows = [{"text": f"item {i} is good", "ref": "x"} for i in range(30)]
    project = _project(tmp_path, "assert:\n  - {type: icontains, value: good, metric: says_good}\n", rows=rows)
    assert run_cli("prompt", "new-version", "echo", "-m", "v1", cwd=project).returncode == 0
    blessed = run_cli("baseline", "bless", "echo", cwd=project)
    assert blessed.returncode == 0, blessed.stderr
    baseline = json.loads((project / "evals" / "baselines" / "echo.json").read_text())
    assert baseline["metrics"]["assert:says_good"] == 1
    assert all(o["scores"]["assert:says_good"] == 1 for o in baseline["outcomes"].values())
    assert run_cli("check", "--no-store", cwd=project).returncode == 0
    changed = ECHO_PROMPT.replace('"{{ text }}"', '"{{ text | replace(\'good\', \'ok\') }}"')
    (project / "prompts" / "echo" / "prompt.yaml").write_text(changed)
    result = run_cli("check", "--no-store", cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "assert:says_good" in result.stdout


@pytest.mark.model
def test_acceptance_judges_against_promptkit_serve(tmp_path: Path, embedded_provider: Any) -> None:
    """Acceptance 2: llm-rubric and pairwise judging end to end with `promptkit serve` (the embedded
    model) as the judge, through the openai provider: every judgment is a score or a judge error."""
    from tests.helpers.serving import serving

    _ = embedded_provider.hf_model  # converts the GGUF once into the session cache the server reuses
    with serving("--max-tokens", "64", key="judge-key") as served:
        url = served.url
        rows = [{"text": t, "ref": "x"} for t in ("The soup was cold.", "Great staff, lovely room.", "It broke.")]
        project = _project(tmp_path, "judge: served\nassert:\n  - {type: llm-rubric, value: 'Names a feeling.', "
                                     "metric: rubric}\n", rows=rows)
        (project / ".promptkit").mkdir()
        (project / ".promptkit" / "models.yaml").write_text(
            f"served: {{provider: openai, model: smollm2, options: {{base_url: '{url}', api_key: judge-key}}}}\n")
        result = run_cli("eval", "echo", "--no-store", "-o", "r.json", cwd=project, timeout=300)
        assert result.returncode == 0, result.stderr
        report = json.loads((project / "r.json").read_text())
        outcomes = [e["assertions"][0] for e in report["examples"]]
        assert all((o["pass"] is None) == bool(o.get("judge_error")) for o in outcomes)
        assert all(o["reason"] for o in outcomes)
        judged = sum(o["pass"] is not None for o in outcomes)
        assert report["metrics"]["judge_errors"]["value"] == len(outcomes) - judged

        (project / "prompts" / "echo2").mkdir()
        (project / "prompts" / "echo2" / "prompt.yaml").write_text(ECHO_PROMPT.replace('"{{ text }}"', '"Note: {{ text }}"'))
        result = run_cli("eval", "echo", "echo2", "--suite", "echo", "--no-store", "-o", "c.json", "--judge", "served",
                         cwd=project, timeout=300)
        assert result.returncode == 0, result.stderr
        pairwise = json.loads((project / "c.json").read_text())["pairwise"]
        assert pairwise["a_wins"] + pairwise["b_wins"] + pairwise["ties"] + pairwise["judge_errors"] == 3
        assert 0 <= pairwise["sign_test_p"] <= 1


def test_factuality_verdicts_and_judge_requests(tmp_path: Path) -> None:
    from promptkit.judges import Judge
    from promptkit.models import ModelRef
    from promptkit.project import Project

    spec = AssertionSpec(type="factuality")
    check = assertion_types.get("factuality")(spec, tmp_path, tmp_path)
    assert check.parse('{"verdict": "C", "reason": "same"}').passed is True
    assert check.parse('{"verdict": "d", "reason": "contradicts"}').passed is False
    with pytest.raises(JudgeError):
        check.parse('{"verdict": "F", "reason": "?"}')
    judge = Judge(ModelRef("fake:j", "fake", "j"), Project(tmp_path))
    result = ExampleResult("id", 0, {"text": "Who wrote it?"}, "Ann wrote it.", "Bob", "Bob", None)
    request = check.judge_request("Bob", Context({}, result, tmp_path), judge)
    prompt = "\n".join(m["content"] for m in request.messages or [])
    assert "Reference:\nAnn wrote it." in prompt and "Submission:\nBob" in prompt and "Question:\nWho wrote it?" in prompt
    answers = judge.ask([request])
    assert answers[0].error is None and judge.calls == 1
