"""promptkit optimize: search verbalizers, calibration, few-shot selection, instructions and style on a
validation set carved from training data; test the winner once; publish it as a new version."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from promptkit.cache import ResponseCache
from promptkit.cli.common import FiniteFloat, console, data_options, err_console, project_of
from promptkit.config import atomic_write, check_not_input, check_writable, read_text
from promptkit.errors import ConfigError
from promptkit.evaluate import plan_eval
from promptkit.library.spec import MAX_FEWSHOT_K
from promptkit.library.store import check_label
from promptkit.optimize import OptimizeOptions, optimize
from promptkit.providers.factory import open_provider
from promptkit.report.terminal import safe_markup
from promptkit.runs import RunStore

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$")


def parse_duration(text: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"--time-budget {text!r} is not a duration", hint="e.g. 90s, 10m, 1.5h")
    value, unit = float(match.group(1)), (match.group(2) or "s")[0]
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def read_instructions(path: Path) -> list[str]:
    """One instruction per paragraph (blank-line separated); '#' lines are comments."""
    text = read_text(path)
    blocks = [" ".join(line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#"))
              for block in re.split(r"\n\s*\n", text)]
    found = [b for b in blocks if b]
    if not found:
        raise ConfigError("no instructions in the file", where=str(path), hint="write one instruction per paragraph")
    for i, block in enumerate(found, start=1):
        if "{{" in block or "{%" in block or "{#" in block:
            raise ConfigError(f"instruction {i} contains template syntax", where=str(path),
                              hint="instructions are plain text; the task slot reads the variables")
    return found


class Display:
    """Rich progress on stderr: the phase, the candidate being scored, rows, ETA; plain lines when not a tty."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar: Any = None
        self.task: Any = None
        self.overall: Any = None
        self.label = ""
        if not quiet and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=True)

    def __enter__(self) -> Display:
        if self.bar is not None:
            self.bar.start()
            self.overall = self.bar.add_task("search (all candidates)", total=None)
            self.task = self.bar.add_task("", total=None)
        self.last = 0
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if self.quiet:
            return
        if kind == "phase":
            err_console.print(f"[bold]{safe_markup(info['name'])}[/bold]")
        elif kind == "candidate":
            self.label, self.last = f"{info['origin']} on {info['rows']} rows", 0
            if self.bar is None:
                err_console.print(f"  scoring {safe_markup(self.label)}")
        elif kind == "rows" and self.bar is not None:
            self.bar.update(self.task, description=self.label, completed=info["done"], total=info["total"])
            self.bar.advance(self.overall, max(0, info["done"] - self.last))  # ETA over the whole search
            self.last = info["done"]
        elif kind == "estimate":
            print_estimate(info)
            if self.bar is not None:
                self.bar.update(self.overall, total=info["search_calls"] + info["test_calls"])
        elif kind == "note":
            err_console.print(f"  {safe_markup(info['text'])}")


def leaderboard_table(result: Any) -> Table:
    table = Table(title="validation leaderboard (accuracy, 95% Wilson interval)", title_justify="left")
    for column in ("#", "candidate", "rows", "accuracy", "95% interval", "raw"):
        table.add_column(column, justify="right" if column not in ("candidate",) else "left")
    for i, row in enumerate(result.leaderboard[:20], start=1):
        name = row["origin"] + (" (current)" if row["current"] else "")
        table.add_row(str(i), name, str(row["rows"]), f"{row['accuracy']:.1%}",
                      f"{row['low']:.1%}-{row['high']:.1%}", f"{row['raw_accuracy']:.1%}")
    if len(result.leaderboard) > 20:
        table.caption = f"... {len(result.leaderboard) - 20} more in --output"
    return table


def print_estimate(est: dict[str, Any]) -> None:
    err_console.print(
        f"estimate: {est['candidates']} candidates on {est['validation_rows']} validation rows (slices "
        f"{', '.join(map(str, est['rungs']))}), {est['search_calls']:,} search calls, {est['proposer_calls']} proposer "
        f"call(s), {est['test_calls']:,} test calls, ~{est['tokens']:,} tokens, "
        f"${est['search_cost'] + est['test_cost']:.4f}, ~{est['minutes']:.1f} min (uncached)")


@click.command("optimize")
@click.argument("ref")
@click.option("--suite", help="Eval suite name or YAML file (default: the prompt's).")
@data_options(train="Labelled rows to search on (default: the suite's file, train split).",
              eval_="Test rows, scored once at the end (default: the suite's eval split).")
