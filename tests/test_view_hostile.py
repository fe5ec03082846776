"""`promptkit view` against hostile and careless use, over real HTTP on 127.0.0.1: another site's Host header
(DNS rebinding), review forms that are huge, slow, or name runs, examples and labels that do not exist,
slow clients, damaged records and a run store replaced while the app serves it, look-alike prompt names."""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptkit.errors import PromptkitError
from promptkit.results import ExampleResult, MetricValue
from promptkit.runs import RunStore
from promptkit.view.queries import Queries, RunFilter
from promptkit.view.reviews import ReviewStore
from tests.helpers.cli import run_cli
from tests.helpers.serving import start_view, stop


def stored_run(db: Path, prompt: str = "sentiment@v1", examples: int = 3) -> str:
    """A finished classification run with `examples` results (ids e0, e1, ...) and labels, written directly."""
    store = RunStore(db)
    try:
        run_id = store.create_run({"prompt": prompt, "model": "fake:x", "suite": "sentiment", "task": "classification",
                                   "examples": examples, "labels": ["negative", "positive"]})
        store.add_results(run_id, [ExampleResult(f"e{i}", i, {"text": f"t{i}"}, "positive", "positive", "positive",
                                                 True, latency=0.01) for i in range(examples)])
        store.finish_run(run_id, [MetricValue("accuracy", 1.0, True, 0.5, 1.0, n=examples)])
    finally:
        store.close()
    return run_id


class View:
    def __init__(self, project: Path, *args: str):
        self.process, url = start_view(project, *args)
        split = urllib.parse.urlsplit(url)
        self.netloc, self.port = split.netloc, int(split.port or 0)
        self.token = urllib.parse.parse_qs(split.query).get("token", [""])[0]

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection(self.netloc, timeout=30)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            connection.close()

    def post_review(self, **fields: str) -> tuple[int, str]:
        body = urllib.parse.urlencode({"token": self.token, **fields}).encode()
        return self.request("POST", "/review?token=" + self.token, body,
                            {"Content-Type": "application/x-www-form-urlencoded"})


@pytest.fixture
def runs(project: Path) -> tuple[Path, str, str]:
    db = project / ".promptkit" / "runs.db"
    return db, stored_run(db), stored_run(db, "sentiment@v2")


@pytest.fixture
def view(project: Path, runs: tuple[Path, str, str]) -> Iterator[View]:
    app = View(project)
    try:
        yield app
    finally:
        stop(app.process)


