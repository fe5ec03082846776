"""Hostile inputs to assertions and judges: outputs that made a check backtrack for minutes, suite and
dataset entries that crashed (exit 3) or were silently read as something else, schemas that fetched
URLs, templates without budgets, judge answers and user functions whose values were coerced."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from promptkit.assertions import AssertionSpec, Context, assertion_metrics, assertion_types
from promptkit.judges import JudgeError, parse_object
from promptkit.results import ExampleResult
from tests.helpers.cli import run_cli_in_process
from tests.helpers.judge_server import JudgeServer
from tests.test_assertions import ECHO_PROMPT, _project


def _make(kind: str, value: Any = None, folder: Path = Path("."), **extra: Any) -> Any:
    return assertion_types.get(kind)(AssertionSpec(type=kind, value=value, **extra), folder, folder)


def _check(kind: str, value: Any, output: str, row: dict[str, Any] | None = None, **extra: Any) -> Any:
    result = ExampleResult("id", 0, {}, None, output, output, None, latency=0.5, cost=0.002)
    return _make(kind, value, **extra).check(output, Context(row or {}, result, Path(".")))


def _eval(root: Path, suite_extra: str = "", rows: list[dict[str, Any]] | None = None, *args: str) -> Any:
    project = _project(root, suite_extra, rows) if not (root / "evals").exists() else root
    return run_cli_in_process(project, "eval", "echo", "--no-store", "--no-cache", *args)


def test_a_fenced_run_of_whitespace_is_checked_at_once() -> None:
    """The ```json fence was stripped with a regex that backtracked cubically: an output (or a judge
    answer) of ``` and 2,000 spaces took 11 s, a few thousand more took hours, hanging the run."""
    hostile = "```" + " " * 2000 + "x"
    start = time.monotonic()
    assert _check("is-json", None, hostile).passed is False
    with pytest.raises(JudgeError):
        parse_object(hostile, {"pass": bool})
    assert time.monotonic() - start < 1.0
    assert _check("is-json", None, '```json\n {"a": 1} \n```').passed  # a fence still unwraps


def test_a_backtracking_regex_fails_that_output_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's regex (or a schema's `pattern`) with catastrophic backtracking ran with no bound on a
    long output: the run hung. Now each search has a timeout and the output fails with the reason."""
    import promptkit.assertions.builtin as builtin

    monkeypatch.setattr(builtin, "REGEX_SECONDS", 0.2)
    output = "a" * 60 + "!"
    start = time.monotonic()
    outcome = _check("regex", r"(a|aa)+$", output)
    assert outcome.passed is False and "catastrophic backtracking" in outcome.reason
    assert _check("not-regex", r"(a|aa)+$", output).passed is False
    schema = {"type": "string", "pattern": r"(a|aa)+$"}
    outcome = _check("json-schema", schema, json.dumps(output))
    assert outcome.passed is False and "catastrophic backtracking" in outcome.reason
    assert time.monotonic() - start < 10
    assert _check("regex", r"\d{3}", "call 555").passed  # an ordinary pattern is unaffected


@pytest.mark.parametrize(("entry", "files", "message"), [
    ("{type: regex, value: 'a{4294967296}'}", {}, "bad regular expression"),  # OverflowError
    ("{type: regex, value: '" + "(" * 1500 + ")" * 1500 + "'}", {}, "bad regular expression"),  # RecursionError
    ("{type: json-schema, value: {$schema: [1]}}", {}, "'$schema' must be the URI"),  # TypeError
    ("{type: json-schema, value: {$schema: 5}}", {}, "'$schema' must be the URI"),  # AttributeError
    ("{type: json-schema, value: deep.json}", {"evals/deep.json": "[" * 100_000 + "]" * 100_000}, "nested too deeply"),
])
def test_hostile_patterns_and_schemas_are_exit_2(tmp_path: Path, entry: str, files: dict[str, str],
                                                   message: str) -> None:
    """Each of these escaped as an internal error (exit 3) instead of naming the suite line."""
    project = _project(tmp_path, f"assert:\n  - {entry}\n")
    for name, text in files.items():
        (project / name).write_text(text)
    result = _eval(project)
    assert result.exit_code == 2, result.output
    assert "echo.yaml:7" in result.stderr and message in result.stderr


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - one test's server

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'{"type": "object"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_schema_ref_to_a_url_is_refused_not_fetched(tmp_path: Path) -> None:
    """jsonschema fetched a `$ref` URL (or file:// path) on every example: a dataset row's schema could make
    promptkit call any server or read local files. Now such a $ref is exit 2, before any request."""
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/schema.json"
        rows = [{"text": "{}", "ref": "x", "assert": [{"type": "json-schema", "value": {"$ref": url}}]}]
        result = _eval(tmp_path, "", rows)
        assert result.exit_code == 2, result.output
        assert "echo.jsonl:1" in result.stderr and "not fetched" in result.stderr
        assert _Recorder.hits == []
    finally:
        server.shutdown()
        server.server_close()
    ok = {"$id": "https://x.test/s", "$defs": {"n": {"type": "integer"}}, "$ref": "https://x.test/s#/$defs/n"}
    assert _check("json-schema", ok, "1").passed  # a $ref into the schema itself still resolves
    loop = _check("json-schema", {"$ref": "#"}, "{}")
    assert loop.passed is False and "loop" in loop.reason


