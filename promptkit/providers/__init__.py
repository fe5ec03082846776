"""Providers by name. Entries are lazy so that importing promptkit loads no model library."""

from promptkit.providers.base import Provider
from promptkit.registry import Registry
from promptkit.results import Request, Response  # what a provider takes and returns

providers: Registry[type[Provider]] = Registry("provider", group="promptkit.providers")
providers.register("fake", "promptkit.providers.fake:FakeProvider")
providers.register("hf", "promptkit.providers.hf:HFProvider")
providers.register("openai", "promptkit.providers.openai:OpenAIProvider")

__all__ = ["Provider", "Request", "Response", "providers"]


def make_provider(provider: str, model: str, **options: object) -> Provider:
    """Instantiate a provider by name; cheap: models load on first use."""
    return providers.get(provider)(model, **options)


__all__ += ["make_provider"]
