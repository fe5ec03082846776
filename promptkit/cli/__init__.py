"""The promptkit command line: thin click commands over the library.

Subcommands load lazily so that `promptkit --help` imports no model library."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from promptkit.errors import PromptkitError
from promptkit.report.format import printable

COMMANDS = {
    "prompt": ("promptkit.cli.prompt:prompt", "Manage versioned prompts: list, show, new-version, label, diff."),
    "eval": ("promptkit.cli.eval:eval_command", "Score a prompt on its eval suite."),
    "runs": ("promptkit.cli.runs:runs", "Browse the run history."),
    "serve": ("promptkit.cli.serve:serve", "Serve a local model over an OpenAI-compatible HTTP API."),
    "check": ("promptkit.cli.check:check_command", "CI gate: suites vs thresholds and blessed baselines (exit 1 on regression)."),
    "baseline": ("promptkit.cli.baseline:baseline", "Bless or show the committed baselines that check compares against."),
    "lint": ("promptkit.cli.lint:lint_command", "Check prompts and suites without a model: schema, variables, context, labels."),
    "status": ("promptkit.cli.status:status", "A prompt's score per version, plateau, and tuning estimates."),
    "optimize": ("promptkit.cli.optimize:optimize_command", "Search prompt variations on validation rows; publish the winner."),
    "view": ("promptkit.cli.view:view", "A local web app over the run store: runs, compare, prompts, review."),
    "tune": ("promptkit.cli.tune:tune", "Fine-tune a plateaued prompt's task: --backend lora|openai; status|list|cancel."),
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs, and turns
    PromptkitError into one line on stderr with exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in sorted(COMMANDS)])

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Like click's main, but a usage error (bad option, missing argument) is one line too."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            command = e.ctx.command_path if e.ctx else "promptkit"
            click.echo(f"error: {' '.join(e.format_message().split())} (see '{command} --help')", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"error: {' '.join(e.format_message().split())}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        except OSError as e:  # e.g. EPIPE when the output is piped into `head`
            if e.errno == 32:
                sys.exit(1)
            raise
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PromptkitError as e:
            click.echo(f"error: {printable(e)}", err=True)  # names and hints can hold escapes from files
            ctx.exit(e.exit_code)
        except KeyboardInterrupt as e:
            run_id = getattr(e, "run_id", None)  # set by the eval loop for the run it left interrupted
            resume = f"--resume {run_id}" if run_id else "--resume"
            click.echo(f"interrupted: results so far are in the run store; rerun with {resume}", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as e:
            if os.environ.get("PROMPTKIT_DEBUG"):
                raise
            click.echo(f"internal error: {type(e).__name__}: {e} (set PROMPTKIT_DEBUG=1 for the traceback)", err=True)
            ctx.exit(3)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="promptkit")
@click.option("--project", "project_dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Project folder holding prompts/ and evals/.")
@click.pass_context
def main(ctx: click.Context, project_dir: str) -> None:
    """promptkit: versioned prompts, scored on real data, gated in CI, tuned when they plateau."""
    from promptkit.project import Project  # start-up: `promptkit --help` loads no library module (jinja2, yaml)

    ctx.obj = Project(project_dir)
