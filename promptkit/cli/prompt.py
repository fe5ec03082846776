"""promptkit prompt: list, show, new-version, label, diff."""

from __future__ import annotations

import click
from rich.syntax import Syntax
from rich.table import Table

from promptkit.cli.common import console, err_console, project_of
from promptkit.errors import ConfigError, PromptkitError
from promptkit.library.diff import diff_versions
from promptkit.library.inspect import inspect_prompt
from promptkit.library.store import PromptFolder
from promptkit.report.format import printable
from promptkit.report.terminal import cell, safe_markup


@click.group()
def prompt() -> None:
    """Manage versioned prompts."""


@prompt.command("list")
@click.pass_context
def list_prompts(ctx: click.Context) -> None:
    """List prompts with their versions and labels."""
    library = project_of(ctx).library
    table = Table()
    for column in ("prompt", "versions", "labels", "working copy"):
        table.add_column(column)
    problems: list[str] = []
    for name in library.names():
        try:
            folder, _ = library.folder(name)
        except PromptkitError as e:  # a folder named with a space or a look-alike letter
            problems.append(str(e))
            table.add_row(cell(name), "BROKEN", "", "")  # a folder name: '[b]' or an escape in it is text
            continue
        # One broken file (a hand-edited version, a bad label file) marks that entry, not the whole listing.
        versions, cells = [], []
        for number in folder.version_numbers():
            try:
                version = folder.version(number)
            except PromptkitError as e:
                problems.append(str(e))
                cells.append(f"v{number}:BROKEN")
                continue
            versions.append(version)
            cells.append(f"{version.label}:{version.hash[:7]}")
        try:
            labels = folder.labels()
        except PromptkitError as e:
            problems.append(str(e))
            label_text = "BROKEN"
        else:
            numbered = {f"v{n}" for n in folder.version_numbers()}
            for target in sorted({t for t in labels.values() if t not in numbered}):
                # every ref through such a label fails (and a dangling 'production' fails the bare name)
                problems.append(f"{folder.labels_file}: {', '.join(k for k, t in labels.items() if t == target)} "
                                f"point(s) at {target}, which is not a published version")
            label_text = ", ".join(f"{k} → {v}" + ("" if v in numbered else " (missing)") for k, v in labels.items())
        working = ""
        if folder.working_file.is_file():
            try:
                current = folder.working()
            except PromptkitError as e:
                problems.append(str(e))
                working = "BROKEN"
            else:
                published = next((v.label for v in versions if v.hash == current.hash), None)
                working = f"= {published}" if published else f"unpublished ({current.hash})"
        table.add_row(cell(name), " ".join(cells) or "-", cell(label_text or "-"), working)
    console.print(table)
    # The others are listed; each broken file is one error line, and the exit code says so (2).
    for problem in problems:
        err_console.print(printable(f"error: {problem}"), markup=False, soft_wrap=True, highlight=False)
    if problems:
        ctx.exit(2)


