"""`promptkit check` as a library: pick suites (gate.select), evaluate each prompt's working copy
(gate.run), compare it with the suite's absolute thresholds and its blessed baseline (gate.decide),
and report (gate.results): 0 pass, 1 regression, 2 error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from promptkit.config import line_of, read_text
from promptkit.errors import ConfigError, PromptkitError, did_you_mean
from promptkit.gate.baseline import (
    Baseline,
    baseline_path,
    load_baseline,
    mean_metrics,
    outcomes_of,
    paired_scores,
    rebless_hint,
    stale_reasons,
)
from promptkit.gate.decide import MAX_FLIPPED, SHARE_KINDS, MetricCheck, compare_outcomes, decide
from promptkit.gate.results import ERROR, FAIL, NEW, STALE, CheckReport, SuiteCheck
from promptkit.gate.run import Providers, deterministic, evaluate
from promptkit.gate.select import changed_since as select_changed
from promptkit.gate.select import select
from promptkit.gate.thresholds import Thresholds
from promptkit.project import Project, Suite
from promptkit.results import EvalRun

__all__ = ["check_suite", "run_check"]


def _describe(run: EvalRun, example_id: str) -> dict[str, Any]:
    result = next(r for r in run.results if r.id == example_id)
    text = " ".join(str(v) for v in result.input.values())
    return {"id": example_id, "index": result.index, "input": text[:120], "expected": result.expected}


def compare(project: Project, runs: list[EvalRun], baseline: Baseline | None, thresholds: Thresholds,
            alpha: float, check: SuiteCheck) -> None:
    """Fill `check` with the absolute threshold checks and, with a baseline, the paired comparisons."""
    metrics = mean_metrics(runs)
    check.metrics = metrics
    _check_drop_names(runs[0], thresholds)
    outcomes = outcomes_of(runs)
    # direction and kind come from the metric classes, carried on the run's values
    directions = {m.name: m.higher_is_better is not False for m in runs[0].metrics}
    kinds = {m.name: m.kind for m in runs[0].metrics}
    for name, kind, limit in thresholds.limits():
        value = metrics.get(name)
        if value is None and name.startswith("latency_") and "latency" in runs[0].plan.metric_names:
            # every example came from the cache: nothing was timed, so there is nothing to hold to the limit
            check.notes.append(f"{name} not checked: every example came from the response cache, so latency was not "
                               "measured (--no-cache to time the model)")
            continue
        if value is None:
            check.checks.append(MetricCheck(name, kind, False, None, limit,
                                            message=f"{name} is not computed by this suite: add its metric to 'metrics:'"))
            continue
        ok = value >= limit if kind == "min" else value <= limit
        word = "below the minimum" if kind == "min" else "above the maximum"
        measured = next((m.note for m in runs[0].metrics if m.name == name and m.note), None)
        message = f"{name} {value:.4g}" + ("" if ok else f" is {word} {limit:.4g}") + (f" ({measured})" if measured else "")
        check.checks.append(MetricCheck(name, kind, ok, value, limit, message=message, percent=kinds.get(name) in SHARE_KINDS))
    check.flaky = [{"id": k, "correct": v["correct"], **_describe(runs[0], k)} for k, v in outcomes.items()
                   if v["correct"] is not None and 0 < v["correct"] < 1]
    if baseline is None:
        return
    plan = runs[0].plan
    by_id = {r.id: r for r in runs[0].results}
    scored = paired_scores(runs[0].metrics)
    comparisons, notes = compare_outcomes(
        baseline.outcomes, outcomes, list(metrics), scored, plan.labels,
        {k: r.expected for k, r in by_id.items()},
        f1_comparable=baseline.repeat == 1 and len(runs) == 1,
        direction=lambda name: directions.get(name, True), kind=kinds.get, level=1 - alpha)
    for c in comparisons:
        c.flipped = sorted((_flipped_row(runs[0], baseline, outcomes, k, c.metric, c.metric in scored)
                            for k in c.worse_ids[:MAX_FLIPPED]),
                           key=lambda r: r["index"])
    if not comparisons and not set(baseline.outcomes) & set(outcomes):
        # a baseline that cannot be compared is an error, never a pass
        raise ConfigError(f"the baseline shares no example with this run ({len(baseline.outcomes)} in the baseline, "
                          f"{len(outcomes)} now): it cannot be compared", where=str(baseline_path(project, plan.suite)),
                          hint="re-bless it with 'promptkit baseline bless' if the dataset changed on purpose")
    judged = [k for k, v in outcomes.items() if v["correct"] is not None and k in baseline.outcomes]
    if "accuracy" in metrics and judged and all(baseline.outcomes[k].get("correct") is None for k in judged):
        # outcomes nulled in the file: nothing would be compared, and the check would pass
        raise ConfigError(f"the baseline has no outcome ('correct') for any of the {len(judged)} examples judged now: "
                          "it cannot be compared", where=str(baseline_path(project, plan.suite)),
                          hint="re-bless it with 'promptkit baseline bless'")
    check.checks += decide(comparisons, thresholds, alpha)
    check.notes += notes


def _check_drop_names(run: EvalRun, thresholds: Thresholds) -> None:
    """A per-metric `max_drop` must name a value the suite computes: a look-alike name ('f1' for
    'f1_macro', 'acuracy') would otherwise be ignored and its metric held to no drop at all."""
    if not isinstance(thresholds.max_drop, dict):
        return
    known = [m.name for m in run.metrics]
    for name in thresholds.max_drop:
        if name not in known:
            path = run.plan.suite.path
            line = line_of(read_text(path), ("thresholds", "max_drop", name))
            raise ConfigError(f"thresholds.max_drop names {name!r}, which this suite does not compute",
                              where=f"{path}:{line}" if line else str(path), hint=did_you_mean(name, known))


def _flipped_row(run: EvalRun, baseline: Baseline, outcomes: dict[str, dict[str, Any]], example_id: str,
                 metric: str, by_score: bool) -> dict[str, Any]:
    before, now = baseline.outcomes[example_id], outcomes[example_id]
    row = {**_describe(run, example_id), "before": before.get("prediction"), "after": now.get("prediction")}
    if by_score:  # the per-example value compared (exact_match's own 0/1, not `correct`)
        row["score_before"] = (before.get("scores") or {}).get(metric)
        row["score_now"] = (now.get("scores") or {}).get(metric)
    else:
        row["correct_before"], row["correct_now"] = before.get("correct"), now.get("correct")
    return row


def check_suite(project: Project, suite: Suite, selector: str | None, providers: Providers, alpha: float | None = None,
                repeat: int = 1, store: Any | None = None, limit: int | None = None,
                cache: Any | None = None) -> SuiteCheck:
    check = SuiteCheck(suite.name, repeat=repeat)
    try:
        folder, _ = project.library.folder(suite.config.prompt)
        # the working copy is what a change edits; a folder with only published versions checks its current one
        version = folder.resolve(selector or ("working" if folder.working_file.is_file() else None))
        check.prompt, check.prompt_hash = version.ref, version.hash
        thresholds = suite.config.thresholds or Thresholds()
        level = alpha if alpha is not None else thresholds.alpha
        path = baseline_path(project, suite)
        baseline = load_baseline(path)
        runs = evaluate(project, version, suite, providers, repeat, store, limit, cache)
        plan = runs[0].plan
        hits = sum(r.cached for run in runs for r in run.results)
        if hits:
            total = sum(len(run.results) for run in runs)
            check.notes.append(f"{hits} of {total} examples from the response cache (decoding is deterministic; "
                               "--no-cache to call the model for all)")
        elif cache is not None and not deterministic(plan):
            check.notes.append("sampled decoding (temperature > 0): the response cache is not used")
        check.model, check.examples = plan.model.spec, len(plan.examples)
        check.run_ids = [r.run_id for r in runs if r.run_id]
        if repeat > 1 and not plan.decoding.get("temperature"):
            check.notes.append("--repeat with temperature 0: the repeats decode greedily and agree")
        if baseline is not None:
            check.baseline = {"path": str(path), "prompt": baseline.prompt, "prompt_hash": baseline.prompt_hash,
                              "model": baseline.model, "blessed": baseline.blessed, "metrics": baseline.metrics}
            check.stale = stale_reasons(project, baseline, plan)
        compare(project, runs, None if check.stale else baseline, thresholds, level, check)
        if check.failures:
            check.status = FAIL
        elif check.stale:
            check.status = STALE
            check.notes.append(rebless_hint(suite))
        elif baseline is None:
            check.status = NEW
            check.notes.append(f"no baseline: bless one with 'promptkit baseline bless {suite.config.prompt}'")
    except PromptkitError as e:
        check.status, check.error = ERROR, str(e)
    return check


def run_check(project: Project, targets: Sequence[str] = (), changed_since: str | None = None, alpha: float | None = None,
              repeat: int = 1, store: Any | None = None, limit: int | None = None, providers: Providers | None = None,
              cache: Any | None = None, on_suite: Callable[[SuiteCheck], None] | None = None) -> CheckReport:
    selected = select(project, targets)
    skipped: list[str] = []
    if changed_since:
        selected, skipped = select_changed(project, selected, changed_since)
    own = providers is None
    providers = providers or Providers()
    report = CheckReport([], alpha, skipped)
    try:
        for suite, selector in selected:
            result = check_suite(project, suite, selector, providers, alpha, repeat, store, limit, cache)
            report.suites.append(result)
            if on_suite:
                on_suite(result)
    finally:
        if own:
            providers.close()
    return report
