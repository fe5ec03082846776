"""`promptkit check` as a library: pick suites, evaluate each prompt's working copy, compare it with
the suite's absolute thresholds and its blessed baseline, and decide: 0 pass, 1 regression, 2 error."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptkit.errors import ConfigError, PromptkitError
from promptkit.gate.baseline import (
    Baseline,
    baseline_path,
    compared_metrics,
    load_baseline,
    make_baseline,
    mean_metrics,
    outcomes_of,
    rebless_hint,
    stale_reasons,
    write_baseline,
)
from promptkit.gate.decide import MAX_FLIPPED, SHARE_KINDS, MetricCheck, compare_outcomes, decide
from promptkit.gate.thresholds import Thresholds

if TYPE_CHECKING:
    from promptkit.evaluate import EvalPlan, EvalRun
    from promptkit.library import PromptVersion
    from promptkit.models import ModelRef
    from promptkit.project import Project, Suite
    from promptkit.providers import Provider

PASS, FAIL, STALE, ERROR, NEW = "pass", "fail", "stale", "error", "no baseline"

__all__ = ["CheckReport", "MetricCheck", "SuiteCheck", "bless", "run_check"]


@dataclass
class SuiteCheck:
    suite: str
    prompt: str = ""
    prompt_hash: str = ""
    model: str = ""
    examples: int = 0
    repeat: int = 1
    status: str = PASS
    checks: list[MetricCheck] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None  # path, prompt, prompt_hash, blessed
    stale: list[str] = field(default_factory=list)
    flaky: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[MetricCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [c.to_dict() for c in self.checks]
        return data


@dataclass
class CheckReport:
    suites: list[SuiteCheck]
    alpha: float | None = None
    skipped: list[str] = field(default_factory=list)  # suites not selected by --changed-since

    @property
    def exit_code(self) -> int:
        if any(s.status == FAIL for s in self.suites):
            return 1
        if any(s.status in (STALE, ERROR) for s in self.suites):
            return 2
        return 0

    @property
    def status(self) -> str:
        return {0: PASS, 1: FAIL, 2: ERROR}[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "alpha": self.alpha, "skipped": self.skipped,
                "suites": [s.to_dict() for s in self.suites]}


# -- selecting suites ---------------------------------------------------------------------------

def changed_files(root: Path, ref: str) -> set[str]:
    """Paths (relative to `root`) changed since git REF, uncommitted and untracked files included."""
    def git(*args: str) -> list[str]:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            raise ConfigError(f"cannot run git: {e}", hint="--changed-since needs git") from None
        if out.returncode != 0:
            raise ConfigError(f"git {' '.join(args)} failed: {out.stderr.strip() or out.returncode}",
                              where=str(root), hint="give a commit, branch or tag that exists (fetch it in CI)")
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]

    return set(git("diff", "--name-only", "--relative", ref, "--")) | set(git("ls-files", "--others", "--exclude-standard"))


def suite_inputs(project: Project, suite: Suite) -> list[str]:
    """Files and folders (relative to the project) whose change affects a suite."""
    root = project.root.resolve()
    paths = [suite.path, project.library.root / suite.config.prompt, suite.dataset_path(), baseline_path(project, suite)]
    out = []
    for p in paths:
        try:
            out.append(Path(p).resolve().relative_to(root).as_posix())
        except ValueError:
            continue
    return out


def select(project: Project, targets: Sequence[str]) -> list[tuple[Suite, str | None]]:
    """(suite, prompt selector) for each target: a suite name or file, or a prompt ref
    (all suites naming it; a ref with @selector checks that version instead of the working copy)."""
    suites = project.suites()
    if not targets:
        return [(s, None) for s in suites]
    chosen: list[tuple[Suite, str | None]] = []
    for target in targets:
        path = Path(target)
        is_file = path.suffix in (".yaml", ".yml")
        by_name = [s for s in suites if s.name == target or (is_file and s.path.resolve() == path.resolve())]
        if by_name:
            chosen += [(s, None) for s in by_name]
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file():
            chosen.append((project.suite(target), None))
            continue
        folder, selector = project.library.folder(target)  # NotFoundError names the prompt
        naming = [s for s in suites if s.config.prompt == folder.name]
        if not naming:
            raise ConfigError(f"no eval suite names prompt {folder.name!r}", where=str(project.evals_dir),
                              hint=f"add evals/{folder.name}.yaml with 'prompt: {folder.name}'")
        chosen += [(s, selector) for s in naming]
    unique: dict[str, tuple[Suite, str | None]] = {}
    for suite, selector in chosen:
        unique.setdefault(suite.name, (suite, selector))
    return list(unique.values())


# -- running ------------------------------------------------------------------------------------

class Providers:
    """One provider per model for the whole check, so a local model loads once."""

    def __init__(self, factory: Callable[[ModelRef, Project], Provider] | None = None):
        from promptkit.providers import open_provider

        self.factory = factory or open_provider
        self.cache: dict[str, Provider] = {}

    def get(self, ref: ModelRef, project: Project) -> Provider:
        """The provider for a resolved model, opened with the project (its price table, its registry)."""
        key = repr((ref.provider, ref.model, sorted(ref.options.items(), key=str)))
        if key not in self.cache:
            self.cache[key] = self.factory(ref, project)
        return self.cache[key]

    def close(self) -> None:
        for provider in self.cache.values():
            provider.close()
        self.cache.clear()


def deterministic(plan: EvalPlan) -> bool:
    """Whether the same request always gets the same answer: label log-likelihood scoring or greedy decoding."""
    return plan.scoring == "loglik" or not plan.decoding.get("temperature")


def evaluate(project: Project, version: PromptVersion, suite: Suite, providers: Providers, repeat: int = 1,
             store: Any | None = None, limit: int | None = None, cache: Any | None = None) -> list[EvalRun]:
    """Run a suite `repeat` times (seeds 0..repeat-1 when repeating, for sampled decoding). The
    response cache is used only where decoding is deterministic, so a cached answer is the answer."""
    from promptkit.evaluate import plan_eval, run_eval

    runs = []
    for i in range(max(1, repeat)):
        plan = plan_eval(project, version, suite=suite, limit=limit, overrides={"seed": i} if repeat > 1 else None)
        provider = providers.get(plan.model, project)
        runs.append(run_eval(plan, provider, store=store, cache=cache if deterministic(plan) else None))
    return runs


def bless(project: Project, ref: str, suite_name: str | None = None, repeat: int = 1, store: Any | None = None,
          limit: int | None = None, providers: Providers | None = None) -> tuple[Baseline, Path]:
    """Evaluate prompt REF (by default its production/newest version) and write its suite's baseline."""
    version = project.library.resolve(ref)
    suite = project.suite(suite_name) if suite_name else project.suite_for(version)
    own = providers is None
    providers = providers or Providers()
    try:
        runs = evaluate(project, version, suite, providers, repeat, store, limit)
    finally:
        if own:
            providers.close()
    baseline = make_baseline(project, runs)
    path = baseline_path(project, suite)
    write_baseline(path, baseline)
    return baseline, path


