"""promptkit tune: escalate a plateaued prompt to fine-tuning (local LoRA or hosted OpenAI)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from promptkit.cli.common import FiniteFloat, console, data_options, err_console, project_of, seed_threads_options
from promptkit.errors import ConfigError
from promptkit.report.format import printable
from promptkit.report.terminal import safe_markup
from promptkit.stats import ALPHA
from promptkit.tune.base import TuneJob, check_model_name, tuners
from promptkit.tune.compare import compare_methods
from promptkit.tune.dpo import DpoTuner, load_pairs
from promptkit.tune.export import export_model
from promptkit.tune.hosted import cancel_job, job_status, list_jobs
from promptkit.tune.methods import method_of
from promptkit.tune.plateau import plateau
from promptkit.tune.trainset import TrainSet, build_trainset, check_prepared_overlap, eval_plan, load_trainset

# nan and inf pass every range check of a plain float, and 0 or less means no budget, beta or interval at all
POSITIVE = FiniteFloat(min=0, min_open=True)


class TuneGroup(click.Group):
    """`promptkit tune PROMPT ...` runs a job; `tune status|list|cancel` manage hosted jobs."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands:
            args = ["run", *args]
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=TuneGroup)
def tune() -> None:
    """Fine-tune when prompt edits stop paying off: `promptkit tune PROMPT --backend lora|openai`."""


def _print_estimate(estimate: Any) -> None:
    parts = [f"{estimate.examples} examples", f"{estimate.tokens:,} tokens x {estimate.epochs} epoch(s)"]
    if estimate.seconds is not None:
        parts.append(f"about {estimate.seconds / 60:.1f} min here")
    if estimate.cost is not None and estimate.backend != "lora":
        parts.append(f"about ${estimate.cost:.2f}")
    note = f" ({estimate.note})" if estimate.note else ""
    err_console.print(f"[bold]{estimate.backend}[/bold] on {safe_markup(estimate.model)}: {', '.join(parts)}{safe_markup(note)}")


def comparison_table(comparison: Any) -> Table:
    test = comparison.test
    table = Table(title=f"{comparison.before.plan.version.ref} on {len(comparison.after.results)} eval examples",
                  title_justify="left")
    for column in ("", "model", comparison.metric, "run"):
        table.add_column(column, justify="right" if column == comparison.metric else "left")
    for label, model, value, run_id in comparison.rows():
        table.add_row(label, model, f"{value:.1%}" if value is not None else "-", run_id or "-")
    table.caption = (f"paired McNemar: {test.b_only} fixed, {test.a_only} broken, p={test.p_value:.2g}"
                     f" ({'significant' if test.significant(ALPHA) else 'not significant'} at {ALPHA:g})")
    return table


@tune.command("run")
@click.argument("ref")
@click.option("--backend", type=click.Choice(["lora", "openai"]), default="lora", show_default=True,
              help="lora: train locally on the suite's hf model (any --method); openai: hosted fine-tuning.")
@click.option("--method", default="lora", show_default=True,
              help="lora, qlora, ia3, prompt-tuning, prefix-tuning, full (every weight: a model folder), or dpo "
                   "(preference pairs in --data; also hosted).")
@click.option("--beta", type=POSITIVE, help="DPO: how far the tuned model may move from the base (0.1).")
@click.option("--virtual-tokens", type=int, help="Virtual tokens of prompt-tuning / prefix-tuning (20).")
@click.option("--init-text", help="Text the prompt-tuning tokens start from ('' for random).")
@click.option("--force", is_flag=True, help="Tune even if the prompt has not plateaued.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before spending money (hosted).")
@click.option("--suite", help="Eval suite name or YAML file.")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help="A prepared chat JSONL training file (dpo: prompt, chosen, rejected JSONL).")
@data_options(train="A labelled dataset rendered through the prompt (default: the suite's file, train split).",
              train_split="Split of the training data (default: train; all rows of --train-data).",
              eval_="Evaluate on this file.",
              eval_split="Split evaluated (default: the suite's; all rows of --eval-data).", limits=True)
