"""The openai provider against hostile or broken OpenAI-compatible endpoints (raw sockets on
127.0.0.1 only): endless and trickled answers, absurd `usage`, non-finite log-probabilities,
undecodable text, keys echoed back, odd base_url values, absurd prices and option values.
Each test is the regression test of one bug; its docstring says what was wrong."""

from __future__ import annotations

import json
import math
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promptkit.errors import ConfigError
from promptkit.evaluate import plan_eval
from promptkit.pricing import load_prices
from promptkit.project import Project
from promptkit.providers.factory import open_provider
from promptkit.providers.openai import OpenAIOptions, OpenAIProvider
from promptkit.results import Request, Response
from tests.helpers.cli import run_cli

KEY = "sk-hostile-test-key-0123456789"
FAST = {"backoff": 0.0, "max_backoff": 0.0, "max_retries": 0}
TEXT = Request(id="a", text="Say something")
LABELS = Request(id="b", text="Review: fine. Sentiment:", labels=["negative", "positive"])
CHAT_LABELS = Request(id="c", messages=[{"role": "user", "content": "Review: fine."}], labels=["negative", "positive"])

Handler = Callable[[socket.socket, dict[str, Any]], None]


class HostileServer:
    """An HTTP/1.1 peer on raw sockets: `handler(conn, request)` writes whatever it likes (bad
    framing, endless bodies, byte-by-byte trickles); `sent` counts the body bytes it got out."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.sent = 0
        self.requests: list[dict[str, Any]] = []
        self.sock = socket.create_server(("127.0.0.1", 0))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            try:
                while (request := self._read(conn)) is not None:
                    self.requests.append(request)
                    self.handler(conn, request)
            except OSError:  # the client gave up
                pass

    @staticmethod
    def _read(conn: socket.socket) -> dict[str, Any] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers.get("content-length", 0)):
            body += conn.recv(65536)
        return {"path": lines[0].split()[1], "headers": headers, "body": json.loads(body or b"{}")}

    def send(self, conn: socket.socket, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     f"{extra}\r\n".encode() + data)
        self.sent += len(data)


def answer(body: Any, status: int = 200) -> Callable[[HostileServer], Handler]:
    return lambda server: lambda conn, request: server.send(conn, status, body)


def serve(make: Callable[[HostileServer], Handler]) -> HostileServer:
    server = HostileServer(lambda conn, request: None)
    server.handler = make(server)
    return server


def complete(url: str, request: Request, **options: Any) -> tuple[Response, OpenAIProvider]:
    provider = open_provider("openai:gpt-4o-mini", base_url=url, api_key=KEY, **{"timeout": 5.0, **FAST, **options})
    assert isinstance(provider, OpenAIProvider)
    _ = provider.client  # the SDK imported before any clock starts
    response = provider.complete([request])[0]
    provider.close()
    return response, provider


def completion(text: str = "fine", usage: Any = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": usage}


def test_the_bounded_connections_are_installed() -> None:
    """The deadline and size limits reach the connections through private attributes of the HTTP
    client (no public hook does): if an upgrade renames them, this says so before a hostile peer does."""
    provider = open_provider("openai:gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key=KEY)
    assert isinstance(provider, OpenAIProvider)
    assert type(provider.client._client._transport._pool._network_backend).__name__ == "_BoundedBackend"
    provider.close()


@pytest.mark.parametrize("status", [200, 500])
def test_an_endless_body_is_cut_off(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    """An endpoint streaming an endless body was read whole: a 500's body by the SDK with no limit
    in time or size (1 GB of memory in 8 s with timeout 1), a 200's until the timeout. Now an
    answer over MAX_RESPONSE_BYTES ends that request, not retried, as the example's error."""
    monkeypatch.setattr("promptkit.providers.openai.MAX_RESPONSE_BYTES", 2**20, raising=False)

    def make(server: HostileServer) -> Handler:
        def endless(conn: socket.socket, request: dict[str, Any]) -> None:
            conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n".encode())
            chunk = b"[" * 65536
            while server.sent < 32 * 2**20:  # a bound for the old code's sake
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                server.sent += len(chunk)
            conn.close()
        return endless

    with serve(make) as server:
        response, provider = complete(server.url, TEXT, timeout=30.0, max_retries=3)
    assert response.error and "larger than 1 MB" in response.error
    assert server.sent < 12 * 2**20  # what the socket buffers hold beyond the 1 MB read
    assert len(server.requests) == 1 and provider.fatal is None


