"""The starlette app behind `promptkit view`: runs, run, compare, prompt and review pages."""

from __future__ import annotations

import hmac
import itertools
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, PackageLoader
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from promptkit.errors import PromptkitError
from promptkit.library.diff import diff_versions
from promptkit.project import Project
from promptkit.report.format import fmt, fmt_interval
from promptkit.report.html import CSS as REPORT_CSS
from promptkit.report.html import JS as REPORT_JS
from promptkit.report.html import esc, run_body, run_meta
from promptkit.report.run_view import metric_of, prompt_renderer, view_of_record
from promptkit.runs import RunStore, process_alive
from promptkit.tune.plateau import plateau, primary_metric
from promptkit.view import compare_view
from promptkit.view.charts import ChartPoint, version_chart
from promptkit.view.queries import FILTERS, Queries, RunFilter, main_metric
from promptkit.view.reviews import ReviewStore, jsonl, label_records, pair_sides, preference_records

COOKIE = "promptkit_view_token"
INLINE_PROMPTS = 300  # runs up to this size show every rendered prompt inline
MAX_FORM = 64 * 1024  # bytes of a posted review form
MAX_COMPARE = 12  # runs on one compare page
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class ViewConfig:
    project: Project
    token: str
    read_only: bool = False
    # Host header names answered; None: any (bound to every interface). Checked so that a web page whose
    # name is re-pointed at 127.0.0.1 (DNS rebinding) cannot read the runs as a page of its own origin.
    hosts: frozenset[str] | None = LOOPBACK_NAMES


def host_name(header: str) -> str:
    """The name in a Host header, without its port: 'LocalHost:8080' -> 'localhost', '[::1]:8080' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]")[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def allowed_hosts(bind: str) -> frozenset[str] | None:
    """The Host header names answered when bound to `bind`: this machine's and its own; any for every interface."""
    name = host_name(bind)
    return None if name in ("0.0.0.0", "::", "") else LOOPBACK_NAMES | {name}