@click.option("--no-eval", is_flag=True, help="Skip the before/after evaluation.")
@click.option("--name", help="Registered model name (default: PROMPT-BACKEND).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint (lora).")
@click.option("--overwrite", is_flag=True, help="Replace an existing adapter of the same name.")
@click.option("--base-model", help="Model to tune (lora: the suite's hf model; openai: gpt-4o-mini-2024-07-18).")
@click.option("--r", "lora_r", type=int, help="LoRA rank (8).")
@click.option("--alpha", type=int, help="LoRA alpha (16).")
@click.option("--dropout", type=FiniteFloat(), help="LoRA dropout (0.05).")
@click.option("--target-modules", help="Comma-separated modules (q_proj,v_proj).")
@click.option("--lr", type=FiniteFloat(), help="Learning rate (3e-4).")
@click.option("--batch-size", type=int, help="Batch size (lora 8; openai auto).")
@click.option("--epochs", type=int, help="Epochs (lora 1; openai auto).")
@click.option("--patience", type=click.IntRange(min=1), help="Epochs without lower validation loss before stopping (1).")
@click.option("--max-steps", type=int, help="Stop after N optimizer steps.")
@click.option("--time-budget", type=POSITIVE, help="Seconds of training (with --search: of the whole search).")
@click.option("--search", is_flag=True, help="Successive halving over rank, lr, targets, epochs on the validation split.")
@click.option("--search-trials", type=int, help="Settings tried in the first --search round (8).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), help="Steps between resumable checkpoints (20).")
@seed_threads_options
@click.option("--suffix", help="Fine-tuned model suffix (openai).")
@click.option("--lr-multiplier", type=POSITIVE, help="Learning rate multiplier (openai).")
@click.option("--poll-interval", type=POSITIVE, help="Seconds between job polls (openai, 10).")
@click.option("--window", type=click.IntRange(min=1), default=3, show_default=True, help="Plateau: versions judged.")
@click.option("--margin", type=FiniteFloat(), default=0.01, show_default=True, help="Plateau: minimum gain (0.01 = 1 point).")
@click.pass_context
def run_tune(ctx: click.Context, ref: str, backend: str, method: str, beta: float | None, virtual_tokens: int | None,
             init_text: str | None, force: bool, yes: bool, suite: str | None, data: Path | None,
             train_data: Path | None, train_split: str | None, eval_data: Path | None, eval_split: str | None,
             eval_limit: int | None, limit: int | None, no_eval: bool, name: str | None, out: Path | None, resume: bool,
             overwrite: bool, base_model: str | None, lora_r: int | None, alpha: int | None, dropout: float | None,
             target_modules: str | None, lr: float | None, batch_size: int | None, epochs: int | None,
             patience: int | None, max_steps: int | None, time_budget: float | None, search: bool,
             search_trials: int | None, checkpoint_every: int | None,
             seed: int, threads: int | None, suffix: str | None,
             lr_multiplier: float | None, poll_interval: float | None, window: int, margin: float) -> None:
    """Fine-tune prompt REF's task: training data rendered exactly as the evals render it."""

    project = project_of(ctx)
    version = project.library.resolve(ref)
    the_suite = project.suite(suite) if suite else project.suite_for(version)
    if not force:
        verdict = plateau(project, version.name, the_suite, window=window, margin=margin, version=version)
        if not verdict.plateaued:
            err_console.print(f"{version.name} has not plateaued on suite {safe_markup(the_suite.name)} with model "
                              f"{safe_markup(verdict.model)}: {safe_markup(verdict.reason)}.")
            err_console.print("Keep improving the prompt (see 'promptkit status'), or pass --force to tune anyway.")
            ctx.exit(1)
        err_console.print(f"{version.name} has plateaued on suite {safe_markup(the_suite.name)} with model "
                          f"{safe_markup(verdict.model)}: {safe_markup(verdict.reason)}; tuning.")
    dpo = method == "dpo"
    if dpo:  # the preference file is the training data

        if data is None:
            raise ConfigError("--method dpo needs a preference file", hint="pass --data PREFS.jsonl (prompt, chosen, rejected)")

        pairs = load_pairs(data)  # every line checked before anything loads
        trainset = TrainSet([], {"dataset": f"{data} ({len(pairs)} preference pairs)"})
    elif data is not None:
        trainset = load_trainset(data, version.spec.prefix)
        check_prepared_overlap(trainset, eval_plan(project, version, the_suite, data=eval_data, split=eval_split))
    else:
        trainset = build_trainset(project, version, the_suite, train_data, train_split, eval_data, eval_split, limit)
    if backend == "lora" and not dpo:
        method_of(method)
        if search and method != "lora":
            raise ConfigError(f"--search explores LoRA settings; it does not apply to --method {method}",
                              hint="use --method lora with --search")
        if search and not time_budget:
            raise ConfigError("--search needs --time-budget SECONDS (the whole search's training time)",
                              hint="e.g. --time-budget 900")
    elif backend == "openai" and method not in ("lora", "dpo"):  # lora is the option's default
        raise ConfigError(f"--backend openai takes --method dpo or none, not {method!r}",
                          hint="local methods run with --backend lora")
    name = name or f"{version.name}-{method if backend == 'lora' else backend}"
    check_model_name(project, name)
    options: dict[str, Any] = {
        "method": method if backend == "lora" or dpo else None, "virtual_tokens": virtual_tokens,
        "preferences": str(data) if dpo else None, "beta": beta,
        "init_text": init_text,
        "base_model": base_model, "r": lora_r, "alpha": alpha, "dropout": dropout, "lr": lr, "batch_size": batch_size,
        "epochs": epochs, "patience": patience, "max_steps": max_steps, "time_budget": time_budget,
        "search": search or None, "search_trials": search_trials,
        "checkpoint_every": checkpoint_every, "seed": seed, "threads": threads,
        "suffix": suffix, "learning_rate_multiplier": lr_multiplier, "overwrite": overwrite,
        "target_modules": [m.strip() for m in target_modules.split(",")] if target_modules else None,
    }
    if poll_interval is not None:
        options["poll_interval"] = poll_interval
    options = {k: v for k, v in options.items() if v is not None}
    job = TuneJob(project, version, the_suite, trainset, name, out or project.state_dir / "adapters" / name, options,
                  eval_data=eval_data, eval_split=eval_split, eval_limit=eval_limit, evaluate=not no_eval, resume=resume,
                  confirm=lambda message: yes or click.confirm(message + ". Go on?", err=True, default=False),
                  notify=lambda message: err_console.print(message))
    if dpo and backend == "lora":
        tuner: Any = DpoTuner()
    else:
        tuner = tuners.get(backend)()
    if dpo:
        err_console.print(f"[dim]{version.ref} ({version.hash}) · {safe_markup(trainset.manifest['dataset'])}[/dim]")
    else:
        source = safe_markup(trainset.manifest.get("dataset"))
        err_console.print(f"[dim]{version.ref} ({version.hash}) · {len(trainset.rows)} training rows from "
                          f"{source} · dataset {trainset.manifest.get('dataset_hash')}[/dim]")
    _print_estimate(tuner.estimate(job))
    with _progress(backend) as progress:
        job.progress = progress
        result = tuner.run(job)
    console.print(f"tuned model: {result.model_spec} (registered as {result.model_name!r})", markup=False)
    if result.comparison is not None:
        console.print(comparison_table(result.comparison))


class _progress:
    """A rich progress bar fed by the tuner's events (a plain line now and then off a terminal)."""

    def __init__(self, backend: str):
        self.backend = backend
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err_console)
            self.bar.__enter__()
            self.task = self.bar.add_task(f"tune {self.backend}", total=None, info="")
        return self.update

    def update(self, event: Any) -> None:
        if hasattr(event, "total_steps"):
            info = f"loss {event.loss:.3f}" if event.loss is not None else ""
            if event.val_loss is not None:
                info += f" · val {event.val_loss:.3f}"
            info += f" · {event.tokens_per_s:.0f} tok/s"
            if self.bar is not None:
                self.bar.update(self.task, completed=event.step, total=event.total_steps, info=info)
            elif event.phase == "done":
                err_console.print(f"trained {event.step} step(s) in {event.epoch + 1} epoch(s): {info}")
            elif event.phase == "validate":
                err_console.print(f"epoch {event.epoch + 1} step {event.step}/{event.total_steps} (end of epoch): {info}")
            elif event.step % 10 == 0:
                err_console.print(f"epoch {event.epoch + 1} step {event.step}/{event.total_steps}: {info}")
        elif self.bar is not None:
            self.bar.update(self.task, info=f"{event.status} {event.message}"[:60])

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _hosted_options(base_url: str | None) -> dict[str, Any]:
    return {"base_url": base_url} if base_url else {}