@pytest.mark.parametrize("where", ["headers", "error body"])
def test_a_trickled_answer_ends_by_the_timeout(where: str) -> None:
    """httpx's timeout is per read: a peer trickling its header lines, or a 500 whose body the SDK
    reads whole, held a request with timeout 1 s for as long as the peer liked (20 s and more).
    Now every read of the request ends by its deadline."""
    def trickle(conn: socket.socket, request: dict[str, Any]) -> None:
        if where == "headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            pieces = [b"X-Pad: a\r\n"] * 40
        else:
            conn.sendall(b"HTTP/1.1 500 X\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
            pieces = [b" "] * 40
        for piece in pieces:  # 40 x 0.2 s: a bound for the old code's sake
            conn.sendall(piece)
            time.sleep(0.2)
        conn.close()

    with HostileServer(trickle) as server:
        start = time.monotonic()
        response, _ = complete(server.url, TEXT, timeout=1.0)
        took = time.monotonic() - start
    assert response.error and "timeout" in response.error
    assert took < 3.0


@pytest.mark.parametrize("usage", [
    b'{"prompt_tokens": -50, "completion_tokens": -7}',
    b'{"prompt_tokens": 10000000000000000000, "completion_tokens": 1}',
    b'{"prompt_tokens": 1e300, "completion_tokens": 1}',
    b'{"prompt_tokens": NaN, "completion_tokens": Infinity}',
    b'{"prompt_tokens": 1e999}',
    b'"lots"',
    b'[12, 3]',
    b'{"prompt_tokens": "12", "completion_tokens": true}',
])
def test_implausible_usage_is_replaced_by_our_own_count(usage: bytes) -> None:
    """`usage` was trusted as it came: negative counts made negative tokens and a negative cost
    (a run "spent $-45"), 1e19 tokens cost $1.5e12, and NaN, 1e999, a string or a list made the
    example an error (ValueError, OverflowError, AttributeError). Now a count that is not a
    plausible token count is replaced by tiktoken's, as when `usage` is missing."""
    body = b'{"choices": [{"index": 0, "text": "fine"}], "usage": %s}' % usage
    with serve(answer(body)) as server:
        response, provider = complete(server.url, TEXT)
    assert response.error is None and response.output == "fine"
    assert (response.tokens_in, response.tokens_out) == (provider.prompt_tokens(TEXT), provider.count_tokens("fine"))
    assert math.isfinite(response.cost) and 0 < response.cost < 1e-3


def echo_logprobs(value: str) -> Callable[[HostileServer], Handler]:
    """Completions with echo: the label's token gets `value` (raw JSON) for the first label."""
    def make(server: HostileServer) -> Handler:
        def handler(conn: socket.socket, request: dict[str, Any]) -> None:
            choices = []
            for i, text in enumerate(request["body"]["prompt"]):
                cut = len(LABELS.text or "")
                choices.append({"index": i, "logprobs": {"tokens": [text[:cut], text[cut:]],
                                                         "token_logprobs": [None, "VALUE" if i == 0 else -1.5],
                                                         "text_offset": [0, cut]}})
            server.send(conn, 200, json.dumps({"choices": choices}).replace('"VALUE"', value).encode())
        return handler
    return make


CHAT_TOP = (b'{"choices": [{"index": 0, "message": {"content": "x"}, "logprobs": {"content": [{"token": "pos", '
            b'"logprob": -1, "top_logprobs": [{"token": "pos", "logprob": -1}, {"token": "neg", "logprob": NaN}]}]}}]}')
CHAT_LABEL = b'{"choices": [{"index": 0, "message": {"content": "x"}, "label_logprobs": {"negative": NaN, "positive": -1}}]}'


@pytest.mark.parametrize(("request_", "make"), [
    (LABELS, echo_logprobs("NaN")),
    (LABELS, echo_logprobs("Infinity")),
    (LABELS, echo_logprobs("-Infinity")),
    (CHAT_LABELS, answer(CHAT_LABEL)),
    (CHAT_LABELS, answer(CHAT_TOP)),
], ids=["echo-nan", "echo-inf", "echo-minus-inf", "label-logprobs-nan", "top-logprobs-nan"])
def test_non_finite_logprobs_never_become_scores(request_: Request, make: Callable[[HostileServer], Handler]) -> None:
    """NaN and infinite log-probabilities (JSON's NaN/Infinity, which Python reads) became label
    scores, and the prediction was whatever max() made of a NaN. Now they are a malformed answer
    (the example's error) or are left out, and no score is ever non-finite."""
    with serve(make) as server:
        response, _ = complete(server.url, request_)
    assert all(math.isfinite(v) for v in (response.scores or {}).values()), response.scores
    if request_ is LABELS:
        assert response.error and "log-probability" in response.error and response.scores is None


def test_lone_surrogates_in_an_answer_are_replaced() -> None:
    """A JSON escape "\\ud800" decodes to a lone surrogate that no UTF-8 file or database can hold:
    the eval crashed with an internal error (exit 3) on such an output. Now it becomes "?"."""
    with serve(answer(b'{"choices": [{"index": 0, "text": "ok \\ud800 and \\udfff"}]}')) as server:
        response, _ = complete(server.url, TEXT)
    assert response.error is None and response.output == "ok ? and ?"
    response.output.encode("utf-8")


def test_a_key_cut_by_the_error_excerpt_is_still_redacted() -> None:
    """A malformed body is quoted in the error cut to 80 characters, and the key was redacted only
    after the cut: a key straddling the cut leaked its first characters. Now redaction comes first."""
    body = ("x" * 60 + " " + KEY).encode()
    with serve(answer(body)) as server:
        response, _ = complete(server.url, TEXT)
    assert response.error and "malformed" in response.error
    assert KEY[:10] not in response.error and "***" in response.error


def test_a_huge_error_body_is_not_copied_into_every_error() -> None:
    """An error body was copied whole into the example's error, so a 2 MB error answer put 2 MB
    per example in the run store and reports. Now the error keeps its first MAX_ERROR_CHARS, the
    echoed key redacted."""
    body = {"error": {"message": "no: " + "y" * 2_000_000 + KEY}}
    with serve(answer(body, status=400)) as server:
        response, _ = complete(server.url, TEXT)
    assert response.error and "HTTP 400" in response.error
    assert len(response.error) < 1200 and KEY not in response.error


def test_deeply_nested_json_is_a_malformed_answer() -> None:
    """A body of 100,000 nested brackets made json.loads raise RecursionError, reported as an
    internal-looking "RecursionError" and never retried. Now it is a malformed answer (retried)."""
    with serve(answer(b"[" * 100_000)) as server:
        response, provider = complete(server.url, TEXT, max_retries=1)
    assert response.error and "malformed response body" in response.error
    assert provider.stats["faults"]["malformed"] == 2


def test_retries_past_a_thousand_do_not_overflow() -> None:
    """The backoff was `backoff * 2**attempt`: past 1023 retries (max_retries set high to retry
    "forever") the float conversion overflowed and the example failed with an OverflowError."""
    with serve(answer({"error": {"message": "busy"}}, status=503)) as server:
        response, provider = complete(server.url, TEXT, max_retries=1030)
    assert response.error and "gave up after 1031 attempts" in response.error
    assert provider.stats["retries"] == 1030


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "file:///etc/passwd", "ftp://example.com/v1", "http:///v1",
                                 "localhost"])