class HostCheck:
    """Answers 400 to a request whose Host header names none of `hosts`."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.hosts is not None \
                and host_name(Headers(scope=scope).get("host", "")) not in self.hosts:
            response = PlainTextResponse("unknown Host header: open the URL `promptkit view` printed", 400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def new_token() -> str:
    return secrets.token_urlsafe(18)


def _env() -> Environment:
    env = Environment(loader=PackageLoader("promptkit.view", "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["fmt"] = lambda value, name="", unit="": fmt(name, value, unit)
    env.globals.update(fmt_interval=fmt_interval, report_css=Markup(REPORT_CSS))
    return env


def create_app(config: ViewConfig) -> Starlette:
    project = config.project
    RunStore(project.runs_path).close()  # creates an empty store so a fresh project opens
    if not config.read_only:
        ReviewStore(project.runs_path).close()  # the reviews table exists before the read-only connection opens
    env = _env()
    queries = Queries(project.runs_path)

    def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        can_write = not config.read_only and _authorised(request, config)
        html = env.get_template(template).render(request=request, read_only=config.read_only, can_write=can_write,
                                                 token=config.token if can_write else "", **context)
        response = HTMLResponse(html, status_code)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        given = request.query_params.get("token")
        if given and hmac.compare_digest(given, config.token):
            response.set_cookie(COOKIE, config.token, httponly=True, samesite="strict")
        return response

    def store() -> RunStore:
        return RunStore(project.runs_path)

    async def runs_page(request: Request) -> Response:
        q = request.query_params
        try:
            number = int(q.get("page", "1"))
        except ValueError:
            number = 1
        f = RunFilter(q.get("prompt", ""), q.get("model", ""), q.get("suite", ""), q.get("status", ""), number,
                      q.get("dataset", ""))
        result = queries.list_runs(f)
        counts = queries.counts([r.id for r in result.runs])
        rows = []
        for run in result.runs:
            s = run.settings
            main = main_metric(run)
            cost = run.metric("cost_total")
            rows.append({"id": run.id, "prompt": s.get("prompt"), "model": s.get("model"), "suite": s.get("suite"),
                         "dataset": Path(str(s.get("dataset") or "-")).name, "split": s.get("split") or "-",
                         "status": _status(run), "main": f"{main[0]} {fmt(main[0], main[1])}" if main else "-",
                         "cost": fmt("cost_total", cost, "$") if cost is not None else "-",
                         "examples": f"{counts.get(run.id, 0)}/{s.get('examples')}",
                         "created": run.created.replace("T", " ")[:19]})
        filters = {k: getattr(f, k) for k in FILTERS}

        def link(page_number: int) -> str:
            return "?" + urlencode({**{k: v for k, v in filters.items() if v}, "page": page_number})

        return page(request, "runs.html", keys=FILTERS, rows=rows, result=result, filters=filters, link=link, title="Runs")

    def run_and_results(run_id: str) -> tuple[Any, list[Any]]:
        s = store()
        try:
            record = s.run(run_id)
            return record, s.results(record.id)
        finally:
            s.close()

    async def run_page(request: Request) -> Response:
        record, results = run_and_results(request.path_params["run_id"])
        render = prompt_renderer(project, record.settings)
        view = view_of_record(record, results, render if len(results) <= INLINE_PROMPTS else None)
        if len(results) > INLINE_PROMPTS:  # rendering every prompt would slow a big run's page: one page per example
            view.example_link = lambda r: f"/runs/{record.id}/examples/{r.index + 1}"
        view.status = _status(record)
        q = request.query_params
        body = Markup(run_body(view, q.get("q", ""), q.get("outcome", "all")))  # escaped by the report layer
        others = [r for r in queries.list_runs(RunFilter(suite=str(record.settings.get("suite") or ""))).runs
                  if r.id != record.id][:20]
        return page(request, "run.html", record=record, meta=Markup(run_meta(view)), body=body, title=view.title,
                    others=others)

    async def example_page(request: Request) -> Response:
        record, results = run_and_results(request.path_params["run_id"])
        number = int(request.path_params["number"])
        result = next((r for r in results if r.index + 1 == number), None)
        if result is None:
            raise HTTPException(404, f"run {record.id} has no example {number}")
        render = prompt_renderer(project, record.settings)
        return page(request, "example.html", record=record, r=result, prompt=render(result) if render else None,
                    title=f"Example {number} of {record.id}")

    async def compare_page(request: Request) -> Response:
        run_ids = request.query_params.getlist("run")
        if request.query_params.get("order") == "oldest":  # ticked on the runs list, which is newest first
            run_ids.reverse()
        if len(run_ids) < 2:
            return page(request, "message.html", 400, title="Compare", message="pick two or more runs to compare "
                        "(tick them on the runs page)")
        if len(run_ids) > MAX_COMPARE:  # each run's results are read and rendered while other requests wait
            return page(request, "message.html", 400, title="Compare",
                        message=f"pick at most {MAX_COMPARE} runs to compare, not {len(run_ids)}")
        s = store()
        try:
            view = compare_view.build(project, s, run_ids)
        finally:
            s.close()
        show = request.query_params.get("show", "flipped")
        rows = [r for r in view.rows if r.flipped] if show == "flipped" else view.rows
        return page(request, "compare.html", view=view, rows=rows[:1000], hidden=max(0, len(rows) - 1000), show=show,
                    run_ids=run_ids, title="Compare", query=urlencode([("run", r.id) for r in view.records]))

    async def prompts_page(request: Request) -> Response:
        names = project.library.names()
        return page(request, "prompts.html", names=names, title="Prompts")

    async def prompt_page(request: Request) -> Response:

        name = request.path_params["name"]
        if name not in project.library.names():
            raise HTTPException(404, f"no prompt {name!r}")
        folder, _ = project.library.folder(name)
        versions = folder.versions()
        labels: dict[str, list[str]] = {}
        for label, target in folder.labels().items():
            labels.setdefault(str(target), []).append(label)
        diffs = [(old, new, diff_versions(old, new)) for old, new in itertools.pairwise(versions)]
        verdict, chart, note = None, "", ""
        runs = queries.runs_of_prompt(name)
        models = list(dict.fromkeys(str(r.settings.get("model")) for r in runs))
        model = request.query_params.get("model") or (models[0] if models else "")
        try:
            suite = project.suite_for(versions[-1] if versions else folder.working())
            metric = primary_metric(suite)
            chart = version_chart(version_points(runs, suite, model, metric), f"{metric} · {model}")
            verdict = plateau(project, name, suite, model=model or None)
        except PromptkitError as e:
            note = str(e)
        derived = {model: entry for model, entry in project.models.entries().items()
                   if str(entry.get("prompt", "")).split("@")[0] == name}
        return page(request, "prompt.html", name=name, models=models, model=model,
                    versions=versions, labels=labels, diffs=diffs, verdict=verdict,
                    chart=Markup(chart), note=note, derived=derived, runs=runs[:50], title=f"Prompt {name}")

    async def review_page(request: Request) -> Response:
        q = request.query_params
        a, b = q.get("a", ""), q.get("b", "")
        if not a:
            return page(request, "message.html", 400, title="Review", message="open a review from a run or a comparison")
        s = store()
        try:
            rec_a = s.run(a)
            res_a = s.results(rec_a.id)
            rec_b = s.run(b) if b else None
            res_b = {r.id: r for r in s.results(rec_b.id)} if rec_b else {}
        finally:
            s.close()
        reviews = ReviewStore(project.runs_path) if not config.read_only else None
        done = reviews.done("pair" if rec_b else "label", rec_a.id, rec_b.id if rec_b else None) if reviews else {}
        if reviews:
            reviews.close()
        only_diff, blind = q.get("all") != "1", q.get("blind") != "0"
        todo = [r for r in res_a if r.id not in done and (not rec_b or r.id in res_b)
                and (not rec_b or not only_diff or res_b[r.id].output != r.output)]
        example = todo[0] if todo else None
        sides = []
        if example and rec_b:
            # Blind by default: a reviewer who knows which output is the baseline judges it differently, and these
            # judgments become preference training data. So no names, and about half the examples show B on the left.
            shown = {"a": (rec_a, example), "b": (rec_b, res_b[example.id])}
            order = pair_sides(example.id, rec_a.id, rec_b.id) if blind else ("a", "b")
            for n, (name, run) in enumerate(zip(("left", "right"), order, strict=True), 1):
                rec, result = shown[run]
                sides.append({"name": name, "label": str(n) if blind else run.upper(), "output": result.output,
                              "title": f"Output {n}" if blind else f"{run.upper()} · {_names(rec)}"})
        ids = (rec_a.id, rec_b.id if rec_b else None)
        links = {"all": review_url(*ids, everything=only_diff, blind=blind),
                 "blind": review_url(*ids, everything=not only_diff, blind=not blind)}
        # Run A's rendered prompt would hint which output is A's, unless both runs share the prompt version.
        render_a = prompt_renderer(project, rec_a.settings)
        if rec_b and blind and rec_a.settings.get("prompt") != rec_b.settings.get("prompt"):
            render_a = None
        return page(request, "review.html", rec_a=rec_a, rec_b=rec_b, example=example, sides=sides, blind=blind,
                    prompt=render_a(example) if example and render_a else None, left=len(todo), done=len(done),
                    tally=Counter(done.values()), names={"a": _names(rec_a), "b": _names(rec_b) if rec_b else ""},
                    links=links, labels=rec_a.settings.get("labels") or [], title="Review", all=not only_diff)

    async def review_submit(request: Request) -> Response:
        if config.read_only:
            raise HTTPException(403, "the view runs --read-only: reviews are off")
        refused = HTTPException(403, "reviews need the token printed when `promptkit view` started (open its URL)")
        if not _authorised(request, config):  # before reading the body: a stranger's upload is never buffered
            raise refused
        # Forms post urlencoded; parsed here so starlette's form support (python-multipart) is not needed.
        form = {k: v[0] for k, v in parse_qs((await _form_body(request)).decode("utf-8", "replace")).items()}
        if not hmac.compare_digest(str(form.get("token", "")), config.token):
            raise refused
        a, b = str(form.get("a", "")), str(form.get("b", "")) or None
        example, choice, blind = str(form.get("example", "")), str(form.get("choice", "")), form.get("blind") != "0"
        kind = "pair" if b else "label"
        if b:  # the page posts the side it showed; which run that was is worked out again here, never sent
            if choice not in ("left", "right", "tie"):
                raise HTTPException(400, f"a pair review picks left, right or tie, not {choice!r}")
            order = pair_sides(example, a, b) if blind else ("a", "b")
            choice = {"left": order[0], "right": order[1]}.get(choice, choice)
        check_review(a, b, example, choice)
        reviews = ReviewStore(project.runs_path)
        try:
            reviews.add(kind, example, a, choice, b, str(form.get("note", "")) or None)
        except PromptkitError as e:
            raise HTTPException(400, str(e)) from None
        finally:
            reviews.close()
        return RedirectResponse(review_url(a, b, everything=form.get("all") == "1", blind=blind), status_code=303)

    def check_review(a: str, b: str | None, example: str, choice: str) -> None:
        """A judgment names stored runs by their full ids, an example both have and, if any, one of run A's labels."""
        if b is not None and a == b:
            raise HTTPException(400, "a pair review compares two different runs")
        s = store()
        try:
            ids = [a] if b is None else [a, b]
            records = [s.run(run_id) for run_id in ids]
            for run_id, record in zip(ids, records, strict=True):
                if record.id != run_id:  # s.run also finds a run by part of its id
                    raise HTTPException(400, f"no run {run_id[:80]!r}: a review names its runs by their full ids")
            if not all(any(r.id == example for r in s.results(record.id)) for record in records):
                raise HTTPException(400, f"no example {example[:80]!r} in the reviewed run(s)")
        except PromptkitError as e:
            raise HTTPException(400, str(e)) from None
        finally:
            s.close()
        labels = records[0].settings.get("labels")
        if choice.startswith("label:") and isinstance(labels, list) and choice[6:] not in map(str, labels):
            raise HTTPException(400, f"{choice[6:80]!r} is not one of run {a}'s labels")

    async def export(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind == "preferences.jsonl":
            text = jsonl(preference_records(project))
        elif kind == "labels.jsonl":
            text = jsonl(label_records(project))
        else:
            raise HTTPException(404)
        return PlainTextResponse(text, media_type="application/x-ndjson",
                                 headers={"Content-Disposition": f'attachment; filename="{kind}"'})

    async def report_script(request: Request) -> Response:
        # the static report's filter script, served as a file so that the pages allow no inline script
        return Response(REPORT_JS, media_type="text/javascript", headers={"X-Content-Type-Options": "nosniff"})

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
        return page(request, "message.html", status, title="Not found" if status == 404 else "Error", message=detail)

    async def promptkit_error(request: Request, exc: Exception) -> Response:
        return page(request, "message.html", 404, title="Not found", message=str(exc))

    routes = [
        Route("/", runs_page), Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/examples/{number:int}", example_page), Route("/compare", compare_page),
        Route("/prompts", prompts_page), Route("/prompts/{name}", prompt_page),
        Route("/review", review_page), Route("/review", review_submit, methods=["POST"]),
        Route("/export/{kind}", export), Route("/static/report.js", report_script),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found, PromptkitError: promptkit_error},
                     middleware=[Middleware(HostCheck, hosts=config.hosts)])


