"""After the search: the winner as a new published version."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from promptkit.config import atomic_write, dump_yaml
from promptkit.library import PromptVersion
from promptkit.library.spec import PromptSpec
from promptkit.library.store import PromptFolder


def publish(base: PromptVersion, spec: PromptSpec, record: dict[str, Any]) -> PromptVersion:
    """Publish `spec` as the next version of base's prompt, with `optimized:` saying how it was found.
    Content identical to a published version publishes nothing and returns that version."""
    folder = PromptFolder(base.folder, base.name)
    digest = spec.content_hash()
    for version in folder.versions():
        if version.hash == digest:
            return version
    numbers = folder.version_numbers()
    number = (numbers[-1] + 1) if numbers else 1
    body = {
        "version": number,
        "hash": digest,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "message": f"optimized from {base.ref}: {record.get('winner', '')}",
        "prompt": spec.model_dump(exclude_defaults=True),
        "optimized": record,
    }
    header = "# Published prompt version: immutable. Found by 'promptkit optimize' (see 'optimized:').\n"
    folder.versions_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(folder.versions_dir / f"v{number}.yaml", header + dump_yaml(body))
    return folder.version(number)
