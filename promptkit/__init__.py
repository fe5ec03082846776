"""promptkit: a prompt library, an eval harness and a tuning backend.

Importing promptkit loads no model library (torch, transformers, openai): those load
where a provider or tuner first needs them."""

from promptkit.errors import ConfigError, NotFoundError, PromptkitError
from promptkit.library import Library, PromptVersion
from promptkit.project import Project, Suite

__version__ = "0.1.0"

__all__ = ["ConfigError", "Library", "NotFoundError", "Project", "PromptVersion", "PromptkitError", "Suite",
           "__version__"]
