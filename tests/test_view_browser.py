"""`promptkit view` in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium):
runs list, filter, run page, compare two versions, a blind pairwise review exported as a preference
file, the prompt page's chart, and hostile HTML shown as text. Screenshots land in the test's tmp folder."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from promptkit.view.reviews import pair_sides
from tests.helpers.cli import run_cli
from tests.helpers.sample_runs import HOSTILE_INPUT, HOSTILE_OUTPUT, HOSTILE_PROMPT, hostile_run
from tests.helpers.serving import start_view, stop

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser is Debian's chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def app(project: Path):  # type: ignore[no-untyped-def]
    done = run_cli("--project", str(project), "eval", "sentiment@v1", "sentiment@v2", "-m", "fake:x")
    assert done.returncode == 0, done.stderr
    hostile = hostile_run(project)
    process, url = start_view(project)
    yield url, hostile
    stop(process)


def shot(page: Any, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_browse_filter_compare_review_export(app, browser, project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = app
    base = url.split("?")[0].rstrip("/")
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a script the Content-Security-Policy blocks (an inline handler, an inline <script>) is a console error
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)

    # Runs: all three, then filtered to one prompt version.
    page.goto(url)
    assert page.locator("#runs tbody tr").count() == 3
    shot(page, tmp_path, "runs")
    page.select_option("#filter-prompt", "sentiment@v2")
    page.wait_for_url("**prompt=sentiment%40v2**")
    assert [t.strip() for t in page.locator("#runs td.prompt").all_inner_texts()] == ["sentiment@v2"]
    shot(page, tmp_path, "runs-filtered")

    # Run: metrics with intervals, lineage, examples filtered by outcome, a permalink that keeps the filter.
    page.click("a.run-link")
    assert "sentiment@v2" in page.locator("h1").inner_text()
    accuracy = page.locator("table.metrics tr", has_text="accuracy").first.inner_text()
    assert "%" in accuracy and "–" in accuracy
    assert page.locator("table.settings", has_text="dataset_hash").count() == 1
    assert page.locator("table.confusion").count() == 1 and page.locator("svg.hist").count() == 1
    total = page.locator("#examples tbody tr").count()
    assert total == 60 and page.locator("#examples details summary", has_text="rendered prompt").count() == 60
    page.select_option("#status", "wrong")
    wrong = page.locator("#examples tbody tr:not([hidden])").count()
    assert 0 < wrong < total and page.locator("#shown").inner_text() == str(wrong)
    assert "outcome=wrong" in page.url
    page.goto(page.url)
    page.reload()
    assert page.locator("#status").input_value() == "wrong" and page.locator("#shown").inner_text() == str(wrong)
    shot(page, tmp_path, "run")

    # Compare v1 with v2: tick both on the list (the older is the baseline).
    page.goto(base + "/?prompt=sentiment")
    page.locator("#runs input[type=checkbox]").nth(0).check()
    page.locator("#runs input[type=checkbox]").nth(1).check()
    page.click("#compare-button")
    page.wait_for_url("**/compare?**")
    sides = page.locator("ol.sides li").all_inner_texts()
    assert "sentiment@v1" in sides[0] and "sentiment@v2" in sides[1]
    assert "p = " in page.locator("#paired-1").inner_text()
    flipped = page.locator("#matrix tbody tr.flipped").count()
    assert flipped > 0
    assert f"{flipped} of 60 flipped" in page.locator("h2", has_text="flipped").inner_text()
    assert page.locator("#compare-metrics tr[data-metric=accuracy]").count() == 1
    assert page.locator("details.diff").count() >= 1  # v1 -> v2 changed a slot
    shot(page, tmp_path, "compare")

    # Review the pair, blind: no names, the sides per example from a hash; the keyboard picks the right-hand
    # output and the judgment lands in the exported preference file as that output's run.
    page.click("#review-link")
    example = page.locator("#review").get_attribute("data-example")
    assert page.locator(".pair h3").all_inner_texts() == ["Output 1", "Output 2"]
    assert "sentiment@" not in page.locator("#review").inner_text()
    left_output = page.locator("#output-left").inner_text()
    right_output = page.locator("#output-right").inner_text()
    runs = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query).items() if k in ("a", "b")}
    right_run = runs[pair_sides(example, runs["a"], runs["b"])[1]]
    shot(page, tmp_path, "review")
    with page.expect_navigation():
        page.keyboard.press("2")
    assert page.locator("#review").get_attribute("data-example") != example
    exported = tmp_path / "preferences.jsonl"
    done = run_cli("--project", str(project), "view", "export-preferences", "-o", str(exported))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(records) == 1 and records[0]["example_id"] == example
    assert records[0]["chosen"] == right_output and records[0]["rejected"] == left_output
    assert records[0]["chosen_run"] == right_run and "Review:" in records[0]["prompt"]
    # Unblinded (blind=0): the names, run A (sentiment@v1) on the left.
    page.click("#blind-link")
    assert "blind=0" in page.url
    assert [h.split(" · ")[:2] for h in page.locator(".pair h3").all_inner_texts()] == [["A", "sentiment@v1"],
                                                                                        ["B", "sentiment@v2"]]
    download = page.request.get(base + "/export/preferences.jsonl").text()
    assert json.loads(download.splitlines()[0])["example_id"] == example

    # Mark one output of a run wrong with the keyboard: it comes out as a label record.
    page.goto(base + "/runs/" + records[0]["chosen_run"])
    page.click("text=review outputs (right / wrong)")
    marked = page.locator("#review").get_attribute("data-example")
    with page.expect_navigation():
        page.keyboard.press("n")
    labels = run_cli("--project", str(project), "view", "export-labels")
    assert labels.returncode == 0, labels.stderr
    assert [(r["id"], r["verdict"]) for r in map(json.loads, labels.stdout.splitlines())] == [(marked, "wrong")]

    # Prompt: both versions on the chart and a plateau verdict.
    page.goto(base + "/prompts/sentiment")
    assert page.locator("svg.chart circle.point").count() == 2
    assert "plateau" in page.locator("#verdict").inner_text()
    shot(page, tmp_path, "prompt")
    assert errors == []


def test_hostile_html_is_text_and_reviews_need_the_token(app, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, hostile = app
    base = url.split("?")[0].rstrip("/")
    page = browser.new_page()  # no token: a fresh context without the cookie
    page.goto(base + "/")
    assert HOSTILE_PROMPT in page.locator("#runs").inner_text()
    page.goto(f"{base}/runs/{hostile}")
    shot(page, tmp_path, "hostile-run")
    text = page.locator("#examples").inner_text()
    assert HOSTILE_OUTPUT in text and HOSTILE_INPUT in text
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#examples script, #examples img, #examples b").count() == 0
    assert HOSTILE_PROMPT in page.locator("h1").inner_text()
    page.goto(f"{base}/compare?run={hostile}&run={hostile}")
    assert page.evaluate("window.__pwned") is None
    # Without the start-up token the review buttons are off and a forged POST is refused.
    page.goto(f"{base}/review?a={hostile}")
    assert page.locator("#mark-right").is_disabled()
    forged = urllib.parse.urlencode({"a": hostile, "example": "e0", "choice": "right", "token": "guess"}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(base + "/review", forged, method="POST"), timeout=10)
    assert refused.value.code == 403
