"""One self-contained HTML report: metrics with 95% intervals, cost, confusion matrix, a latency
histogram (inline SVG), settings and lineage, and a filterable per-example table (a few lines of
inline JS). No external assets; every piece of user text is escaped.

The sections render a RunView (promptkit.report.run_view), so `promptkit view` shows a run with
exactly these functions (`run_body`) and the static report and the app never drift."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

from promptkit.metrics.usage import latency_samples
from promptkit.report.format import fmt, fmt_interval
from promptkit.report.run_view import RunView, view_of_run
from promptkit.results import EvalRun, ExampleResult, MetricValue
from promptkit.stats import percentile


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def interval_svg(m: MetricValue, width: int = 160, height: int = 16) -> str:
    """A track with the 95% interval as a bar and the value as a dot."""
    if m.low is None or m.high is None or not all(map(math.isfinite, (m.low, m.high, m.value))):
        return ""
    top = 1.0 if m.unit == "" and -1 <= m.low and m.high <= 1 else max(m.high, m.value, 1e-12) * 1.25
    bottom = min(0.0, m.low)
    span = (top - bottom) or 1.0

    def x(v: float) -> float:
        return 4 + (width - 8) * (v - bottom) / span

    return (f'<svg class="ci" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<title>{esc(fmt(m.name, m.low, m.unit, m.kind))} – {esc(fmt(m.name, m.high, m.unit, m.kind))}</title>'
            f'<line x1="4" x2="{width - 4}" y1="8" y2="8" stroke="#e2e8f0" stroke-width="4"/>'
            f'<line x1="{x(m.low):.1f}" x2="{x(m.high):.1f}" y1="8" y2="8" stroke="#93c5fd" stroke-width="6"/>'
            f'<circle cx="{x(m.value):.1f}" cy="8" r="4" fill="#1d4ed8"/></svg>')


def metrics_section(run: RunView) -> str:
    rows = []
    for m in run.metrics:
        arrow = "" if m.higher_is_better is None else "↑ higher is better" if m.higher_is_better else "↓ lower is better"
        interval = fmt_interval(m.name, m.low, m.high, m.unit, m.kind)
        if m.value != m.value:  # NaN: a stored metric without a value
            continue
        note = f'<div class="note">{esc(m.note)}</div>' if m.note else ""
        value = fmt(m.name, m.value, m.unit, m.kind)
        rows.append(f'<tr><td class="name">{esc(m.name)}{note}</td><td class="num value">{esc(value)}</td>'
                    f'<td class="num">{esc(interval)}</td><td>{interval_svg(m)}</td><td>{esc(m.interval or "")}</td>'
                    f'<td class="num">{esc(m.n if m.n is not None else "")}</td><td class="dir">{esc(arrow)}</td></tr>')
    return ('<section><h2>Metrics</h2><table class="metrics"><thead><tr><th>metric</th><th>value</th>'
            '<th>95% interval</th><th></th><th>method</th><th>n</th><th>direction</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


def cost_section(run: RunView) -> str:
    results = run.results
    n = max(1, len(results))
    cost = sum(r.cost for r in results if _finite(r.cost))
    cards = [
        ("cost", fmt("cost_total", cost, "$")),
        ("per example", fmt("cost_per_example", cost / n, "$")),
        ("tokens in", f"{sum(r.tokens_in for r in results):,}"),
        ("tokens out", f"{sum(r.tokens_out for r in results):,}"),
        ("cache hits", f"{sum(r.cached for r in results):,} of {len(results):,}"),
        ("failed", f"{sum(r.error is not None for r in results):,}"),
    ]
    body = "".join(f'<div class="card"><div class="label">{esc(k)}</div><div class="big">{esc(v)}</div></div>'
                   for k, v in cards)
    return f'<section><h2>Cost and usage</h2><div class="cards">{body}</div></section>'


def confusion_section(run: RunView) -> str:
    if not run.confusion:
        return ""
    columns = list(next(iter(run.confusion.values())))
    if not any(row.get("(none)") for row in run.confusion.values()):
        columns = [c for c in columns if c != "(none)"]
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    rows = []
    for expected, row in run.confusion.items():
        total = sum(row.values()) or 1
        cells = []
        for c in columns:
            share = row.get(c, 0) / total
            colour = "22,163,74" if c == expected else "220,38,38"
            cells.append(f'<td class="num" style="background:rgba({colour},{0.08 + 0.6 * share:.2f})">{row.get(c, 0)}</td>')
        rows.append(f'<tr><th>{esc(expected)}</th>{"".join(cells)}</tr>')
    return ('<section><h2>Confusion matrix</h2><p class="note">rows: expected · columns: predicted</p>'
            f'<table class="confusion"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def histogram_svg(values: Sequence[float], bins: int = 20, width: int = 640, height: int = 250) -> str:
    """Histogram of latencies (seconds, drawn in ms) with p50 and p95 marked."""
    ms = [v * 1000 for v in values]
    lo, hi = min(ms), max(ms)
    if hi - lo < 1e-9:
        pad = max(abs(lo) * 0.5, 1e-6)
        lo, hi = max(0.0, lo - pad), hi + pad
    counts = [0] * bins
    for v in ms:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    left, right, top, bottom = 48, 16, 34, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(counts)
    bar_w = plot_w / bins
    parts = [f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="latency histogram">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#64748b"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#64748b"/>']
    for i, c in enumerate(counts):
        h = plot_h * c / peak if peak else 0
        parts.append(f'<rect x="{left + i * bar_w + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" '
                     f'height="{h:.1f}" fill="#3b82f6"><title>{lo + i * (hi - lo) / bins:.3g}–'
                     f'{lo + (i + 1) * (hi - lo) / bins:.3g} ms: {c}</title></rect>')
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        x = left + plot_w * k / 4
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{v:.3g}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">latency (ms)</text>')
    parts.append(f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>'
                 f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>')
    for row, (q, colour) in enumerate(((50, "#16a34a"), (95, "#dc2626"))):
        v = percentile(ms, q)
        x = left + plot_w * (v - lo) / (hi - lo)
        anchor = "end" if x > left + plot_w * 0.8 else "start"
        parts.append(f'<line x1="{x:.1f}" y1="{top - 2}" x2="{x:.1f}" y2="{top + plot_h}" stroke="{colour}" '
                     f'stroke-dasharray="4 3"/><text x="{x:.1f}" y="{10 + 12 * row}" fill="{colour}" '
                     f'text-anchor="{anchor}">p{q} {v:.3g} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


def _finite(value: object) -> bool:
    """A number that can be summed and drawn. A stored run keeps NaN and infinities (a provider plugin's) as
    null, so its results may hold None where a latency, cost or score was."""
    return isinstance(value, (int, float)) and math.isfinite(value * 1000)


def latency_section(run: RunView) -> str:
    timed = [r for r in run.results if _finite(r.latency)]
    times, kind = latency_samples(timed)  # the same samples as the latency metric
    lost = sum(not r.cached and not _finite(r.latency) for r in run.results)
    note = f"{lost} example(s) without a latency" if lost else ""
    if not times:
        body = f'<p class="note">latency n/a: {note or "every example came from the cache, nothing was timed"}</p>'
    else:
        unit = "batches" if kind.startswith("per batch") else "calls"
        body = f'<p class="note">{esc(kind)}: {len(times)} {unit} timed{"; " + note if note else ""}</p>' + \
            histogram_svg(times)
    return f'<section><h2>Latency</h2>{body}</section>'


def _status(correct: bool | None, error: str | None) -> str:
    if error is not None:
        return "error"
    return "n/a" if correct is None else "correct" if correct else "wrong"


def assertion_lines(outcomes: list[dict[str, Any]] | None) -> str:
    """One line per assertion: ✓/✗ (? for a judge error), its metric name and the reason."""
    marks = {True: "✓", False: "✗", None: "?"}
    return "\n".join(f"{marks[o.get('pass')]} {o['metric']}: {o.get('reason', '')}" for o in outcomes or [])


def _details(summary: str, text: str | None) -> str:
    if not text:
        return ""
    return f'<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>'


def _scores(r: ExampleResult, metric_values: dict[str, float]) -> str:
    parts = [f"{k} {fmt(k, v)}" for k, v in metric_values.items()]
    if r.scores:
        parts += [f"{k} {v:.3g}" if _finite(v) else f"{k} {v}" for k, v in r.scores.items()]
    return " · ".join(parts)


def examples_section(run: RunView, q: str = "", outcome: str = "all") -> str:
    """The per-example table; `q` and `outcome` preset the filter (and the URL hash keeps them: a permalink)."""
    scores = [{k: v for k, v in row.items() if k != "accuracy"} for row in run.example_metrics()]
    with_asserts = any(getattr(r, "assertions", None) for r in run.results)
    rows = []
    for r, row in zip(run.results, scores, strict=True):
        status = _status(r.correct, r.error)
        text_in = r.input.get("text") if len(r.input) == 1 and "text" in r.input else \
            "\n".join(f"{k}: {v}" for k, v in r.input.items())
        answer = r.output if r.prediction in (None, r.output) else f"{r.prediction}  ({r.output})"
        rendered = run.render_prompt(r) if run.render_prompt is not None else None
        more = f' <a class="example-link" href="{esc(run.example_link(r))}">rendered prompt</a>' \
            if run.example_link is not None else ""
        mark = {"correct": "✓", "wrong": "✗", "error": "error", "n/a": ""}[status]
        assert_cell = f'<td class="small text">{esc(assertion_lines(r.assertions))}</td>' if with_asserts else ""
        anchor = f"ex-{r.index + 1}"
        rows.append(
            f'<tr id="{anchor}" data-status="{status}" data-cached="{int(r.cached)}">'
            f'<td class="num"><a href="#{anchor}" title="{esc(r.id)}">{r.index + 1}</a></td>'
            f'<td class="text">{esc(text_in)}{_details("rendered prompt", rendered)}{more}</td>'
            f'<td class="text">{esc(r.expected)}</td>'
            f'<td class="text">{esc(answer)}</td><td class="status {status}">{esc(mark)}</td>'
            f'<td class="small">{esc(_scores(r, row))}</td>{assert_cell}<td class="num">{esc(fmt("latency", r.latency, "s"))}'
            f'{" (cached)" if r.cached else ""}</td><td class="num">{r.tokens_in}+{r.tokens_out}</td>'
            f'<td class="num">{esc(fmt("cost", r.cost, "$"))}</td><td class="text err">{esc(r.error)}</td></tr>')
    options = "".join(f'<option value="{v}"{" selected" if v == outcome else ""}>{label}</option>'
                      for v, label in (("all", "all"), ("correct", "correct"), ("wrong", "wrong"), ("error", "failed"),
                                       ("cached", "cached")))
    return ('<section><h2>Examples</h2><div class="filters">'
            f'<input id="q" type="search" placeholder="filter text…" aria-label="filter" value="{esc(q)}">'
            f'<select id="status" aria-label="outcome">{options}</select> '
            f'<span id="shown">{len(rows)}</span> of {len(rows)} shown</div>'
            '<table id="examples"><thead><tr><th>#</th><th>input</th><th>expected</th><th>output</th><th></th>'
            f'<th>metrics</th>{"<th>assertions</th>" if with_asserts else ""}'
            '<th>latency</th><th>tokens</th><th>cost</th><th>error</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


LINEAGE = ("prompt", "prompt_hash", "suite", "task", "scoring", "model", "provider", "base_model", "adapter",
           "dataset", "dataset_hash", "split", "examples", "labels", "decoding")


def plain(value: object) -> str:
    """Settings as people read them: no Python reprs."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    if (isinstance(value, str) and any(c in value for c in "\n\r\t")) or value == "":
        return json.dumps(value)  # a stop sequence such as "\n" stays visible
    return str(value)


def settings_section(run: RunView) -> str:
    keys = [k for k in LINEAGE if k in run.settings] + [k for k in run.settings if k not in LINEAGE]
    rows = [(k, run.settings[k]) for k in keys]
    rows += [("run", run.run_id or "not stored"), ("status", run.status), ("created", run.created), ("finished", run.finished)]
    rows += list(run.extra.items())
    body = "".join(f'<tr><th>{esc(k)}</th><td class="text">{esc(plain(v))}</td></tr>' for k, v in rows if v is not None)
    return f'<section><h2>Settings and lineage</h2><table class="settings">{body}</table></section>'


def run_body(run: RunView, q: str = "", outcome: str = "all") -> str:
    """Every section of a run, as the report and the app show it."""
    sections = [metrics_section(run), cost_section(run), confusion_section(run), latency_section(run),
                settings_section(run), examples_section(run, q, outcome)]
    return "".join(sections)


def run_meta(run: RunView) -> str:
    s = run.settings
    meta = [("prompt", f"{s.get('prompt')} ({s.get('prompt_hash')})"), ("model", s.get("model")), ("suite", s.get("suite")),
            ("task", f"{s.get('task')} ({s.get('scoring')})"), ("dataset", s.get("dataset")),
            ("examples", len(run.results)), ("run", run.run_id or "not stored")]
    return "".join(f"<span><b>{esc(k)}</b> {esc(v)}</span>" for k, v in meta)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1150px;
color:#0f172a;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
.meta{color:#475569}.meta span{margin-right:14px;display:inline-block}.note{color:#64748b;margin:2px 0 8px}
table{border-collapse:collapse}th,td{padding:4px 10px;border-bottom:1px solid #f1f5f9;text-align:left;vertical-align:top}
th{font-weight:600;color:#334155;background:#f8fafc}.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.metrics .value{font-weight:600}.dir{color:#64748b;font-size:12px}.ci{vertical-align:middle}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #e2e8f0;border-radius:8px;padding:10px 16px;min-width:130px}
.card .label{color:#64748b;font-size:12px}.card .big{font-size:20px;font-weight:600}
.confusion td{min-width:60px}.hist text{font-size:11px;fill:#334155}
.filters{margin:6px 0 10px}.filters input{padding:4px 8px;width:280px}.filters select{padding:4px}
#examples{width:100%;font-size:13px}#examples .text{white-space:pre-wrap;word-break:break-word;max-width:320px}
.settings th{width:140px}details summary{cursor:pointer;color:#475569;font-size:12px}
details pre{white-space:pre-wrap;background:#f8fafc;padding:6px;max-width:420px}tr:target{background:#fef9c3}
.small{font-size:12px;color:#475569}.status.correct{color:#16a34a}.status.wrong{color:#dc2626}.status.error,.err{color:#b45309}
"""

JS = """
(function(){var q=document.getElementById('q'),s=document.getElementById('status'),shown=document.getElementById('shown');
var rows=Array.prototype.slice.call(document.querySelectorAll('#examples tbody tr'));
function apply(){var t=q.value.toLowerCase(),st=s.value,n=0;rows.forEach(function(r){
var ok=(!t||r.textContent.toLowerCase().indexOf(t)>=0)&&
(st==='all'||r.dataset.status===st||(st==='cached'&&r.dataset.cached==='1'));
r.hidden=!ok;if(ok)n++;});shown.textContent=n;}
var h=location.hash.slice(1);if(h.indexOf('q=')===0||h.indexOf('outcome=')===0){var p=new URLSearchParams(h);
if(p.get('q')!==null)q.value=p.get('q');if(p.get('outcome'))s.value=p.get('outcome');}
function keep(){var p=new URLSearchParams();if(q.value)p.set('q',q.value);if(s.value!=='all')p.set('outcome',s.value);
var t=p.toString();history.replaceState(null,'',t?'#'+t:location.pathname+location.search);}
q.addEventListener('input',function(){apply();keep();});s.addEventListener('change',function(){apply();keep();});apply();})();
"""


def html_report(run: EvalRun | RunView) -> str:
    view = run if isinstance(run, RunView) else view_of_run(run)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; img-src data:\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{esc(view.title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(view.title)}</h1><div class=\"meta\">{run_meta(view)}</div>"
            f"{run_body(view)}<script>{JS}</script></body></html>\n")


__all__ = ["CSS", "JS", "histogram_svg", "html_report", "run_body", "run_meta"]