def test_another_sites_host_header_is_refused(view: View) -> None:
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 must not read the runs."""
    for host in ("evil.example", f"evil.example:{view.port}", f"127.0.0.1.evil.example:{view.port}"):
        status, _ = view.request("GET", "/", headers={"Host": host})
        assert status == 400, host
        assert view.request("GET", "/export/labels.jsonl", headers={"Host": host})[0] == 400
    for host in (f"127.0.0.1:{view.port}", f"localhost:{view.port}", f"LocalHost:{view.port}", f"[::1]:{view.port}"):
        assert view.request("GET", "/", headers={"Host": host})[0] == 200, host
    from promptkit.view.app import allowed_hosts

    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("::") is None  # bound to all: the operator's choice
    assert "192.168.1.5" in (allowed_hosts("192.168.1.5") or ())


def test_review_forms_for_runs_examples_and_labels_that_do_not_exist_are_400(view: View, runs: tuple[Path, str, str]) -> None:
    db, a, b = runs
    bad = [{"a": "no-such-run", "example": "e0", "choice": "right"},
           {"a": a[-6:], "example": "e0", "choice": "right"},  # part of an id: the store would find it, the review not
           {"a": a, "example": "ghost", "choice": "right"},
           {"a": a, "example": "e0", "choice": "label:not-a-label"},
           {"a": a, "b": "no-such-run", "example": "e0", "choice": "left"},
           {"a": a, "b": b, "example": "ghost", "choice": "left"},
           {"a": a, "b": a, "example": "e0", "choice": "left"}]
    for fields in bad:
        assert view.post_review(**fields)[0] == 400, fields
    assert view.post_review(a=a, example="e0", choice="label:negative")[0] == 303
    assert view.post_review(a=a, b=b, example="e1", choice="tie")[0] == 303
    reviews = ReviewStore(db)
    try:
        assert [(r.kind, r.example_id, r.run_a, r.run_b, r.choice) for r in reviews.all()] == [
            ("label", "e0", a, None, "label:negative"), ("pair", "e1", a, b, "tie")]
    finally:
        reviews.close()


def test_review_bodies_are_bounded_and_a_strangers_is_never_read(view: View, runs: tuple[Path, str, str]) -> None:
    _, a, _ = runs
    status, _ = view.post_review(a=a, example="e2", choice="right", note="x" * 2_000_000)
    assert status == 413
    # No token: refused at once, without waiting for (or buffering) the 100 MB the request announces.
    with socket.create_connection(("127.0.0.1", view.port), timeout=10) as s:
        s.sendall(b"POST /review HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 100000000\r\n\r\ntoken=x&a=")
        assert s.recv(64).startswith(b"HTTP/1.1 403")


def test_slow_clients_are_cut_off_and_others_are_answered(project: Path) -> None:
    view = View(project, "--read-timeout", "1")
    slow = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", view.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
        slow.append(s)
    try:
        assert view.request("GET", "/prompts")[0] == 200
        time.sleep(3)  # --read-timeout 1
        for s in slow:
            s.settimeout(5)
            assert s.recv(100) == b"", "a slow client's connection is still open"
    finally:
        for s in slow:
            s.close()
        stop(view.process)


def test_damaged_records_are_an_error_page_not_a_crash(project: Path, runs: tuple[Path, str, str]) -> None:
    db, a, _ = runs
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE runs SET metrics = ? WHERE id = ?", (json.dumps([{"name": "accuracy", "value": "abc"}]), a))
    queries = Queries(db)
    try:
        with pytest.raises(PromptkitError, match="damaged record"):
            queries.list_runs(RunFilter())
    finally:
        queries.close()
    app = View(project, "--read-only")
    try:
        for path in ("/", f"/runs/{a}", "/prompts/sentiment", f"/compare?run={a}&run={runs[2]}"):
            status, page = app.request("GET", path)
            assert status != 500 and "damaged record" in page and "runs.db" in page, path
    finally:
        stop(app.process)


def test_a_run_store_replaced_while_served_is_reopened(tmp_path: Path) -> None:
    """The recovery the errors advise (move runs.db aside, start a new one) while the viewer runs."""
    db = tmp_path / "runs.db"
    old = stored_run(db)
    queries = Queries(db)
    try:
        assert [r.id for r in queries.list_runs(RunFilter()).runs] == [old]
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{db}{suffix}").exists():
                Path(f"{db}{suffix}").rename(f"{db}.bad{suffix}")
        new = stored_run(db)
        assert [r.id for r in queries.list_runs(RunFilter()).runs] == [new]
    finally:
        queries.close()


def test_runs_of_a_prompt_are_not_those_of_look_alike_names(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    mine = stored_run(db, "sent_a@v1")
    stored_run(db, "sentXa@v1")  # `_` is any one character to LIKE
    stored_run(db, "SENT_A@v1")  # and LIKE ignores case
    stored_run(db, "sent_a2@v1")
    queries = Queries(db)
    try:
        assert [r.id for r in queries.runs_of_prompt("sent_a")] == [mine]
        assert [r.id for r in queries.list_runs(RunFilter(prompt="sent_a")).runs] == [mine]
        assert queries.list_runs(RunFilter(prompt="%")).total == 0
    finally:
        queries.close()


def test_a_compare_of_too_many_runs_is_refused_not_rendered(view: View, runs: tuple[Path, str, str]) -> None:
    """Each compared run is read and rendered while other requests wait: the page takes a bounded number."""
    from promptkit.view.app import MAX_COMPARE

    _, a, b = runs
    status, body = view.request("GET", "/compare?" + urllib.parse.urlencode([("run", a), ("run", b)] * MAX_COMPARE))
    assert status == 400 and f"at most {MAX_COMPARE} runs" in body
    assert view.request("GET", f"/compare?run={a}&run={b}")[0] == 200


def test_pages_allow_no_inline_script(project: Path) -> None:
    """The CSP allowed 'unsafe-inline' scripts, so any markup that escaped escaping could run script.
    The run page's filter script is now a file of its own and menus submit through view.js."""
    from starlette.testclient import TestClient

    from promptkit.project import Project
    from promptkit.view.app import ViewConfig, create_app

    done = run_cli("--project", str(project), "eval", "sentiment@v1", "-m", "fake:x", "--limit", "5")
    assert done.returncode == 0, done.stderr
    client = TestClient(create_app(ViewConfig(Project(project), token="t")), base_url="http://127.0.0.1")
    home = client.get("/")
    csp = home.headers["Content-Security-Policy"]
    script_src = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
    assert "unsafe-inline" not in script_src
    run_id = home.text.split('href="/runs/')[1].split('"')[0]
    pages = [home.text, client.get(f"/runs/{run_id}").text, client.get("/prompts/sentiment").text]
    for html in pages:
        assert " onchange=" not in html and " onclick=" not in html
        assert "<script>" not in html  # every script has a src
    script = client.get("/static/report.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "addEventListener" in script.text
