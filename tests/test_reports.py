"""Report writers: JSON, JSONL, CSV and the self-contained HTML file, rendered in headless Chromium."""

from __future__ import annotations

import csv
import json
import re
import struct
import subprocess
from pathlib import Path

import pytest

from promptkit.errors import PromptkitError
from promptkit.evaluate import compute_metrics
from promptkit.report import write_report
from promptkit.report.html import html_report
from tests.helpers.sample_runs import classification_run, example_result

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    run = classification_run(tmp_path_factory.mktemp("project"), fail_every=9)
    hostile = example_result("positive", "=HYPERLINK(\"http://x\")", input={"text": "<script>alert('x')</script> & \"quotes\""},
                     prediction="positive", correct=True, index=len(run.results), id="hostile", latency=0.05)
    run.results.append(hostile)
    run.metrics = compute_metrics(run.plan, run.results)
    return run


def test_json_report(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(write_report(run, tmp_path / "r.json").read_text())
    assert data["metrics"]["accuracy"]["interval"] == "wilson"
    assert data["metrics"]["f1_macro"]["low"] <= data["metrics"]["f1_macro"]["value"] <= data["metrics"]["f1_macro"]["high"]
    assert "per_example" not in data["metrics"]["accuracy"]
    assert len(data["examples"]) == len(run.results) and data["confusion_matrix"]


def test_jsonl_report(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = write_report(run, tmp_path / "r.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(run.results)
    assert [r["id"] for r in records] == [r.id for r in run.results]
    assert {r["metrics"]["accuracy"] for r in records} == {0.0, 1.0}


def test_csv_report(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with (write_report(run, tmp_path / "r.csv")).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(run.results)
    assert {"input.text", "expected", "output", "latency", "cost", "metric.accuracy"} <= set(rows[0])
    hostile = rows[-1]
    assert hostile["output"].startswith("'=HYPERLINK")  # not a live formula in a spreadsheet
    assert hostile["input.text"] == "<script>alert('x')</script> & \"quotes\""


def test_unknown_suffix_and_unwritable_path(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PromptkitError, match="unknown report format"):
        write_report(run, tmp_path / "r.xlsx")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PromptkitError, match="cannot write the report"):
        write_report(run, tmp_path / "file" / "r.html")


def test_html_is_self_contained_and_escaped(run) -> None:  # type: ignore[no-untyped-def]
    page = html_report(run)
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "no external assets"
    assert page.count("<script>") == 1 and "<svg" in page and "latency (ms)" in page
    for name in ("accuracy", "f1_macro", "latency_p95", "cost_per_example", "Confusion matrix", "Examples"):
        assert name in page
    assert 'data-status="error"' in page


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (apt-get install chromium)")
def test_html_report_renders_in_headless_chromium(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = write_report(run, tmp_path / "report.html")
    png = tmp_path / "report.png"
    done = _chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,1600", report.as_uri())
    assert png.exists(), done.stderr[-2000:]
    assert _png_size(png) == (1200, 1600)
    assert png.stat().st_size > 50_000  # a blank page is a few kB; metrics, matrix and histogram are not
    # The filter runs in the real browser: report.html#q=WORD hides the rows that do not mention WORD.
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri() + "#q=alert").stdout
    shown = re.search(r'<span id="shown">(\d+)</span>', dom)
    assert shown and shown.group(1) == "1", dom[-500:]
    assert len(re.findall(r"<tr [^>]*\bhidden\b", dom)) == len(run.results) - 1


def test_terminal_table_formats_intervals_by_unit(run) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console

    from promptkit.report.terminal import metrics_table

    console = Console(record=True, width=200)
    console.print(metrics_table(run))
    text = console.export_text()
    tokens = next(line for line in text.splitlines() if "tokens_per_example" in line)
    latency = next(line for line in text.splitlines() if "latency_p95" in line)
    assert "%" not in tokens and re.search(r"\d+\.\d – \d+\.\d", tokens)
    assert re.search(r"\d+ ms – \d+ ms", latency)
    assert re.search(r"accuracy .*\d+\.\d% – \d+\.\d%", text)


def test_html_for_a_cached_generation_run(tmp_path: Path) -> None:
    from tests.helpers.sample_runs import generation_run

    gen = generation_run(tmp_path)
    for r in gen.results:
        r.cached = True
    page = html_report(gen)
    assert "Confusion matrix" not in page and "every example came from the cache" in page
    assert "relevance" in page and "rouge_l" in page and "<th>metrics</th>" in page
    assert "&lt;script&gt;alert" in page and "<script>alert" not in page