@tune.command("status")
@click.argument("job_id")
@click.option("--base-url", help="API base URL (default OPENAI_BASE_URL).")
@click.pass_context
def status_command(ctx: click.Context, job_id: str, base_url: str | None) -> None:
    """Show a hosted fine-tuning job and its latest events."""

    current, events = job_status(project_of(ctx), job_id, _hosted_options(base_url))
    line = f"{current.id}: {current.status} · model {current.model} · fine-tuned {current.fine_tuned_model or '-'}"
    console.print(printable(line), markup=False)
    if current.error and getattr(current.error, "message", None):
        console.print(printable(f"error: {current.error.code}: {current.error.message}"), markup=False)
    for event in reversed(events):
        console.print(f"  {printable(event.message)}", markup=False)  # the API's text


@tune.command("list")
@click.option("--limit", default=20, show_default=True)
@click.option("--base-url", help="API base URL (default OPENAI_BASE_URL).")
@click.pass_context
def list_command(ctx: click.Context, limit: int, base_url: str | None) -> None:
    """List hosted fine-tuning jobs."""

    table = Table()
    for column in ("job", "status", "model", "fine-tuned model"):
        table.add_column(column)
    for job in list_jobs(project_of(ctx), _hosted_options(base_url), limit):
        table.add_row(job.id, job.status, job.model, job.fine_tuned_model or "-")
    console.print(table)