def test_a_template_field_no_row_has_is_exit_2_before_any_model_call(tmp_path: Path) -> None:
    """An llm-rubric naming a missing field crashed after the model calls (exit 3); a contains one
    silently failed every example. Both are now exit 2 naming the suite line and the row."""
    with JudgeServer(lambda prompt: "{}") as double:
        project = _project(tmp_path, "judge: graded\nassert:\n  - {type: llm-rubric, value: 'Mentions {{ topic }}'}\n")
        (project / ".promptkit").mkdir()
        (project / ".promptkit" / "models.yaml").write_text(
            f"graded: {{provider: openai, model: m, options: {{base_url: '{double.url}', api_key: k}}}}\n")
        result = _eval(project)
        assert result.exit_code == 2, result.output
        assert "echo.yaml:8" in result.stderr and "echo.jsonl:1" in result.stderr and "'topic' is undefined" in result.stderr
        assert double.requests == 0
    (project / "evals" / "echo.yaml").write_text((project / "evals" / "echo.yaml").read_text().replace(
        "{type: llm-rubric, value: 'Mentions {{ topic }}'}", "{type: contains, value: '{{ topic }}'}"))
    result = _eval(project)
    assert result.exit_code == 2 and "'topic' is undefined" in result.stderr


def test_a_broken_judge_prompt_override_is_exit_2_before_any_model_call(tmp_path: Path) -> None:
    """A project's override of the judge prompt that fails to render stopped the run only after every
    model call had been made and paid for."""
    with JudgeServer(lambda prompt: "{}") as double:
        project = _project(tmp_path, "judge: graded\nassert:\n  - {type: llm-rubric, value: 'Says good.'}\n")
        (project / "prompts" / "llm-rubric").mkdir()
        (project / "prompts" / "llm-rubric" / "prompt.yaml").write_text(
            "style: text\nslots:\n  task: 'Judge {{ output }} by {{ criteria }}'\n")
        (project / ".promptkit").mkdir()
        (project / ".promptkit" / "models.yaml").write_text(
            f"graded: {{provider: openai, model: m, options: {{base_url: '{double.url}', api_key: k}}}}\n")
        result = _eval(project, "", None, "--model", "graded")  # the double answers the eval's calls too
        assert result.exit_code == 2, result.output
        assert "llm-rubric" in result.stderr and "criteria" in result.stderr
        assert double.requests == 0


def test_assertion_templates_render_within_the_prompt_sandbox_budgets() -> None:
    """Assertion values (a dataset row's too) rendered in a bare sandbox: `{{ 'a' * 10**9 }}` built a
    gigabyte, nested loops ran for ever. Now the prompts' budgets apply."""
    from jinja2.exceptions import SecurityError

    from promptkit.assertions.builtin import render

    with pytest.raises(SecurityError):
        render("{{ 'a' * 10**7 }}", {})
    assert render("{{ aspect }}", {"aspect": "battery"}) == "battery"


@pytest.mark.parametrize(("kind", "value", "threshold"), [
    ("length", {"max": math.nan}, None),  # passed every output
    ("word-count", {"min": math.nan}, None),
    ("sentence-count", {"max": -1}, None),  # failed every output
    ("latency", math.nan, None),  # via value: failed every output
    ("cost", math.inf, None),
    ("llm-rubric", "Polite.", 70.0),  # a percentage: failed every output
    ("contains", "x", 0.5),  # ignored
])
def test_bounds_and_thresholds_that_decide_nothing_are_refused(kind: str, value: Any, threshold: float | None) -> None:
    """NaN, infinite or negative bounds, an llm-rubric threshold outside 0-1 and a threshold on a type
    that ignores it were accepted, making the assertion pass or fail every output whatever it was."""
    from promptkit.assertions import build
    from promptkit.errors import ConfigError

    entry: dict[str, Any] = {"type": kind, "value": value}
    if threshold is not None:
        entry["threshold"] = threshold
    with pytest.raises(ConfigError):
        build([entry], Path("."), Path("."), lambda i: "suite.yaml:3")


