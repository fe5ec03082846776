"""promptkit baseline: bless a prompt's suite results as the committed baseline; show baselines."""

from __future__ import annotations

import click

from promptkit.cli.common import console, err_console, project_of
from promptkit.errors import PromptkitError
from promptkit.gate.baseline import baseline_path, bless, load_baseline
from promptkit.runs import RunStore


@click.group("baseline")
def baseline() -> None:
    """Blessed baselines under evals/baselines/, compared against by `promptkit check`."""


@baseline.command("bless")
@click.argument("ref")
@click.option("--suite", help="Eval suite name or YAML file (default: the one naming the prompt).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="Runs per example (sampled decoding).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N examples.")
@click.option("--no-store", is_flag=True, help="Do not record the run in .promptkit/runs.db.")
@click.pass_context
def bless_command(ctx: click.Context, ref: str, suite: str | None, repeat: int, limit: int | None, no_store: bool) -> None:
    """Evaluate prompt REF (default version: production, else newest) and write evals/baselines/<suite>.json."""
    project = project_of(ctx)
    store = None if no_store else ctx.with_resource(RunStore(project.runs_path))
    result, path = bless(project, ref, suite, repeat=repeat, store=store, limit=limit)
    parts = [f"{len(result.outcomes)} examples", *headline(result.metrics, extra=("tokens_per_example",))]
    console.print(f"blessed {result.prompt} ({result.prompt_hash}) on {result.model}: {', '.join(parts)}",
                  markup=False, soft_wrap=True)
    err_console.print(f"wrote {path}: commit it", markup=False, soft_wrap=True)


# The metrics a one-line summary names, when the baseline has them (classification, then generation).
HEADLINE = ("accuracy", "f1_macro", "exact_match", "relevance", "rouge_l", "bleu")


def headline(metrics: dict[str, float], extra: tuple[str, ...] = ()) -> list[str]:
    """'name value' for each headline metric present: never an empty field."""
    return [f"{k} {metrics[k]:.4g}" for k in (*HEADLINE, *extra) if k in metrics]


@baseline.command("show")
@click.pass_context
def show_command(ctx: click.Context) -> None:
    """List each suite's baseline: prompt, model, metrics (no model is run)."""
    project = project_of(ctx)
    problems: list[str] = []
    for suite in project.suites():
        try:
            found = load_baseline(baseline_path(project, suite))
        except PromptkitError as e:  # one damaged baseline marks its suite, the others are still listed
            problems.append(str(e))
            console.print(f"{suite.name}: BROKEN", markup=False, soft_wrap=True)
            continue
        if found is None:
            console.print(f"{suite.name}: no baseline", markup=False, soft_wrap=True)
            continue
        parts = [f"{len(found.outcomes)} examples", *headline(found.metrics)]
        if found.blessed:
            parts.append(f"blessed {found.blessed}")
        console.print(f"{suite.name}: {found.prompt} ({found.prompt_hash}) on {found.model}, {', '.join(parts)}",
                      markup=False, soft_wrap=True)
    for problem in problems:  # each damaged file is one error line, and the exit code says so (2)
        err_console.print(f"error: {problem}", markup=False, soft_wrap=True, highlight=False)
    if problems:
        ctx.exit(2)
