"""Reports and run output against hostile content and careless paths: rich markup, terminal escape
sequences and bidi controls in model outputs, inputs and names; JUnit XML and Markdown fed control
characters, pipes, newlines and HTML; NaN/Infinity in a stored run; report paths that are read-only,
too long, unwritable or the very dataset being scored."""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from promptkit.gate.decide import MetricCheck
from promptkit.gate.results import CheckReport, SuiteCheck
from promptkit.report import write_report
from promptkit.report.junit import junit_xml
from promptkit.report.markdown import markdown_summary
from promptkit.results import ExampleResult, MetricValue
from promptkit.runs import RunStore
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import write_jsonl
from tests.helpers.sample_runs import classification_run

# Rich markup (a closing tag with no opening one raises; a link tag makes a link), an OSC 52 clipboard write,
# a screen clear and a right-to-left override.
MARKUP = "[/b] [link=http://evil.example]click[/link]"
ESCAPES = "\x1b]52;c;ZXZpbA==\x07 \x1b[2J \u202e"
HOSTILE = f"{MARKUP} {ESCAPES}"


def hostile_reviews(path: Path, n: int = 12) -> Path:
    return write_jsonl(path, [{"text": f"review {i} {HOSTILE}", "label": "positive" if i % 2 else "negative"}
                              for i in range(n)])


def stored_runs(db: Path, text: str = HOSTILE, latency: float = 0.01, cost: float = 0.0) -> list[str]:
    """Two finished runs whose prompt, model, ids, inputs, outputs and metric name carry `text`."""
    store = RunStore(db)
    try:
        ids = []
        for side, output in (("a", "positive"), ("b", text)):
            run_id = store.create_run({"prompt": f"p{side}@v1 {text}", "model": f"fake:{text}", "task": "generation",
                                       "examples": 2, "suite": text})
            store.add_results(run_id, [ExampleResult(f"e{i}{text}", i, {"text": text}, "positive", output, output,
                                                     output == "positive", latency=latency * (i + 1), cost=cost,
                                                     scores={"positive": -math.inf, "negative": -0.5})
                                       for i in range(2)])
            store.finish_run(run_id, [MetricValue(f"assert:{text}", 0.5, True, 0.1, 0.9, n=2)])
            ids.append(run_id)
        return ids
    finally:
        store.close()


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles 400 columns wide, so table cells do not wrap the text the tests look for."""
    from promptkit.cli import common

    for console in (common.console, common.err_console):
        monkeypatch.setattr(console, "_width", 400)


def shows_no_escape(text: str) -> None:
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b]52" in text  # shown, not obeyed


def test_run_text_is_never_read_as_rich_markup_nor_sent_as_escapes(project: Path, tmp_path: Path, wide: None) -> None:
    """An input or output holding `[/b]` crashed the comparison table with rich's MarkupError (exit 3, the paid
    runs' -o cmp.json never written), and a model spec like `fake:[/x]` crashed the run's header line; escape
    sequences in them (OSC 52 clipboard writes, screen clears) and bidi overrides reached the terminal."""
    data = str(hostile_reviews(tmp_path / "d.jsonl"))
    result = run_cli_in_process(project, "eval", "sentiment", "sentiment-chat", "-m", "fake:a", "--data", data,
                                "--no-store", "--no-cache", "-o", str(tmp_path / "cmp.json"))
    assert result.exit_code == 0, result.output
    assert "examples changed outcome" in result.output and MARKUP in result.output
    shows_no_escape(result.output)
    assert json.loads((tmp_path / "cmp.json").read_text())["changed"]
    spec = run_cli_in_process(project, "eval", "sentiment", "-m", f"fake:[/x]{ESCAPES}", "--limit", "2",
                              "--no-store", "--no-cache")
    assert spec.exit_code == 0, spec.output
    assert "fake:[/x]" in spec.output and "\x1b" not in spec.output


def test_stored_run_text_is_shown_safely_by_runs_list_show_and_compare(project: Path, wide: None) -> None:
    """`runs list`, `runs show` and `runs compare` put the stored prompt, model, ids, metric names and outputs in
    rich tables and markup lines: `[/b]` in them was an internal error (exit 3), escape sequences went out raw."""
    a, b = stored_runs(project / ".promptkit" / "runs.db")
    for args in (("list",), ("show", a), ("compare", a, b)):
        result = run_cli_in_process(project, "runs", *args)
        assert result.exit_code == 0, (args, result.output)
        assert MARKUP in result.output
        shows_no_escape(result.output)


def hostile_check() -> CheckReport:
    row = {"id": HOSTILE, "index": 3, "input": f"in | put\n| {HOSTILE}", "expected": "a|b\nc", "before": "</details>",
           "after": f"<img src=x onerror=alert(1)> \x00 \ufffe {HOSTILE}", "correct_before": True, "correct_now": False}
    check = MetricCheck("accuracy", "baseline", False, 0.5, 0.0, 1.0, "exact McNemar", 0.01, -0.6, -0.4, 10, [row],
                        0, 1, message=f"accuracy dropped: {HOSTILE}", raw_p_value=0.01, percent=True)
    return CheckReport([SuiteCheck("toy", prompt="toy@v1", prompt_hash="h", model=f"openai:`{HOSTILE}`", examples=10,
                                   status="fail", checks=[check]),
                        SuiteCheck("broken", status="error", error=f"openai: 500 {HOSTILE} \x00\x0c</details>")])


def test_junit_xml_parses_whatever_the_outputs_hold() -> None:
    """Model outputs, inputs and error messages went into the JUnit file as they were: a control character
    (ESC, NUL, form feed) or U+FFFE is not XML, so CI's JUnit parser rejected the whole file."""
    xml = junit_xml(hostile_check())
    root = ET.fromstring(xml.encode("utf-8"))  # expat: a strict XML 1.0 parser
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and "\\x1b]52" in (failure.text or "") and "\\x1b]52" in failure.get("message", "")
    error = root.find("testsuite[@name='promptkit.broken']/testcase/error")
    assert error is not None and "\\x00\\x0c</details>" in error.get("message", "")