def test_yes_and_no_are_not_numbers_in_an_assertion(tmp_path: Path) -> None:
    """`weight: yes` / `threshold: no` were read as 1.0 / 0.0 (an llm-rubric passing everything)."""
    result = _eval(tmp_path, "assert:\n  - {type: python, value: 'checks:f', threshold: no}\n")
    assert result.exit_code == 2 and "echo.yaml:7" in result.stderr and "threshold" in result.stderr


def test_a_misspelt_key_gets_a_suggestion(tmp_path: Path) -> None:
    """An unknown key in an assert entry said '(none are defined)': the suite's `assert` alias was not found."""
    result = _eval(tmp_path, "assert:\n  - {type: contains, vlaue: good}\n")
    assert result.exit_code == 2 and "did you mean 'value'" in result.stderr


def test_python_results_are_not_coerced() -> None:
    """A function returning {'pass': 'false'} passed (a truthy string); a NaN or infinite score was
    stored and made assert_score NaN (an invalid JSON report)."""
    from promptkit.assertions.builtin import Python

    check = Python.__new__(Python)  # outcome() alone: no module to import
    check.spec = AssertionSpec(type="python", value="checks:f")
    assert check.outcome({"pass": "false", "reason": "r"}).passed is False
    for bad in (math.nan, math.inf, 10**400, {"score": math.nan}, {"pass": True, "score": "high"}):
        outcome = check.outcome(bad)
        assert outcome.passed is False and outcome.score == 0.0, bad
    result = ExampleResult("id", 0, {}, None, "o", "o", None)
    result.assertions = [{"metric": "python", "weight": 1.0, **{"pass": False, "score": check.outcome(math.nan).score}}]
    score = next(m for m in assertion_metrics([result]) if m.name == "assert_score")
    assert math.isfinite(score.value)


def test_is_json_is_strict() -> None:
    """NaN, Infinity and a key written twice passed is-json (and json-schema), though no JSON parser
    outside Python reads them the same way."""
    for output in ("NaN", '{"a": Infinity}', '{"a": 1, "a": 2}'):
        assert _check("is-json", None, output).passed is False, output
    assert _check("json-schema", {"type": "number"}, "NaN").passed is False


def test_judge_answers_with_a_repeated_key_or_a_huge_number_are_judge_errors() -> None:
    """`{"pass": false, ..., "pass": true}` was read as a pass (the last key wins); a 400-digit score
    crashed the run with an OverflowError instead of being a judge error."""
    with pytest.raises(JudgeError):
        parse_object('{"pass": false, "score": 0, "reason": "r", "pass": true}', {"pass": bool})
    rubric = _make("llm-rubric", "Polite.")
    with pytest.raises(JudgeError):
        rubric.parse('{"pass": true, "score": 1' + "0" * 400 + ', "reason": "r"}')


def test_canonically_equal_text_compares_equal() -> None:
    """'café' written with a combining accent did not equal or contain 'café' in one code point, and
    icontains 'STRASSE' missed 'straße'."""
    assert _check("equals", "café", "cafe\u0301").passed
    assert _check("contains", "café", "un cafe\u0301 noir").passed
    assert _check("icontains", "STRASSE", "die straße").passed
    assert _check("contains", "cafe", "café").passed is False  # look-alikes still differ


def test_an_unwritable_default_preference_file_is_exit_2_before_any_run(tmp_path: Path) -> None:
    """When .promptkit/preferences was a file, the default preference path failed only after both runs
    and the judging (exit 3, the comparison lost); now it is checked first."""
    with JudgeServer(lambda prompt: json.dumps({"reason": "r", "winner": "A"})) as double:
        project = _project(tmp_path)
        (project / "prompts" / "echo2").mkdir()
        (project / "prompts" / "echo2" / "prompt.yaml").write_text(ECHO_PROMPT.replace('"{{ text }}"', '"{{ text }}!"'))
        (project / ".promptkit").mkdir()
        (project / ".promptkit" / "preferences").write_text("not a folder")
        result = run_cli_in_process(project, "eval", "echo", "echo2", "--suite", "echo", "--no-store", "--no-cache",
                                    "--judge", "openai:j", env={"OPENAI_BASE_URL": double.url, "OPENAI_API_KEY": "k"})
        assert result.exit_code == 2, result.output
        assert "preferences" in result.stderr and double.requests == 0