async def _form_body(request: Request) -> bytes:
    """The posted form, refused (413) past MAX_FORM bytes whatever Content-Length claims."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM):
        raise HTTPException(413, f"a review form is at most {MAX_FORM} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_FORM:
            raise HTTPException(413, f"a review form is at most {MAX_FORM} bytes")
    return bytes(data)


def version_points(runs: list[Any], suite: Any, model: str, metric: str) -> list[ChartPoint]:
    """Per published version, the newest finished run on the suite's split with this model: its score and interval."""
    chosen: dict[int, Any] = {}
    for run in runs:  # newest first
        s = run.settings
        ref = str(s.get("prompt", ""))
        number = ref.rsplit("@v", 1)[-1] if "@v" in ref else ""
        if (run.status != "finished" or not number.isdigit() or s.get("suite") != suite.name or s.get("model") != model
                or s.get("split") != suite.config.split or run.metric(metric) is None):
            continue
        chosen.setdefault(int(number), run)
    points = []
    for n, run in sorted(chosen.items()):
        m = metric_of(next(e for e in run.metrics if e["name"] == metric))
        points.append(ChartPoint(f"v{n}", m.value, m.low, m.high, f"/runs/{run.id}"))
    return points


def review_url(a: str, b: str | None, everything: bool, blind: bool) -> str:
    """/review of these runs, keeping `all=1` (identical outputs too) and `blind=0` (names shown)."""
    extra = {**({"all": "1"} if everything else {}), **({"blind": "0"} if b and not blind else {})}
    return "/review?" + urlencode({"a": a, **({"b": b} if b else {}), **extra})


def _names(record: Any) -> str:
    return f"{record.settings.get('prompt')} · {record.settings.get('model')}"


def _authorised(request: Request, config: ViewConfig) -> bool:
    given = request.cookies.get(COOKIE) or request.query_params.get("token") or ""
    return bool(given) and hmac.compare_digest(given, config.token)


def _status(run: Any) -> str:
    if run.status == "running" and not process_alive(run):
        return "killed (resumable)"
    return str(run.status)


__all__ = ["ViewConfig", "allowed_hosts", "create_app", "esc", "new_token"]
