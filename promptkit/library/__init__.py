"""The prompt library: folders of versioned, content-hashed Jinja prompts."""

from promptkit.library.render import Rendered, Template
from promptkit.library.spec import PromptSpec
from promptkit.library.store import WORKING, Library, PromptFolder, PromptVersion

__all__ = ["WORKING", "Library", "PromptFolder", "PromptSpec", "PromptVersion", "Rendered", "Template"]
