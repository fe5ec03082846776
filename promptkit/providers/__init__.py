"""Providers by name. Entries are lazy so that importing promptkit loads no model library.
Build one with promptkit.providers.factory.open_provider."""

from promptkit.providers.base import Generation, ModelError, Provider, ProviderOptions
from promptkit.registry import Registry
from promptkit.results import Request, Response  # what a provider takes and returns

providers: Registry[type[Provider]] = Registry("provider", group="promptkit.providers")
providers.register("fake", "promptkit.providers.fake:FakeProvider")
providers.register("hf", "promptkit.providers.hf:HFProvider")
providers.register("openai", "promptkit.providers.openai:OpenAIProvider")

__all__ = ["Generation", "ModelError", "Provider", "ProviderOptions", "Request", "Response", "options_of", "providers"]


def options_of(provider: str) -> type[ProviderOptions]:
    """The options a provider declares (its class is imported, no model library)."""
    return providers.get(provider).Options
