"""promptkit lint: check prompts and suites without a model. Exit 1 on findings, 0 when clean."""

from __future__ import annotations

import json
from pathlib import Path

import click

from promptkit.cli.common import project_of
from promptkit.config import atomic_write
from promptkit.lint import lint_project


@click.command("lint")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the findings as JSON.")
@click.pass_context
def lint_command(ctx: click.Context, json_path: Path | None) -> None:
    """Check every prompt and suite: schema, template variables vs dataset fields, context window,
    labels sharing a first token, generation without a stop sequence."""
    project = project_of(ctx)
    findings = lint_project(project)
    for finding in findings:
        click.echo(str(finding))
    if json_path:
        atomic_write(json_path, json.dumps([f.to_dict() for f in findings], indent=2, ensure_ascii=False))
    click.echo(f"lint: {len(findings)} finding(s)" if findings else "lint: clean", err=True)
    ctx.exit(1 if findings else 0)