def test_markdown_summary_keeps_its_tables_and_sections() -> None:
    """Newlines and pipes in expected labels and outputs split the worse-examples table into bogus rows and
    columns; `</details>` in an output closed the section early and raw HTML (`<img onerror>`) went into the
    pull request summary; a backtick in a model name ended its code span."""
    text = markdown_summary(hostile_check())
    table = [line for line in text.splitlines() if line.startswith("| 3 |")]
    assert len(table) == 1, text
    assert table[0].replace("\\|", "").count("|") == 7  # six cells
    assert "<img" not in text and "&lt;img" in text
    assert text.count("</details>") == 1 and text.count("<details>") == 1
    assert "``" in text and "\x1b" not in text and "\x00" not in text


def test_html_report_of_a_stored_run_with_non_finite_numbers(tmp_path: Path) -> None:
    """The run store keeps NaN and infinities (a provider plugin's latency, cost or label score) as null: the
    HTML report of such a run (`runs show ID -o report.html`, the page `promptkit view` shows) was an internal
    error, summing None costs and putting None latencies on the histogram's axis."""
    for latency in (math.inf, math.nan):
        db = tmp_path / str(latency) / ".promptkit" / "runs.db"
        db.parent.mkdir(parents=True)
        run_id = stored_runs(db, "plain", latency=latency, cost=math.nan)[0]
        out = tmp_path / f"{latency}.html"
        result = run_cli_in_process(db.parent.parent, "runs", "show", run_id, "-o", str(out))
        assert result.exit_code == 0, result.output
        page = out.read_text()
        assert "latency n/a: 2 example(s) without a latency" in page and "positive None" in page


def test_json_reports_are_strict_json(tmp_path: Path) -> None:
    """A label's log-likelihood of -inf or a plugin metric's NaN went into the JSON and JSONL reports as
    `-Infinity`/`NaN`, which jq, JavaScript's JSON.parse and most JSON parsers reject."""
    run = classification_run(tmp_path / "project")
    run.results[0].scores = {"positive": -math.inf, "negative": -0.1}
    run.metrics.append(MetricValue("plugin_score", math.nan, True, -math.inf, math.inf))

    def strict(text: str) -> object:
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))

    report = strict(write_report(run, tmp_path / "r.json").read_text())
    assert report["examples"][0]["scores"]["positive"] is None  # type: ignore[index]
    assert report["metrics"]["plugin_score"]["value"] is None  # type: ignore[index]
    lines = write_report(run, tmp_path / "r.jsonl").read_text().splitlines()
    assert strict(lines[0])["scores"] == {"positive": None, "negative": -0.1}  # type: ignore[index]


def test_report_path_checks_before_any_work(project: Path, tmp_path: Path) -> None:
    """`runs compare -o` wrote JSON into any name (cmp.html) and an unwritable path was an internal error (exit 3)
    after the comparison was made; `eval -o` with a file name over 255 bytes was exit 3 too (Path.is_dir raised
    before the name-length check could answer)."""
    a, b = stored_runs(project / ".promptkit" / "runs.db", "plain")
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path / "cmp.html", "runs compare writes JSON"),
                         (tmp_path / "file" / "cmp.json", "not a writable folder"),
                         (Path("/proc/self/cmp.json"), "not a writable folder")):
        result = run_cli_in_process(project, "runs", "compare", a, b, "-o", str(out))
        assert result.exit_code == 2 and message in result.output, result.output
        assert "comparison" not in result.output  # refused before the work
    long = tmp_path / ("r" * 300 + ".json")
    result = run_cli_in_process(project, "eval", "sentiment", "-m", "fake:a", "--limit", "2", "-o", str(long))
    assert result.exit_code == 2 and "longer than 255 bytes" in result.output, result.output


def test_read_only_report_file_is_not_replaced(project: Path, tmp_path: Path) -> None:
    """The atomic rename replaced a report file its owner had made read-only, and left the new one writable."""
    a, _ = stored_runs(project / ".promptkit" / "runs.db", "plain")
    for name, args in (("r.json", ("eval", "sentiment", "-m", "fake:a", "--limit", "2")), ("r.html", ("runs", "show", a))):
        kept = tmp_path / name
        kept.write_text("keep me")
        kept.chmod(0o444)
        result = run_cli_in_process(project, *args, "-o", str(kept))
        assert result.exit_code == 2 and "read-only" in result.output, result.output
        assert kept.read_text() == "keep me" and not os.stat(kept).st_mode & 0o222


def test_report_never_replaces_the_dataset_it_scores(project: Path, tmp_path: Path) -> None:
    """`eval --data d.jsonl -o d.jsonl` (or -o through a symlink to it) silently replaced the dataset with the report."""
    data = hostile_reviews(tmp_path / "d.jsonl")
    before = data.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(data)
    for out in (data, tmp_path / "link.jsonl"):
        result = run_cli_in_process(project, "eval", "sentiment", "-m", "fake:a", "--data", str(data), "-o", str(out),
                                    "--no-store")
        assert result.exit_code == 2 and "names the dataset being scored" in result.output, result.output
    assert data.read_bytes() == before
