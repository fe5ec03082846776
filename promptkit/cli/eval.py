"""promptkit eval: score a prompt on its suite."""

from __future__ import annotations

from pathlib import Path

import click

from promptkit.cli.common import console, err_console, progress_bar, project_of
from promptkit.evaluate import plan_eval, run_eval
from promptkit.providers import make_provider
from promptkit.report import write_json
from promptkit.report.terminal import confusion_table, metrics_table
from promptkit.runs import RunStore


@click.command("eval")
@click.argument("ref")
@click.option("--model", "-m", help="Model spec: smollm2, hf:PATH, a registered name, ... (default: the suite's).")
@click.option("--suite", help="Eval suite name or YAML file (default: the one naming the prompt).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), help="Score this JSONL/CSV file instead.")
@click.option("--split", help="Evaluate this split (default: the suite's; all rows with --data).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N examples.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON report here.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples per model batch.")
@click.option("--temperature", type=click.FloatRange(0, 2), help="Override the prompt's temperature.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Override the prompt's max_tokens.")
@click.option("--no-store", is_flag=True, help="Do not record the run in .promptkit/runs.db.")
@click.pass_context
def eval_command(ctx: click.Context, ref: str, model: str | None, suite: str | None, data: Path | None,
                 split: str | None, limit: int | None, output: Path | None, batch_size: int | None,
                 temperature: float | None, max_tokens: int | None, no_store: bool) -> None:
    """Score prompt REF (e.g. prompts/sentiment, sentiment@v2) on its eval suite."""
    project = project_of(ctx)
    version = project.library.resolve(ref)
    plan = plan_eval(
        project, version,
        suite=project.suite(suite) if suite else None,
        model=model, data=data, split=split, limit=limit,
        overrides={"temperature": temperature, "max_tokens": max_tokens},
    )
    options = dict(plan.model.options)
    if batch_size:
        options["batch_size"] = batch_size
    provider = make_provider(plan.model.provider, plan.model.model, **options)
    store = None if no_store else RunStore(project.runs_path)
    err_console.print(f"[dim]{plan.version.ref} ({plan.version.hash}) · suite {plan.suite.name} · "
                      f"{len(plan.examples)} examples · {plan.model.spec} · {plan.task} ({plan.scoring})[/dim]")
    with progress_bar(f"eval {plan.version.ref}") as progress:
        run = run_eval(plan, provider, store=store, progress=progress)
    provider.close()
    console.print(metrics_table(run))
    matrix = confusion_table(run)
    if matrix is not None:
        console.print(matrix)
    failed = sum(r.error is not None for r in run.results)
    if failed:
        first = next(r for r in run.results if r.error is not None)
        err_console.print(f"[yellow]{failed} example(s) failed; first: {first.error}[/yellow]")
    if output is not None:
        write_json(run, output)
        err_console.print(f"report: {output}")
    if run.run_id:
        err_console.print(f"[dim]run {run.run_id} recorded in {project.runs_path}[/dim]")