@prompt.command("show")
@click.argument("ref")
@click.option("--model", "-m", help="Count tokens with this model's tokenizer (default: the prompt's).")
@click.option("--index", "index", default=0, show_default=True, help="Which example of the suite's dataset.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Render with these values instead.")
@click.pass_context
def show(ctx: click.Context, ref: str, model: str | None, index: int, variables: tuple[str, ...]) -> None:
    """Show prompt REF rendered for one example, with tokens per slot."""

    project = project_of(ctx)
    given: dict[str, str] = {}
    for item in variables:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--var {item!r} is not NAME=VALUE", hint="e.g. --var text='Great food'")
        given[name] = value
    if given and index != 0:
        raise ConfigError("--index and --var conflict: --index picks a dataset example, --var gives the values",
                          hint="use one of them")
    if index < 0:
        raise ConfigError(f"--index must be 0 or more, got {index}")
    view = inspect_prompt(project, project.library.resolve(ref), model=model, variables=given or None, index=index)
    console.print(f"[bold]{view.version.ref}[/bold] hash {view.version.hash} · {view.version.spec.style} · "
                  f"tokens with {safe_markup(view.model)}: {view.total_tokens} (window {view.context_window or '?'})",
                  emoji=False)
    table = Table()
    table.add_column("part")
    table.add_column("tokens", justify="right")
    for part, count in view.part_tokens:
        table.add_row(part, str(count))
    console.print(table)
    spec = view.version.spec
    scoring = [f"answers {', '.join(f'{k} -> {v!r}' for k, v in spec.verbalizers.items())}" if spec.verbalizers else "",
               f"calibration {', '.join(f'{k} {v:+g}' for k, v in spec.calibration.items())}" if spec.calibration else "",
               f"few-shot: {spec.fewshot.k} most similar of {len(spec.fewshot.pool)}" if spec.fewshot else ""]
    if any(scoring):
        console.print(printable(" · ".join(s for s in scoring if s)), markup=False, emoji=False)
    # the rendered prompt holds dataset text: an escape sequence in it is shown, not sent to the terminal
    console.print(Syntax(printable(view.text), "text", word_wrap=True, theme="ansi_dark"))


@prompt.command("new-version")
@click.argument("name")
@click.option("--message", "-m", default="", help="Why this version.")
@click.pass_context
def new_version(ctx: click.Context, name: str, message: str) -> None:
    """Publish prompt NAME's working copy as its next immutable version."""
    folder, _ = project_of(ctx).library.folder(name)
    version, created = folder.publish(message)
    if created:
        console.print(f"published {version.ref} ({version.hash})")
    else:
        note = "; the message was not recorded" if message else ""
        console.print(f"unchanged: the working copy is {version.ref} ({version.hash}){note}")


@prompt.command("label")
@click.argument("ref")
@click.argument("label")
@click.option("--remove", is_flag=True, help="Remove LABEL from prompt REF instead (REF: the prompt's name).")
@click.pass_context
def label(ctx: click.Context, ref: str, label: str, remove: bool) -> None:
    """Point LABEL (e.g. production) at version REF, or remove it with --remove."""
    library = project_of(ctx).library
    folder, _ = library.folder(ref)
    if remove:
        _remove_label(folder, label)
        return
    version = library.resolve(ref)
    folder.set_label(label, version)
    console.print(f"{version.name}@{label} → {version.label} ({version.hash})")


@prompt.command("unlabel")
@click.argument("name")
@click.argument("label")
@click.pass_context
def unlabel(ctx: click.Context, name: str, label: str) -> None:
    """Remove LABEL from prompt NAME (the same as 'prompt label --remove')."""
    folder, _ = project_of(ctx).library.folder(name)
    _remove_label(folder, label)


def _remove_label(folder: PromptFolder, label: str) -> None:
    target = folder.remove_label(label)
    # LABEL may be one the label rules refuse today (that is why it is being removed): '[/x]' in it is text
    console.print(printable(f"removed {folder.name}@{label} (it pointed at {target})"), markup=False, emoji=False)


@prompt.command("diff")
@click.argument("old")
@click.argument("new")
@click.pass_context
def diff(ctx: click.Context, old: str, new: str) -> None:
    """Show what changed from version OLD to NEW, slot by slot."""

    library = project_of(ctx).library
    a, b = library.resolve(old), library.resolve(new)
    console.print(f"{a.ref} ({a.hash}) → {b.ref} ({b.hash})")
    for part in diff_versions(a, b):
        colour = {"unchanged": "dim", "changed": "yellow", "added": "green", "removed": "red"}[part.status]
        console.print(f"[{colour}]{part.part}: {part.status}[/{colour}]")
        for line in part.lines[2:]:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan"
            console.print(printable(f"  {line}"), style=style, markup=False, highlight=False, emoji=False)
