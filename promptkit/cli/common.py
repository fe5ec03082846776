"""Helpers shared by CLI commands: the console, progress bars, the project from the context."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from promptkit.evaluate import ProgressFn
from promptkit.project import Project

# emoji=False: rich would show a model named `fake:x:` as "fake❌"
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


class FiniteFloat(click.FloatRange):
    """A float option that refuses nan and infinities (they pass every range comparison), with an
    optional range like click.FloatRange."""

    name = "number"

    def _describe_range(self) -> str:
        # click shows an unbounded range as "x<=None" in --help
        return "" if self.min is None and self.max is None else super()._describe_range()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return float(number)


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def data_options(train: str, eval_: str, train_split: str | None = None, eval_split: str | None = None,
                 limits: bool = False) -> Decorator:
    """--train-data and --eval-data (each command words their help its own way), with --train-split,
    --eval-split when their help is given and --eval-limit/--limit when `limits`, in that order."""
    data_file = click.Path(dir_okay=False, path_type=Path)
    options = [click.option("--train-data", type=data_file, help=train)]
    if train_split is not None:
        options.append(click.option("--train-split", help=train_split))
    options.append(click.option("--eval-data", type=data_file, help=eval_))
    if eval_split is not None:
        options.append(click.option("--eval-split", help=eval_split))
    if limits:
        options.append(click.option("--eval-limit", type=click.IntRange(min=1), help="Only the first N eval examples."))
        options.append(click.option("--limit", type=click.IntRange(min=1), help="Only the first N training rows."))

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):  # click lists options in the order their decorators stand
            command = option(command)
        return command

    return apply


def seed_threads_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--seed and --threads of the local training commands."""
    command = click.option("--threads", type=click.IntRange(min=1), help="CPU threads for training.")(command)
    return click.option("--seed", type=int, default=0, show_default=True)(command)


def project_of(ctx: click.Context) -> Project:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Project) else Project(".")


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "", style="progress.data.speed")


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressFn]:
    """A rich progress bar with rate and ETA on stderr; a no-op when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
