"""Helpers shared by CLI commands: the console, progress bars, the project from the context."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class FiniteFloat(click.FloatRange):
    """A float option that refuses nan and infinities (they pass every range comparison), with an
    optional range like click.FloatRange."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return float(number)


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