@click.option("--model", help="Model to optimize for (default: the suite's).")
@click.option("--rounds", type=click.IntRange(min=0), default=5, show_default=True, help="Proposer rounds.")
@click.option("--max-evals", type=click.IntRange(min=1), help="Stop the search after N model calls (cached are free).")
@click.option("--max-cost", type=FiniteFloat(min=0), help="Dollars for the whole run (the final test reserved).")
@click.option("--time-budget", help="Stop the search after this long, e.g. 10m.")
@click.option("--proposer", help="Model spec that proposes instruction rewrites, e.g. openai:gpt-4o-mini.")
@click.option("--instructions", type=click.Path(dir_okay=False, path_type=Path),
              help="Candidate instructions, one per paragraph.")
@click.option("--validation-size", type=click.IntRange(min=8), default=400, show_default=True,
              help="Validation rows carved from the training data.")
@click.option("--fewshot-k", default="4", show_default=True, help="Few-shot sizes to try, comma-separated (0: none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--label", help="Label the new version, only if its test gain is significant (p < 0.05).")
@click.option("--dry-run", is_flag=True, help="Print the estimate and stop.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run with the same settings.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write every candidate's scores as JSON.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.pass_context
def optimize_command(ctx: click.Context, ref: str, suite: str | None, train_data: Path | None,
                     eval_data: Path | None, model: str | None, rounds: int, max_evals: int | None,
                     max_cost: float | None, time_budget: str | None, proposer: str | None,
                     instructions: Path | None, validation_size: int, fewshot_k: str, seed: int,
                     label: str | None, dry_run: bool, resume: bool, output: Path | None, no_cache: bool,
                     quiet: bool) -> None:
    """Search prompt variations of REF on validation rows; publish the winner if it beats REF on test."""

    project = project_of(ctx)
    if output is not None:
        check_writable(output)
    if label is not None:
        check_label(label)  # before the search, not after it has published
    try:
        ks = tuple(int(k) for k in fewshot_k.split(",") if k.strip() and int(k) != 0)
    except ValueError:
        raise ConfigError(f"--fewshot-k {fewshot_k!r} is not a list of numbers", hint="e.g. --fewshot-k 4,8") from None
    if any(not 0 < k <= MAX_FEWSHOT_K for k in ks):
        raise ConfigError(f"--fewshot-k {fewshot_k!r}: each size must be 0 to {MAX_FEWSHOT_K}",
                          hint="e.g. --fewshot-k 4,8; 0 tries no few-shot examples")
    options = OptimizeOptions(rounds=rounds, max_evals=max_evals, max_cost=max_cost,
                              time_budget=parse_duration(time_budget) if time_budget else None, proposer=proposer,
                              instructions=read_instructions(instructions) if instructions else [],
                              validation_size=validation_size, fewshot_k=ks, seed=seed)
    version = project.library.resolve(ref)
    suite_obj = project.suite(suite) if suite else project.suite_for(version)

    plan = plan_eval(project, version, suite=suite_obj, model=model, data=eval_data)
    if output is not None:
        check_not_input(output, {"the training data": train_data, "the eval data": eval_data,
                                 "the instructions file": instructions, "the suite's dataset": plan.data_path,
                                 "the suite file": suite_obj.path})
    cache = None if no_cache else ctx.with_resource(ResponseCache(project.state_dir / "cache.db"))
    store = None if dry_run else ctx.with_resource(RunStore(project.runs_path))
    provider = open_provider(plan.model, project)
    proposer_provider = open_provider(proposer, project) if proposer else None
    try:
        with Display(quiet) as display:
            result = optimize(project, version, suite_obj, provider, options, train_data=train_data,
                              eval_data=eval_data, model=model, cache=cache,
                              store=store, proposer=proposer_provider,
                              resume=resume, dry_run=dry_run, label=label, event=display)
    finally:
        provider.close()
        if proposer_provider is not None:
            proposer_provider.close()
    if result.estimate and dry_run and quiet:
        print_estimate(result.estimate)
    if result.leaderboard:
        console.print(leaderboard_table(result))
    if result.test is not None:
        t = result.test
        console.print(f"test ({t.rows} rows): current {t.current:.1%}, winner {t.winner:.1%}; "
                      f"{t.winner_only} fixed, {t.current_only} broken, McNemar exact p={t.p_value:.2g}")
    stopped = f" [budget: {result.state.stopped_by}]" if result.state.stopped_by else ""
    console.print(f"{result.verdict}{stopped} · {result.state.evals} model calls, "
                  f"{result.state.seconds / 60:.1f} min search")
    if output is not None:
        atomic_write(output, json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
        err_console.print(f"report: {safe_markup(output)}")
