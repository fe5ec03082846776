"""`open_provider`: the one way to build a provider, from a model spec or a resolved ModelRef."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptkit.models import ModelRef, resolve_model
from promptkit.providers import Provider, options_of, providers

if TYPE_CHECKING:
    from promptkit.project import Project


def foreign_options(provider: str, names: set[str]) -> set[str]:
    """Options another provider declares: a suite's provider_options are written for its model and
    a run may pick another (`-m`), so those are left out rather than refused; a name no provider
    knows stays, and is refused as a typo."""
    own = set(options_of(provider).model_fields)
    others = {n for p in providers.names() if p != provider for n in options_of(p).model_fields}
    return {n for n in names if n not in own and n in others}


def open_provider(spec_or_ref: str | ModelRef, project: Project | None = None, **overrides: Any) -> Provider:
    """A provider for a model spec (an alias, provider:NAME, a model path, or a model registered in
    the project) or an already resolved ModelRef. Options: the registered model's or the suite's
    (carried by the ref), then `overrides` (None values are left out). The project root tells the
    provider where the project's files are (e.g. the price table). Cheap: models load on first use."""
    if isinstance(spec_or_ref, ModelRef):
        ref = spec_or_ref
    else:
        ref = resolve_model(spec_or_ref, project.models if project is not None else None)
    options = {**ref.options, **{k: v for k, v in overrides.items() if v is not None}}
    for name in foreign_options(ref.provider, set(options)):
        del options[name]
    root = project.root if project is not None else None
    return providers.get(ref.provider)(ref.model, project_root=root, **options)