def _describe(run: EvalRun, example_id: str) -> dict[str, Any]:
    result = next(r for r in run.results if r.id == example_id)
    text = " ".join(str(v) for v in result.input.values())
    return {"id": example_id, "index": result.index, "input": text[:120], "expected": result.expected}


def compare(project: Project, runs: list[EvalRun], baseline: Baseline | None, thresholds: Thresholds,
            alpha: float, check: SuiteCheck) -> None:
    """Fill `check` with the absolute threshold checks and, with a baseline, the paired comparisons."""
    metrics = mean_metrics(runs)
    check.metrics = metrics
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
    comparisons, notes = compare_outcomes(
        baseline.outcomes, outcomes, list(metrics), compared_metrics(list(metrics)), plan.labels,
        {k: r.expected for k, r in by_id.items()},
        f1_comparable=baseline.repeat == 1 and len(runs) == 1,
        direction=lambda name: directions.get(name, True), kind=kinds.get, level=1 - alpha)
    for c in comparisons:
        c.flipped = sorted((_flipped_row(runs[0], baseline, outcomes, k, c.metric) for k in c.worse_ids[:MAX_FLIPPED]),
                           key=lambda r: r["index"])
    if not comparisons and not set(baseline.outcomes) & set(outcomes):
        # a baseline that cannot be compared is an error, never a pass
        raise ConfigError(f"the baseline shares no example with this run ({len(baseline.outcomes)} in the baseline, "
                          f"{len(outcomes)} now): it cannot be compared", where=str(baseline_path(project, plan.suite)),
                          hint="re-bless it with 'promptkit baseline bless' if the dataset changed on purpose")
    check.checks += decide(comparisons, thresholds, alpha)
    check.notes += notes


def _flipped_row(run: EvalRun, baseline: Baseline, outcomes: dict[str, dict[str, Any]], example_id: str,
                 metric: str) -> dict[str, Any]:
    before, now = baseline.outcomes[example_id], outcomes[example_id]
    row = {**_describe(run, example_id), "before": before.get("prediction"), "after": now.get("prediction")}
    if metric in compared_metrics([metric]):  # the per-example value compared (exact_match's own 0/1, not `correct`)
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
        changed = changed_files(project.root, changed_since)
        kept = []
        for suite, selector in selected:
            inputs = suite_inputs(project, suite)
            if any(c == p or c.startswith(p.rstrip("/") + "/") for c in changed for p in inputs):
                kept.append((suite, selector))
            else:
                skipped.append(suite.name)
        selected = kept
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
