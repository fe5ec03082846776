"""Providers by name, and `open_provider`, the one way to build one. Entries are lazy so that
importing promptkit loads no model library."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptkit.models import ModelRef, resolve_model
from promptkit.providers.base import Generation, Provider, ProviderOptions, Request, Response
from promptkit.registry import Registry

if TYPE_CHECKING:
    from promptkit.project import Project

providers: Registry[type[Provider]] = Registry("provider", group="promptkit.providers")
providers.register("fake", "promptkit.providers.fake:FakeProvider")
providers.register("hf", "promptkit.providers.hf:HFProvider")
providers.register("openai", "promptkit.providers.openai:OpenAIProvider")

__all__ = ["Generation", "Provider", "ProviderOptions", "Request", "Response", "open_provider", "options_of",
           "providers"]


def options_of(provider: str) -> type[ProviderOptions]:
    """The options a provider declares (its class is imported, no model library)."""
    return providers.get(provider).Options


def _foreign(provider: str, names: set[str]) -> set[str]:
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
    for name in _foreign(ref.provider, set(options)):
        del options[name]
    root = project.root if project is not None else None
    return providers.get(ref.provider)(ref.model, project_root=root, **options)