@tune.command("cancel")
@click.argument("job_id")
@click.option("--base-url", help="API base URL (default OPENAI_BASE_URL).")
@click.pass_context
def cancel_command(ctx: click.Context, job_id: str, base_url: str | None) -> None:
    """Cancel a hosted fine-tuning job."""

    job = cancel_job(project_of(ctx), job_id, _hosted_options(base_url))
    console.print(f"{job.id}: {job.status}")


def _interval(value: float | None, interval: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" + (f" [{interval[0]:.0%}, {interval[1]:.0%}]" if interval else "")


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 10 * 2**20 else f"{n / 1024:.0f} KB"


def methods_table(comparison: Any) -> Table:
    base = comparison.baseline
    table = Table(title=f"{comparison.prompt}: methods on one split ({base.test_n} test, {base.val_n} validation)",
                  title_justify="left")
    for column in ("method", "val acc", "test acc [95% CI]", "vs prompt", "train s", "tok/s", "adapter", "peak MB"):
        table.add_column(column, justify="left" if column == "method" else "right")
    table.add_row(f"prompt alone ({base.model})", f"{base.val_accuracy:.1%}" if base.val_accuracy is not None else "-",
                  _interval(base.test_accuracy, base.test_interval), "", "", "", "", "")
    for r in comparison.results:
        versus = (f"+{r.fixed}/-{r.broken} p={r.p_vs_prompt:.2g}" if r.p_vs_prompt is not None else "-")
        table.add_row(r.method + (" (reused)" if r.reused else ""),
                      f"{r.val_accuracy:.1%}" if r.val_accuracy is not None else "-",
                      _interval(r.test_accuracy, r.test_interval), versus, f"{r.seconds:.0f}", f"{r.tokens_per_s:.0f}",
                      _size(r.adapter_bytes), f"{r.peak_rss_mb:.0f}")
    table.caption = "vs prompt: examples fixed/broken against the prompt alone, two-sided McNemar"
    return table


@tune.command("compare")
@click.argument("ref")
@click.option("--methods", default="lora,ia3,prompt-tuning,prefix-tuning", show_default=True,
              help="Comma-separated local methods (lora, qlora, ia3, prompt-tuning, prefix-tuning, full).")
@click.option("--suite", help="Eval suite name or YAML file.")
@data_options(train="Labelled training data.", train_split="Split of the training data.",
              eval_="Evaluate on this file.", eval_split="Split evaluated.", limits=True)
@click.option("--name", help="Adapter name prefix (default: PROMPT-compare); each method is PREFIX-METHOD.")
@click.option("--max-steps", type=int, help="Optimizer steps per method.")
@click.option("--time-budget", type=POSITIVE, help="Seconds of training per method.")
@click.option("--epochs", type=int, help="Epochs per method (1).")
@click.option("--batch-size", type=int, help="Batch size (8).")
@seed_threads_options
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.pass_context
def compare_command(ctx: click.Context, ref: str, methods: str, suite: str | None, train_data: Path | None,
                    train_split: str | None, eval_data: Path | None, eval_split: str | None, eval_limit: int | None,
                    limit: int | None, name: str | None, max_steps: int | None, time_budget: float | None,
                    epochs: int | None, batch_size: int | None, seed: int, threads: int | None, as_json: bool) -> None:
    """Train several local methods on one split with one seed and budget, and compare them in one table."""
    import json

    chosen = list(dict.fromkeys(m.strip() for m in methods.split(",") if m.strip()))  # each method once, in order
    if not chosen:
        raise ConfigError("--methods names no method", hint="e.g. --methods lora,ia3")
    for method in chosen:
        method_of(method)
    project = project_of(ctx)
    version = project.library.resolve(ref)
    the_suite = project.suite(suite) if suite else project.suite_for(version)
    trainset = build_trainset(project, version, the_suite, train_data, train_split, eval_data, eval_split, limit)
    prefix = name or f"{version.name}-compare"  # not PROMPT-METHOD: `tune run`'s adapters stay untouched
    for method in chosen:
        check_model_name(project, f"{prefix}-{method}")
    options = {k: v for k, v in {"max_steps": max_steps, "time_budget": time_budget, "epochs": epochs,
                                 "batch_size": batch_size, "seed": seed, "threads": threads}.items() if v is not None}
    job = TuneJob(project, version, the_suite, trainset, prefix, project.state_dir / "adapters" / prefix, options,
                  eval_data=eval_data, eval_split=eval_split, eval_limit=eval_limit,
                  notify=lambda message: err_console.print(message))
    with _progress("compare") as progress:
        job.progress = progress
        comparison = compare_methods(job, chosen, notify=job.notify)
    if as_json:
        click.echo(json.dumps(comparison.to_dict(), indent=2))
    else:
        console.print(methods_table(comparison))


@tune.command("export")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--merge", is_flag=True, help="Fold the adapter into the base weights: a plain transformers folder.")
@click.option("--force", is_flag=True, help="Replace a non-empty --out folder.")
@click.pass_context
def export_command(ctx: click.Context, name: str, out: Path, merge: bool, force: bool) -> None:
    """Export tuned model NAME: the adapter files, or with --merge a merged transformers folder."""

    written = export_model(project_of(ctx), name, out, merge=merge, force=force)
    kind = "merged model" if merge else "adapter"
    console.print(f"{kind} of {name!r} written to {written['out']}"
                  + (f" (serve it with --model hf:{written['out']})" if merge else ""))
