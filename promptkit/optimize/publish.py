"""After the search: the winner as a new published version."""

from __future__ import annotations

from typing import Any

from promptkit.library import PromptVersion
from promptkit.library.spec import PromptSpec
from promptkit.library.store import PromptFolder


def publish(base: PromptVersion, spec: PromptSpec, record: dict[str, Any]) -> PromptVersion:
    """Publish `spec` as the next version of base's prompt, with `optimized:` saying how it was found.
    Content identical to a published version publishes nothing and returns that version."""
    folder = PromptFolder(base.folder, base.name)
    extra = {"message": f"optimized from {base.ref}: {record.get('winner', '')}", "optimized": record}
    header = "# Published prompt version: immutable. Found by 'promptkit optimize' (see 'optimized:').\n"
    return folder.publish_spec(spec, extra, header)[0]
