"""promptkit eval: score a prompt on its suite (or several prompts/models side by side)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from promptkit.cache import ResponseCache
from promptkit.cli.common import FiniteFloat, console, err_console, progress_bar, project_of
from promptkit.cli.runs import print_comparison
from promptkit.compare import compare, side_of_run
from promptkit.config import check_not_input, check_writable
from promptkit.errors import ConfigError, NotFoundError
from promptkit.estimate import estimate_run
from promptkit.evaluate import EvalPlan, RunFailed, plan_eval, resolve_scoring, run_eval
from promptkit.judges import Judge
from promptkit.judges.pairwise import judge_pairs, write_preferences
from promptkit.project import Project
from promptkit.providers import Provider
from promptkit.providers.factory import open_provider
from promptkit.report import write_report
from promptkit.report.data import json_text, write_text
from promptkit.report.terminal import confusion_table, metrics_table, safe_markup
from promptkit.results import EvalRun, RunPlan
from promptkit.runs import RunStore, check_resumable

LATEST = "latest"
REPORT_SUFFIXES = (".json", ".jsonl", ".csv", ".html", ".htm")


@click.command("eval")
@click.argument("refs", nargs=-1, required=True)
@click.option("--model", "-m", "models", multiple=True,
              help="Model spec: smollm2, hf:PATH, a registered name, ... (default: the suite's). Repeat to compare.")
@click.option("--suite", help="Eval suite name or YAML file (default: the one naming the prompt).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), help="Score this JSONL/CSV file instead.")
@click.option("--split", help="Evaluate this split (default: the suite's; all rows with --data).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N examples.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a report here: .json, .jsonl, .csv or .html (a comparison's JSON when several runs are compared).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples handed to the model per call (hf: see forward_batch).")
@click.option("--concurrency", "-j", type=click.IntRange(1, 256), help="Requests in flight at once (API providers), 1 to 256.")
@click.option("--temperature", type=FiniteFloat(0, 2), help="Override the prompt's temperature.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Override the prompt's max_tokens.")
@click.option("--no-store", is_flag=True, help="Do not record the run in .promptkit/runs.db.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache (.promptkit/cache.db).")
@click.option("--resume", is_flag=False, flag_value=LATEST, default=None, metavar="[ID]",
              help="Continue an interrupted run (default: the latest unfinished run of the same plan).")
@click.option("--force", is_flag=True, help="With --resume: take the run over even if it looks still running.")
@click.option("--estimate", is_flag=True, help="Print tokens and money the run will take, call no model, and exit.")
@click.option("--max-cost", type=FiniteFloat(min=0), metavar="DOLLARS",
              help="Stop before the run's spending would cross this; the run stays resumable.")
@click.option("--judge", metavar="MODEL",
              help="Judge model: grades llm-rubric/factuality assertions; with two runs, judges them pairwise.")
@click.option("--preferences", type=click.Path(dir_okay=False, path_type=Path),
              help="Pairwise judging: write the preference pairs here (default .promptkit/preferences/A-vs-B.jsonl).")
@click.pass_context
def eval_command(ctx: click.Context, refs: tuple[str, ...], models: tuple[str, ...], suite: str | None,
                 data: Path | None, split: str | None, limit: int | None, output: Path | None,
                 batch_size: int | None, concurrency: int | None, temperature: float | None,
                 max_tokens: int | None, no_store: bool, no_cache: bool, resume: str | None,
                 estimate: bool, max_cost: float | None, force: bool, judge: str | None,
                 preferences: Path | None) -> None:
    """Score prompt REFS (e.g. prompts/sentiment, sentiment@v2) on their eval suite.

    Several refs and/or several --model print one side-by-side comparison."""
    project = project_of(ctx)
    if judge is not None and not judge.strip():
        raise ConfigError("--judge is empty", hint="give a model spec, e.g. --judge openai:gpt-4o-mini")
    if preferences is not None:
        check_writable(preferences, "--preferences")
    plans: list[EvalPlan] = []
    for ref in refs:
        version = project.library.resolve(ref)
        for model in models or (None,):
            plans.append(plan_eval(
                project, version,
                suite=project.suite(suite) if suite else None,
                model=model, data=data, split=split, limit=limit,
                overrides={"temperature": temperature, "max_tokens": max_tokens}, judge=judge,
            ))
    pairwise = None
    if judge is not None and len(plans) == 2:
        pairwise = Judge.resolve(judge, project, "--judge", plans[0].prices)
        if preferences is None:  # the default path too is checked before both runs, not after them
            preferences = _default_preferences(plans, project)
            check_writable(preferences, "--preferences")
    elif preferences is not None:
        raise ConfigError("--preferences is written by pairwise judging", hint="compare two prompts or models with --judge MODEL")
    if output is not None:  # before any model call: a bad path or format must not cost a run
        _check_output(output, plans)
    _notes(plans, temperature, concurrency)
    if resume is not None and len(plans) > 1:
        raise ConfigError("--resume continues one run", hint="resume each prompt/model separately")
    if force and resume is None:
        raise ConfigError("--force only goes with --resume", hint="add --resume [ID]")
    if resume is not None and no_store:
        raise ConfigError("--resume needs the run store", hint="drop --no-store")
    cache = None
    if not no_cache:
        cache = ctx.with_resource(ResponseCache(project.state_dir / "cache.db"))
    store = None if no_store else ctx.with_resource(RunStore(project.runs_path))

    if estimate:
        for plan in plans:
            _print_estimate(plan, _provider(plan, batch_size, concurrency, project), cache, store)
        return

    runs: list[EvalRun] = []
    for plan in plans:
        provider = _provider(plan, batch_size, concurrency, project)
        run_id = _resume_id(store, plan, resume, force) if store is not None and resume is not None else None
        try:
            resolve_scoring(plan, provider, cache)  # the header names the scoring that will really run
        except BaseException:
            provider.close()
            raise
        if plan.scoring_note:
            err_console.print(f"[yellow]note: scoring {plan.scoring}, not {plan.scoring_asked}: "
                              f"{safe_markup(plan.scoring_note)}[/yellow]", soft_wrap=True)
        console.print(f"[dim]{safe_markup(plan.version.ref)} ({plan.version.hash}) · suite {safe_markup(plan.suite.name)} · "
                          f"{len(plan.examples)} examples · {safe_markup(plan.model.spec)} · {plan.task} ({plan.scoring})"
                          f"{' · resuming ' + run_id if run_id else ''}[/dim]")
        try:
            with progress_bar(f"eval {safe_markup(plan.version.ref)} · {safe_markup(plan.model.spec)}") as progress:
                run = run_eval(plan, provider, store=store, run_id=run_id, progress=progress, cache=cache,
                               max_cost=max_cost, force=force)
        finally:
            provider.close()
            if plan.checks is not None:
                plan.checks.close()  # the assertions' judge model
        runs.append(run)
        _print_run(run, project, show=len(plans) == 1 and run.status != "failed")
        if run.status == "failed":
            raise RunFailed(f"run of {plan.version.ref} on {plan.model.spec} failed: {run.extra.get('stopped')}",
                            hint=f"recorded as failed in {project.runs_path}" if run.run_id else None)
    if len(runs) > 1:

        comparison = compare([side_of_run(r, _side_name(r, runs)) for r in runs])
        print_comparison(comparison)
        summary = comparison.to_dict()
        if pairwise is not None:
            summary["pairwise"] = _judge_pairwise(runs, pairwise, cache, preferences, project)
        if output is not None:
            write_text(output, json_text(summary, indent=2))
            err_console.print(f"comparison: {output}", markup=False)
    elif output is not None:
        write_report(runs[0], output)
        err_console.print(f"report: {output}", markup=False)


def _check_output(output: Path, plans: list[EvalPlan]) -> None:
    suffix = output.suffix.lower()
    if len(plans) > 1 and suffix != ".json":
        raise ConfigError("a comparison of several runs is written as JSON", where=str(output),
                          hint="name the file .json, or write one report per run")
    if suffix not in REPORT_SUFFIXES:
        raise ConfigError(f"unknown report format {output.suffix or '(no suffix)'!r}", where=str(output),
                          hint="name the file .json, .jsonl, .csv or .html")
    check_writable(output)
    check_not_input(output, {f"the dataset being scored ({plan.data_path})": plan.data_path for plan in plans})


def _notes(plans: list[EvalPlan], temperature: float | None, concurrency: int | None) -> None:
    """Say when an option has no effect, rather than ignore it silently."""
    if temperature is not None and any(p.task == "classification" and p.scoring == "loglik" for p in plans):
        err_console.print("[yellow]note: --temperature has no effect on log-likelihood scoring "
                          "(labels are scored, not sampled)[/yellow]", soft_wrap=True)
    if concurrency is not None and any(p.model.provider != "openai" for p in plans):
        err_console.print("[yellow]note: -j/--concurrency applies to API models only; a local model runs one "
                          "batch at a time (use --batch-size)[/yellow]", soft_wrap=True)


def _provider(plan: EvalPlan, batch_size: int | None, concurrency: int | None, project: Project) -> Provider:
    return open_provider(plan.model, project, batch_size=batch_size, concurrency=concurrency)


def _resume_id(store: RunStore, plan: EvalPlan, resume: str, force: bool = False) -> str:
    if resume == LATEST:
        record = store.latest_unfinished(plan.hash)
        if record is None:
            raise NotFoundError(f"no unfinished run of {plan.version.ref} on {plan.model.spec} with these settings",
                                where=str(store.path), hint="see 'promptkit runs list'; drop --resume to start anew")
    else:
        record = store.run(resume)
        if record.plan_hash != plan.hash:
            raise ConfigError(f"run {record.id} was made with other settings (prompt, data, model, its options "
                              "or decoding)", where=str(store.path),
                              hint=f"repeat its command: promptkit runs show {record.id}")
    check_resumable(record, force)  # checked again, atomically, when run_eval claims the run
    return record.id


def _print_estimate(plan: EvalPlan, provider: Provider, cache: Any, store: RunStore | None) -> None:
    est = estimate_run(plan, provider, cache=cache, store=store)
    console.print(f"[bold]{safe_markup(plan.version.ref)} on {safe_markup(plan.model.spec)}[/bold]: {est.examples} examples"
                  f" ({est.cached} cached)")
    console.print(f"  tokens in:  {est.tokens_in:,}")
    console.print(f"  tokens out: {est.tokens_out:,} (from {est.out_basis.replace('_', ' ')})")
    console.print(f"  cost:       ${est.cost:.6f} at ${est.price_in:g}/${est.price_out:g} per 1M tokens in/out")
    console.print(f"  to spend:   ${est.to_spend:.6f} (uncached examples)")


def _side_name(run: EvalRun, runs: list[EvalRun]) -> str:
    return _plan_name(run.plan, [r.plan for r in runs])


def _plan_name(plan: RunPlan, plans: Sequence[RunPlan]) -> str:
    refs = {p.version.ref for p in plans}
    models = {p.model.spec for p in plans}
    parts = ([plan.version.ref] if len(refs) > 1 or len(models) == 1 else []) + \
        ([plan.model.spec] if len(models) > 1 else [])
    return " · ".join(parts)


def _default_preferences(plans: Sequence[RunPlan], project: Project) -> Path:
    """.promptkit/preferences/A-vs-B.jsonl, its name cut (and told apart by a hash) to stay under the
    file-name limit when the sides are long model paths."""
    a, b = (_plan_name(p, plans) for p in plans)
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in f"{a}-vs-{b}")
    if len(safe.encode()) > 200:
        digest = hashlib.sha256(safe.encode()).hexdigest()[:12]
        safe = safe.encode()[:180].decode("utf-8", "ignore") + "-" + digest
    return project.state_dir / "preferences" / f"{safe}.jsonl"


def _print_run(run: EvalRun, project: Project, show: bool) -> None:
    if show:
        console.print(metrics_table(run))
        matrix = confusion_table(run)
        if matrix is not None:
            console.print(matrix)
    failed = sum(r.error is not None for r in run.results)
    if failed:
        first = next(r for r in run.results if r.error is not None)
        err_console.print(f"[yellow]{failed} example(s) failed; first: {safe_markup(first.error)}[/yellow]")
    hits = run.extra.get("cache_hits", 0)
    err_console.print(f"[dim]{hits} of {len(run.results)} from the cache · ${run.extra.get('spent', 0):.6f} spent[/dim]")
    if run.status == "interrupted":
        err_console.print(f"[yellow]stopped before crossing --max-cost ${run.extra.get('max_cost')}: "
                          f"{len(run.results)} of {len(run.plan.examples)} examples done; "
                          f"continue with --resume {run.run_id or ''}[/yellow]")
    if run.run_id:
        err_console.print(f"[dim]run {run.run_id} recorded in {safe_markup(project.runs_path)}[/dim]")


def _judge_pairwise(runs: list[EvalRun], judge: Any, cache: Any, preferences: Path | None, project: Project) -> dict[str, Any]:
    a, b = runs
    try:
        with progress_bar(f"pairwise judging · {safe_markup(judge.ref.spec)}") as progress:
            progress(0, len(a.results))
            result = judge_pairs(a, b, judge, cache)
            progress(len(a.results), len(a.results))
    finally:
        judge.close()
    path = preferences or _default_preferences([a.plan, b.plan], project)
    written = write_preferences(result, path)
    console.print(f"[bold]pairwise[/bold] judged by {safe_markup(judge.ref.spec)} (both orders): {safe_markup(result.a)} wins "
                  f"{result.count('a')}, {safe_markup(result.b)} wins {result.count('b')}, ties {result.count('tie')}, "
                  f"judge errors {result.count('error')}"
                  f"{', skipped ' + str(result.count('skipped')) if result.count('skipped') else ''}; "
                  f"sign test p={result.p_value:.3g}")
    err_console.print(f"[dim]{written} preference pairs: {safe_markup(path)} · judge spent ${judge.spent:.6f}[/dim]")
    return result.to_dict()
