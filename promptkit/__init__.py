"""promptkit: a prompt library, an eval harness and a tuning backend.

Importing promptkit loads no model library (torch, transformers, openai): those load
where a provider or tuner first needs them. The public names below load on first use,
so `promptkit --help` stays fast."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from promptkit.errors import ConfigError, NotFoundError, PromptkitError

if TYPE_CHECKING:
    from promptkit.library import Library, PromptVersion
    from promptkit.project import Project, Suite

__version__ = "0.1.0"

_LAZY = {
    "Library": "promptkit.library",
    "PromptVersion": "promptkit.library",
    "Project": "promptkit.project",
    "Suite": "promptkit.project",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'promptkit' has no attribute {name!r}")


__all__ = ["ConfigError", "Library", "NotFoundError", "Project", "PromptVersion", "PromptkitError", "Suite",
           "__version__"]
