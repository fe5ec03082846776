"""promptkit lint: check prompts and suites without a model. Exit 1 on findings, 0 when clean."""

from __future__ import annotations

import json
from pathlib import Path

import click

from promptkit.cli.common import project_of
from promptkit.config import atomic_write, check_writable
from promptkit.errors import PromptkitError
from promptkit.lint import lint_project
from promptkit.report.format import printable


@click.command("lint")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the findings as JSON.")
@click.pass_context
def lint_command(ctx: click.Context, json_path: Path | None) -> None:
    """Check every prompt and suite: schema, template variables vs dataset fields, context window,
    labels sharing a first token, generation without a stop sequence."""
    project = project_of(ctx)
    if json_path is not None:  # before the findings: a file, a device or /proc in the path is exit 2, not 3
        check_writable(json_path, "--json")
    findings = lint_project(project)
    for finding in findings:
        # one line each (a file name may hold a newline); names and labels from files: escapes shown, never obeyed
        click.echo(printable(finding).replace("\n", "\\n"))
    if json_path:
        text = json.dumps([f.to_dict() for f in findings], indent=2, ensure_ascii=False)
        # a file name that is not UTF-8 holds lone surrogates: written as their JSON escape (\udcff)
        try:
            atomic_write(json_path, text.encode("utf-8", "backslashreplace"))
        except OSError as e:
            raise PromptkitError(f"cannot write the JSON findings: {e.strerror or e}", where=str(json_path)) from None
    click.echo(f"lint: {len(findings)} finding(s)" if findings else "lint: clean", err=True)
    ctx.exit(1 if findings else 0)
