"""What `prompt show` reports: a version rendered for one example, with tokens per part."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promptkit.data import load_examples
from promptkit.errors import ConfigError
from promptkit.library.spec import OUTPUT_KEY
from promptkit.library.store import PromptVersion
from promptkit.models import DEFAULT_MODEL, resolve_model
from promptkit.project import Project
from promptkit.providers.factory import open_provider
from promptkit.results import Request


@dataclass
class PromptView:
    version: PromptVersion
    model: str
    text: str
    part_tokens: list[tuple[str, int]]
    total_tokens: int
    context_window: int | None


def example_variables(project: Project, version: PromptVersion, index: int) -> dict[str, Any]:
    """Variables of one example: from the prompt's suite dataset, else its first few-shot example."""
    try:
        suite = project.suite_for(version)
    except ConfigError:
        suite = None
    if suite is not None:
        fields = suite.config.dataset.fields or {v: v for v in version.template.variables()}
        examples = load_examples(suite.dataset_path(), fields, None)
        if index >= len(examples):  # never silently another example than the one asked for
            raise ConfigError(f"--index {index} is past the last example of {suite.dataset_path()} "
                              f"({len(examples)} example(s))", hint=f"give 0 to {len(examples) - 1}")
        return examples[index].vars
    if index:
        raise ConfigError(f"--index {index}: no suite names this prompt, so there is only its first few-shot example",
                          where=str(version.source), hint="pass values with --var NAME=VALUE")
    if version.spec.examples:
        return {k: v for k, v in version.spec.examples[0].items() if k != OUTPUT_KEY}
    raise ConfigError("no example to render: no suite names this prompt and it has no few-shot examples",
                      where=str(version.source), hint="pass values with --var NAME=VALUE")


def inspect_prompt(project: Project, version: PromptVersion, model: str | None = None,
                   variables: dict[str, Any] | None = None, index: int = 0) -> PromptView:

    spec_model = model or version.spec.settings.model or DEFAULT_MODEL
    ref = resolve_model(spec_model, project.models)
    provider = open_provider(ref, project)
    values = variables if variables is not None else example_variables(project, version, index)
    rendered = version.template.render(values)
    parts = [(name, provider.count_tokens(text)) for name, text in rendered.parts]
    request = Request(id="show", text=rendered.text, messages=rendered.messages)
    total = provider.prompt_tokens(request)
    shown = provider.prompt_text(request)
    return PromptView(version, ref.spec, shown, parts, total, provider.context_window)