def test_a_base_url_that_is_no_http_url_is_a_config_error(url: str) -> None:
    """A base_url without http(s)://, or without a host, was accepted and every request failed with
    "cannot reach ...: Request URL is missing an 'http://' or 'https://' protocol" (exit 1, as if the
    server were down). Now it is refused at once, naming the option (exit 2)."""
    with pytest.raises(ConfigError, match="option 'base_url' must be an http:// or https:// URL"):
        open_provider("openai:gpt-4o-mini", base_url=url)


def test_a_bad_base_url_in_a_suite_is_refused_at_its_line(project: Path) -> None:
    """The same from a suite's provider_options: refused before any call, naming the suite file's line."""
    suite = project / "evals" / "headline.yaml"
    suite.write_text(suite.read_text().replace("provider_options: {forward_batch: 40}",
                                               "provider_options: {base_url: 'localhost:8000/v1'}"))
    proj = Project(project)
    with pytest.raises(ConfigError) as error:
        plan_eval(proj, proj.library.resolve("prompts/headline"), model="openai:gpt-4o-mini", limit=2)
    assert error.value.where and error.value.where.endswith("headline.yaml:9")
    assert "must be an http:// or https:// URL" in str(error.value)


def test_a_base_url_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for OPENAI_BASE_URL, and the message names the variable."""
    monkeypatch.setenv("OPENAI_BASE_URL", "api.example.com/v1")
    with pytest.raises(ConfigError, match="environment variable OPENAI_BASE_URL"):
        open_provider("openai:gpt-4o-mini")


def test_blanks_around_a_base_url_are_dropped() -> None:
    """Blanks pasted around a base_url made every request fail (a leading blank: "missing an
    'http://' protocol"), and were kept in the identity recorded with runs and cache keys."""
    with serve(answer(completion("fine", {"prompt_tokens": 3, "completion_tokens": 1}))) as server:
        url = server.url
        response, provider = complete(f"  {url}/ \n", TEXT)
    assert response.error is None and response.output == "fine"
    assert provider.identity["base_url"] == url


def test_credentials_in_a_base_url_are_refused_without_showing_them(project: Path) -> None:
    """`base_url: http://user:password@host/v1` was taken as is: the password went into the run
    store (the provider's identity), cache keys, and every "cannot reach" line on stderr. Now the
    URL is refused with exit 2 and one line that does not repeat it."""
    url = "http://me:hunter2-secret@127.0.0.1:9/v1"
    with pytest.raises(ConfigError) as error:
        open_provider("openai:gpt-4o-mini", base_url=url)
    assert "hunter2" not in str(error.value) and "user name or password" in str(error.value)
    (project / ".promptkit").mkdir()
    entry = {"remote": {"provider": "openai", "model": "gpt-4o-mini", "options": {"base_url": url}}}
    (project / ".promptkit" / "models.yaml").write_text(json.dumps(entry))
    result = run_cli("eval", "headline", "--model", "remote", "--limit", "2", cwd=project, timeout=120)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "user name or password" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert not (project / ".promptkit" / "runs.db").exists() or "hunter2" not in (
        project / ".promptkit" / "runs.db").read_bytes().decode("latin-1")


@pytest.mark.parametrize("option", ["timeout", "backoff", "max_backoff"])
def test_waits_too_long_for_the_platform_are_refused(option: str) -> None:
    """`timeout: 1e10` (meant as "never") was accepted, then every request failed with an
    OverflowError from the socket layer, reported as "cannot reach" the endpoint; a backoff as large
    failed the retry wait the same way. Now such an option is refused with a config error."""
    with pytest.raises(ConfigError, match=f"option '{option}'"):
        open_provider("openai:gpt-4o-mini", None, base_url="http://127.0.0.1:9/v1", **{option: 1e10})


def test_a_price_that_overflows_a_cost_is_refused(tmp_path: Path) -> None:
    """A finite but absurd price (1e305 $ per million tokens) passed the check for finite numbers,
    and a run's cost overflowed to infinity: "$inf spent", and the JSON report held `Infinity`
    (invalid JSON). Now prices above MAX_PRICE are refused, naming the file and entry."""
    (tmp_path / "promptkit.yaml").write_text("prices:\n  gpt-4o-mini: {input: 1e305, output: 0.6}\n")
    with pytest.raises(ConfigError, match=r"gpt-4o-mini.*must be finite numbers from 0 to") as refused:
        load_prices(tmp_path)
    assert refused.value.where == f"{tmp_path / 'promptkit.yaml'}:2"


def test_one_hostile_answer_is_one_failed_example_and_totals_stay_sane(project: Path) -> None:
    """End to end: an endpoint answering with negative `usage`, one example's answer with NaN usage
    and a lone surrogate, one with an endless body. Before, the run spent a negative amount (or
    crashed with exit 3 on the surrogate). Now the run finishes, the endless answer is that example's
    error, and every token count and cost in the report and the run store is finite and >= 0."""
    calls = {"n": 0}

    def make(server: HostileServer) -> Handler:
        def handler(conn: socket.socket, request: dict[str, Any]) -> None:
            calls["n"] += 1
            if calls["n"] == 2:
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                while server.sent < 100 * 2**20:
                    conn.sendall(b"10000\r\n" + b" " * 65536 + b"\r\n")
                    server.sent += 65536
                conn.close()
                return
            usage = b'{"prompt_tokens": NaN}' if calls["n"] == 3 else b'{"prompt_tokens": -9000, "completion_tokens": -2}'
            server.send(conn, 200, b'{"choices": [{"index": 0, "text": "ok \\ud83d"}], "usage": %s}' % usage)
        return handler

    with serve(make) as server:
        (project / ".promptkit").mkdir()
        options = {"base_url": server.url, "concurrency": 1, "timeout": 20, "max_retries": 0}
        entry = {"remote": {"provider": "openai", "model": "gpt-4o-mini", "options": options}}
        (project / ".promptkit" / "models.yaml").write_text(json.dumps(entry))
        result = run_cli("eval", "headline", "--model", "remote", "--limit", "4", "-o", "r.json", cwd=project,
                         env={"OPENAI_API_KEY": KEY}, timeout=120)
    assert result.returncode == 0, result.stderr

    def strict(constant: str) -> None:
        raise AssertionError(f"{constant} in the report")

    report = json.loads((project / "r.json").read_text(), parse_constant=strict)
    examples = report["examples"]
    assert len(examples) == 4 and sum(e["error"] is not None for e in examples) == 1
    assert any("larger than" in (e["error"] or "") for e in examples)
    assert all(e["tokens_in"] >= 0 and e["tokens_out"] >= 0 and (e["cost"] or 0) >= 0 for e in examples)
    with sqlite3.connect(project / ".promptkit" / "runs.db") as db:
        status, = db.execute("SELECT status FROM runs").fetchone()
        rows = [json.loads(r) for r, in db.execute("SELECT data FROM results")]
    assert status == "finished"
    assert all(r["tokens_in"] >= 0 and r["tokens_out"] >= 0 and (r["cost"] or 0) >= 0 for r in rows)


def test_concurrency_is_bounded(project: Path) -> None:
    """`-j 1000000` (or `concurrency: 1000000`) started a thread per request of a batch four times that size."""
    result = run_cli("eval", "sentiment@v1", "-m", "openai:gpt-4o-mini", "-j", "1000000", "--no-store", cwd=project,
                     env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-x"})
    assert result.returncode == 2 and "1000000" in result.stderr, result.stderr
    with pytest.raises(ValueError):
        OpenAIOptions(concurrency=1_000_000)
