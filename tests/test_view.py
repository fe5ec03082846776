"""`promptkit view` without a browser: the run store queries, reviews and their exports, `runs show`
(issue 11), one rendering shared by the static report and the app, and the safety defaults over real HTTP."""

from __future__ import annotations

import html
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from promptkit.errors import PromptkitError
from promptkit.project import Project
from tests.helpers.cli import run_cli, run_cli_in_process
from tests.helpers.sample_runs import HOSTILE_OUTPUT, hostile_run
from tests.helpers.serving import start_view, stop


@pytest.fixture
def two_runs(project: Path) -> tuple[Path, list[str]]:
    done = run_cli_in_process(project, "eval", "sentiment@v1", "sentiment@v2", "-m", "fake:x")
    assert done.exit_code == 0, done.output
    from promptkit.runs import RunStore

    store = RunStore(project / ".promptkit" / "runs.db")
    ids = [r.id for r in reversed(store.runs())]
    store.close()
    return project, ids


def test_runs_show_prints_plain_values_and_intervals_and_writes_the_report(two_runs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project, (v1, _) = two_runs
    done = run_cli_in_process(project, "runs", "show", v1, "-o", str(tmp_path / "report.html"))
    assert done.exit_code == 0, done.output
    assert "None" not in done.output and "{'" not in done.output and "'" not in done.output.split("┏")[0]
    assert "adapter: -" in done.output and "temperature=0" in done.output and 'stop="\\n"' in done.output
    assert re.search(r"accuracy\s.*\d+\.\d% – \d+\.\d%", done.output)
    page = (tmp_path / "report.html").read_text()
    assert v1 in page and page.count('<tr id="ex-') == 60 and "rendered prompt" in page
    bad = run_cli_in_process(project, "runs", "show", v1, "-o", str(tmp_path / "report.txt"))
    assert bad.exit_code == 2 and "report.txt" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_the_app_and_the_static_report_share_one_rendering(two_runs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project, (_, v2) = two_runs
    assert run_cli_in_process(project, "runs", "show", v2, "-o", str(tmp_path / "r.html")).exit_code == 0
    process, url = start_view(project, "--read-only")
    try:
        page = urllib.request.urlopen(url.rstrip("/") + f"/runs/{v2}").read().decode()
    finally:
        stop(process)

    def section(html: str, name: str) -> str:
        return html[html.index(f"<h2>{name}</h2>"):].split("</section>")[0]

    report = (tmp_path / "r.html").read_text()
    for name in ("Metrics", "Confusion matrix", "Examples", "Cost and usage"):
        assert section(page, name) == section(report, name), name


def test_run_list_filters_and_pages(project: Path) -> None:
    from promptkit.results import MetricValue
    from promptkit.runs import RunStore
    from promptkit.view.queries import Queries, RunFilter

    store = RunStore(project / ".promptkit" / "runs.db")
    for i in range(120):
        run_id = store.create_run({"prompt": f"p{i % 2}@v{i % 3 + 1}", "model": f"fake:m{i % 4}", "suite": "s",
                                   "dataset": f"/data/d{i % 5}.jsonl"})
        store.finish_run(run_id, [MetricValue("accuracy", 0.5)])
    store.close()
    queries = Queries(project / ".promptkit" / "runs.db")
    first = queries.list_runs(RunFilter())
    assert (first.total, first.pages, len(first.runs)) == (120, 3, 50)
    last = queries.list_runs(RunFilter(page=99))
    assert last.page == 3 and len(last.runs) == 20
    assert queries.list_runs(RunFilter(prompt="p0")).total == 60
    assert queries.list_runs(RunFilter(prompt="p0@v1")).total == 20
    assert queries.list_runs(RunFilter(prompt="p0", model="fake:m0")).total == 30
    assert queries.list_runs(RunFilter(dataset="/data/d1.jsonl")).total == 24
    assert "p1" in first.choices["prompt"] and "p1@v2" in first.choices["prompt"]
    queries.close()


def test_reviews_export_preferences_and_labels(two_runs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from promptkit.runs import RunStore
    from promptkit.view.reviews import ReviewStore, label_records, preference_records

    project, (v1, v2) = two_runs
    store = RunStore(project / ".promptkit" / "runs.db")
    a, b = store.results(v1), store.results(v2)
    store.close()
    differ = [i for i in range(len(a)) if a[i].output != b[i].output]
    reviews = ReviewStore(project / ".promptkit" / "runs.db")
    reviews.add("pair", a[differ[0]].id, v1, "a", v2)
    reviews.add("pair", a[differ[1]].id, v1, "tie", v2)
    reviews.add("pair", a[differ[2]].id, v1, "a", v2)
    reviews.add("pair", a[differ[2]].id, v1, "b", v2)  # changed my mind: replaces the first judgment
    reviews.add("label", a[0].id, v1, "label:negative")
    with pytest.raises(PromptkitError):
        reviews.add("pair", a[0].id, v1, "maybe", v2)
    reviews.close()
    records = list(preference_records(Project(project)))
    assert [(r["example_id"], r["chosen"], r["rejected"]) for r in records] == [
        (a[differ[0]].id, a[differ[0]].output, b[differ[0]].output),
        (a[differ[2]].id, b[differ[2]].output, a[differ[2]].output)]
    assert "Review:" in records[0]["prompt"]
    labels = list(label_records(Project(project)))
    assert labels[0]["label"] == "negative" and labels[0]["expected"] == a[0].expected
    out = tmp_path / "prefs.jsonl"
    done = run_cli("--project", str(project), "view", "export-preferences", "-o", str(out))
    assert done.returncode == 0 and "2 preferences record(s)" in done.stderr
    assert [json.loads(line)["chosen"] for line in out.read_text().splitlines()] == [r["chosen"] for r in records]


def _post_review(base: str, token: str, **fields: str) -> tuple[int, str]:
    """(status, redirect location) of one review form posted with the start-up token, the redirect not followed."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(base).netloc, timeout=30)
    try:
        connection.request("POST", "/review?token=" + token, urllib.parse.urlencode({"token": token, **fields}),
                           {"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


def test_pair_review_is_blind_and_stores_the_run_behind_the_chosen_side(project: Path) -> None:
    from promptkit.runs import RunStore
    from promptkit.view.reviews import ReviewStore, pair_sides

    # A subprocess eval: the in-process one leaves store connections for the garbage collector, and the view
    # process closing the WAL under them makes this process's next read of runs.db fail as malformed.
    done = run_cli("--project", str(project), "eval", "sentiment@v1", "sentiment@v2", "-m", "fake:x")
    assert done.returncode == 0, done.stderr
    store = RunStore(project / ".promptkit" / "runs.db")
    v1, v2 = [r.id for r in reversed(store.runs())]
    outputs = {"a": {r.id: r.output for r in store.results(v1)}, "b": {r.id: r.output for r in store.results(v2)}}
    store.close()
    differ = [i for i in outputs["a"] if outputs["a"][i] != outputs["b"][i]]
    process, url = start_view(project)
    base, token = url.split("?")[0].rstrip("/"), urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]

    def review(*extra: str) -> tuple[str, str, str, list[str]]:
        """(example id, left output, right output, side headers) of the review page of v1 against v2."""
        query = "&".join((f"a={v1}", f"b={v2}", f"token={token}", *extra))
        page = urllib.request.urlopen(f"{base}/review?{query}").read().decode()
        example = re.search(r'data-example="([^"]+)"', page)
        assert example, page
        left, right = (html.unescape(re.search(rf'<pre id="output-{s}">(.*?)</pre>', page, re.S).group(1))  # type: ignore[union-attr]
                       for s in ("left", "right"))
        if "blind=0" not in extra:
            assert "sentiment@" not in page and "fake:x" not in page and 'id="review-tally"' not in page
            assert "rendered prompt" not in page  # run A's: it would hint which side is A
        return example.group(1), left, right, re.findall(r'<div class="side"><h3>(.*?)</h3>', page)

    expected: dict[str, str] = {}
    try:
        orders: set[tuple[str, str]] = set()
        while len(orders) < 2 or "tie" not in expected.values():  # both orders shown, a left pick on each, a tie
            example, left, right, headers = review()
            order = pair_sides(example, v1, v2)
            assert headers == ["Output 1", "Output 2"]
            assert (left, right) == (outputs[order[0]][example], outputs[order[1]][example])
            side = "left" if order not in orders else "tie"
            orders.add(order)
            assert _post_review(base, token, example=example, a=v1, b=v2, choice=side) == (
                303, f"/review?a={v1}&b={v2}")
            expected[example] = order[0] if side == "left" else "tie"
        assert {expected[e] for e in expected if expected[e] != "tie"} == {"a", "b"}
        for bad in ("a", "b", "maybe", ""):
            assert _post_review(base, token, example=differ[0], a=v1, b=v2, choice=bad)[0] == 400

        # blind=0: the names, run A on the left whatever the hash says, and blind=0 kept on the way back.
        example, left, right, headers = review("blind=0")
        assert headers == ["A · sentiment@v1 · fake:x", "B · sentiment@v2 · fake:x"]
        assert (left, right) == (outputs["a"][example], outputs["b"][example])
        assert "rendered prompt" in urllib.request.urlopen(f"{base}/review?a={v1}&b={v2}&blind=0").read().decode()
        swapped = next(e for e in differ if e not in expected and pair_sides(e, v1, v2) == ("b", "a"))
        assert _post_review(base, token, example=swapped, a=v1, b=v2, choice="left", blind="0") == (
            303, f"/review?a={v1}&b={v2}&blind=0")
        expected[swapped] = "a"
        page = urllib.request.urlopen(f"{base}/review?a={v1}&b={v2}&blind=0").read().decode()
        assert 'id="review-tally"' in page and 'name="blind" value="0"' in page
    finally:
        stop(process)
    reviews = ReviewStore(project / ".promptkit" / "runs.db")
    assert reviews.done("pair", v1, v2) == expected
    reviews.close()


def test_safe_defaults_over_http(project: Path) -> None:
    hostile = hostile_run(project)
    process, url = start_view(project, "--read-only")
    base = url.split("?")[0].rstrip("/")
    try:
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        response = urllib.request.urlopen(f"{base}/runs/{hostile}")
        page = response.read().decode()
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert "<script>window.__pwned" not in page and HOSTILE_OUTPUT.replace("<", "&lt;").replace(">", "&gt;") in page
        assert "<i>evil</i>" not in page and "&lt;i&gt;evil&lt;/i&gt;" in page
        form = urllib.parse.urlencode({"a": hostile, "example": "e0", "choice": "right", "token": "x"}).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(base + "/review", form, method="POST"))
        assert refused.value.code == 403
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/runs/no-such-run")
        assert missing.value.code == 404
    finally:
        stop(process)


def test_a_busy_port_is_one_line_and_exit_2(project: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        done = run_cli_in_process(project, "view", "--port", str(busy.getsockname()[1]))
    assert done.exit_code == 2 and done.output.startswith("error: --host/--port: cannot listen on 127.0.0.1:")
    assert len(done.output.strip().splitlines()) == 1
