"""Slot-by-slot differences between two prompt versions."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from promptkit.config import dump_yaml
from promptkit.library.spec import SLOT_ORDER
from promptkit.library.store import PromptVersion


@dataclass
class PartDiff:
    part: str  # a slot name, or examples / labels / verbalizers / calibration / fewshot / settings / style
    status: str  # unchanged | changed | added | removed
    lines: list[str]  # unified diff lines, empty when unchanged


def _parts(version: PromptVersion) -> dict[str, str | None]:
    spec = version.spec
    parts: dict[str, str | None] = {name: getattr(spec.slots, name) for name in SLOT_ORDER}
    parts["examples"] = dump_yaml(spec.examples) if spec.examples else None
    parts["labels"] = dump_yaml(spec.labels) if spec.labels else None
    parts["verbalizers"] = dump_yaml(spec.verbalizers) if spec.verbalizers else None
    parts["calibration"] = dump_yaml(spec.calibration) if spec.calibration else None
    parts["fewshot"] = dump_yaml(spec.fewshot.model_dump()) if spec.fewshot else None
    parts["settings"] = dump_yaml(spec.settings.model_dump())
    parts["style"] = f"{spec.style} (label prefix {spec.prefix!r})"
    return parts


def diff_versions(old: PromptVersion, new: PromptVersion) -> list[PartDiff]:
    a, b = _parts(old), _parts(new)
    result = []
    for part in a:
        before, after = a[part], b[part]
        if before == after:
            status = "unchanged"
        elif before is None:
            status = "added"
        elif after is None:
            status = "removed"
        else:
            status = "changed"
        lines: list[str] = []
        if status != "unchanged":
            lines = list(
                difflib.unified_diff(
                    (before or "").splitlines(),
                    (after or "").splitlines(),
                    fromfile=f"{old.ref}:{part}",
                    tofile=f"{new.ref}:{part}",
                    lineterm="",
                )
            )
        result.append(PartDiff(part, status, lines))
    return result
