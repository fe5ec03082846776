"""Prompt folders: the working copy, immutable published versions, labels and refs.

Layout of one prompt folder::

    prompts/sentiment/
      prompt.yaml          the working copy you edit
      versions/v1.yaml     published versions: content plus its hash, never edited
      versions/labels.yaml label -> version, e.g. {production: v2}
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write, dump_yaml, line_of, load_yaml, validate
from promptkit.errors import ConfigError, NotFoundError, did_you_mean
from promptkit.fileio import file_lock
from promptkit.library.render import Template
from promptkit.library.spec import PromptSpec, content_hash

WORKING = "working"
PROMPT_FILE = "prompt.yaml"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # ASCII only: no look-alike letters
VERSION_RE = re.compile(r"v(\d{1,9})")  # fullmatch; more digits than that is no version anyone published
HASH_RE = re.compile(r"[0-9a-f]{4,12}")
LABEL_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
HEADER = "# Published prompt version: immutable. Edit prompt.yaml and run 'promptkit prompt new-version'.\n"
LOOKS_LIKE_REF = re.compile(r"(?i)v\d+|working|[0-9a-f]{4,64}")  # a version name, 'working' or a hash prefix


def label_problem(label: str) -> str | None:
    """Why `label` cannot be a label name, or None. Labels are lower-case ASCII so that two labels
    never differ only by case, spacing or a look-alike letter from another script, and never look
    like a version name or a hash prefix, which a selector would read first."""
    if not label:
        return "a label cannot be empty"
    if label != label.strip():
        return f"label {label!r} has leading or trailing spaces"
    if not label.isascii():
        odd = next(c for c in label if not c.isascii())
        return f"label {label!r} holds the non-ASCII character {odd!r} (U+{ord(odd):04X}), which can look like a Latin letter"
    if label != label.lower():
        return f"label {label!r} has upper-case letters; labels are lower-case so that two never differ only by case"
    if LOOKS_LIKE_REF.fullmatch(label):
        return f"label {label!r} looks like a version name or a hash prefix, so 'prompt@{label}' would be ambiguous"
    if not LABEL_RE.fullmatch(label):
        return f"invalid label name {label[:80]!r}"
    return None


@dataclass(frozen=True)
class PromptVersion:
    """One concrete prompt: a published version, or the working copy (number None)."""

    name: str
    folder: Path
    number: int | None
    hash: str
    spec: PromptSpec
    source: Path

    @property
    def label(self) -> str:
        return f"v{self.number}" if self.number is not None else WORKING

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.label}"

    @cached_property
    def template(self) -> Template:
        return Template(self.spec, str(self.source))


class PromptFolder:
    """One prompt's folder on disk."""

    def __init__(self, folder: Path, name: str | None = None):
        self.folder = folder
        self.name = name or folder.name

    @property
    def working_file(self) -> Path:
        return self.folder / PROMPT_FILE

    @property
    def versions_dir(self) -> Path:
        return self.folder / "versions"

    @property
    def labels_file(self) -> Path:
        return self.versions_dir / "labels.yaml"

    def exists(self) -> bool:
        return self.working_file.is_file() or self.versions_dir.is_dir()

    def working(self) -> PromptVersion:
        data, text = load_yaml(self.working_file)
        spec = validate(PromptSpec, data, self.working_file, text)
        version = PromptVersion(self.name, self.folder, None, spec.content_hash(), spec, self.working_file)
        _ = version.template  # compile now so syntax errors surface at load
        return version

    def version_numbers(self) -> list[int]:
        if not self.versions_dir.is_dir():
            return []
        numbers = []
        for path in self.versions_dir.glob("v*.yaml"):
            match = VERSION_RE.fullmatch(path.stem)
            if match and path.stem == f"v{int(match.group(1))}":  # not v01.yaml: version 1 is read from v1.yaml
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    def version(self, number: int) -> PromptVersion:
        path = self.versions_dir / f"v{number}.yaml"
        if os.path.lexists(path) and not path.is_file():
            kind = "a folder" if path.is_dir() else "a special file (FIFO, device or socket)" if path.exists() \
                else "a symlink to nothing"
            raise ConfigError(f"{kind} where a published version file should be", where=str(path),
                              hint="remove it; versions are files written by 'promptkit prompt new-version'")
        if not path.is_file():
            known = [f"v{n}" for n in self.version_numbers()]
            raise NotFoundError(f"prompt {self.name!r} has no version v{number}", where=str(self.versions_dir),
                                hint=did_you_mean(f"v{number}", known))
        data, text = load_yaml(path)
        if not isinstance(data, dict) or "prompt" not in data or "hash" not in data:
            raise ConfigError("not a published version (needs 'hash' and 'prompt' keys)", where=str(path))
        if data.get("version", number) != number:  # a copied or renamed file: its hash still matches its content
            line = line_of(text, ("version",))
            raise ConfigError(f"the file of v{number} holds version {data['version']!r}",
                              where=f"{path}:{line}" if line else str(path),
                              hint="published versions are immutable: restore the file (git checkout)")
        spec = validate(PromptSpec, data["prompt"], path, text)
        actual = spec.content_hash()
        if actual != data["hash"]:
            raise ConfigError(
                f"published version v{number} was edited (hash {data['hash']} recorded, content is {actual})",
                where=str(path),
                hint="published versions are immutable: restore the file (git checkout) "
                "and publish changes with 'promptkit prompt new-version'",
            )
        version = PromptVersion(self.name, self.folder, number, actual, spec, path)
        _ = version.template
        return version

    def versions(self) -> list[PromptVersion]:
        return [self.version(n) for n in self.version_numbers()]

    def _raw_labels(self, text_keys: bool = True) -> dict[str, str]:
        if not self.labels_file.exists() and not self.labels_file.is_symlink():
            return {}
        data, _ = load_yaml(self.labels_file)
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError("expected 'label: vN' lines", where=str(self.labels_file), hint="e.g. 'production: v2'")
        odd = [k for k in data if not isinstance(k, str)]
        if text_keys and odd:  # `yes:` reads as True, `1.10:` as 1.1, `017:` as 15: not the label written
            raise ConfigError(f"YAML reads a label name as {odd[0]!r}, not as the text written",
                              where=str(self.labels_file), hint="quote label names in labels.yaml, e.g. 'yes': v2")
        return {str(k): v for k, v in data.items()}

    def labels(self) -> dict[str, str]:
        labels = self._raw_labels()
        for key in labels:
            problem = label_problem(key)
            if problem:
                line = line_of(self.labels_file.read_text(encoding="utf-8"), (key,))
                raise ConfigError(problem, where=f"{self.labels_file}:{line}" if line else str(self.labels_file),
                                  hint=f"remove it: promptkit prompt label --remove {self.name} '{key}'")
        return labels

    def resolve(self, selector: str | None) -> PromptVersion:
        """Selector: None (production, else newest, else working), 'working', 'vN', a label or a hash prefix."""
        numbers = self.version_numbers()
        if selector is None:
            labels = self.labels()
            if "production" in labels:
                return self._labelled("production", labels["production"])
            return self.version(numbers[-1]) if numbers else self.working()
        if selector == WORKING:
            return self.working()
        match = VERSION_RE.fullmatch(selector)
        if match:
            return self.version(int(match.group(1)))
        if re.fullmatch(r"v\d+", selector):
            raise NotFoundError(f"prompt {self.name!r} has no version {selector[:20]}{'...' if len(selector) > 20 else ''}",
                                where=str(self.versions_dir), hint=f"published: {', '.join(f'v{n}' for n in numbers) or 'none'}")
        labels = self.labels()
        if selector in labels:
            return self._labelled(selector, labels[selector])
        if HASH_RE.fullmatch(selector):
            found = [v for v in self.versions() if v.hash.startswith(selector)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise NotFoundError(f"hash prefix {selector!r} matches several versions", hint="give more characters")
        known = [f"v{n}" for n in numbers] + list(labels) + [WORKING]
        shown = selector if len(selector) <= 80 else selector[:80] + "..."
        raise NotFoundError(f"prompt {self.name!r} has no version {shown!r}", where=str(self.versions_dir),
                            hint=did_you_mean(selector, known))

    def _labelled(self, label: str, target: str) -> PromptVersion:
        match = VERSION_RE.fullmatch(target)
        if not match or int(match.group(1)) not in self.version_numbers():
            text = self.labels_file.read_text(encoding="utf-8")
            line = line_of(text, (label,))
            raise ConfigError(f"label {label!r} points at {target!r}, which is not a published version",
                              where=f"{self.labels_file}:{line}" if line else str(self.labels_file),
                              hint=f"published: {', '.join(f'v{n}' for n in self.version_numbers()) or 'none'}")
        return self.version(int(match.group(1)))

    def lock(self) -> AbstractContextManager[None]:
        """Serialise writers of this prompt's versions and labels across processes."""
        try:
            self.versions_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the versions folder: {e.strerror or e}", where=str(self.versions_dir),
                              hint="check the folder's permissions") from None
        return file_lock(self.versions_dir, f"prompt {self.name!r}")

    def publish(self, message: str = "") -> tuple[PromptVersion, bool]:
        """Publish the working copy as the next version; returns (version, created).
        Publishing content identical to an existing version creates nothing. Several processes
        publishing at once are serialised: each gets its own number, none overwrites another."""
        self.working()  # refuse a broken working copy before taking the lock
        with self.lock():
            return self._publish(self.working().spec, {"message": message})

    def publish_spec(self, spec: PromptSpec, record: dict[str, Any], header: str) -> tuple[PromptVersion, bool]:
        """Publish `spec` (not the working copy) as the next version, under the same lock as publish();
        `record` holds the version file's other keys (message, ...), `header` its first comment line."""
        with self.lock():
            return self._publish(spec, record, header)

    def _publish(self, spec: PromptSpec, extra: dict[str, Any], header: str = HEADER) -> tuple[PromptVersion, bool]:
        digest = spec.content_hash()
        for version in self.versions():
            if version.hash == digest:
                return version, False
        numbers = self.version_numbers()
        number = (numbers[-1] + 1) if numbers else 1
        path = self.versions_dir / f"v{number}.yaml"
        if not VERSION_RE.fullmatch(path.stem) or os.path.lexists(path):
            # a number past v999999999 is never listed again, so the next publish would overwrite it
            raise ConfigError(f"cannot publish as v{number}: that name is taken or too large for a version",
                              where=str(path), hint="remove the stray version file that has the largest number")
        record = {
            "version": number,
            "hash": digest,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "message": extra.get("message", ""),
            "prompt": spec.model_dump(exclude_defaults=True),
            **{k: v for k, v in extra.items() if k != "message"},
        }
        _write(path, header + dump_yaml(record))
        return self.version(number), True

    def set_label(self, label: str, version: PromptVersion) -> None:
        if version.number is None:
            raise ConfigError(f"only published versions can be labelled, not {version.ref}", where=str(version.source),
                              hint="run 'promptkit prompt new-version' first")
        check_label(label)
        with self.lock():  # read-modify-write: without the lock, concurrent labels overwrite each other
            labels = self.labels()
            labels[label] = version.label
            _write(self.labels_file, dump_yaml(labels))

    def remove_label(self, label: str) -> str:
        """Remove a label; returns the version it pointed at."""
        with self.lock():
            labels = self._raw_labels(text_keys=False)  # a label refused today can still be removed
            if label not in labels:
                raise NotFoundError(f"prompt {self.name!r} has no label {label!r}", where=str(self.labels_file),
                                    hint=did_you_mean(label, list(labels)))
            target = labels.pop(label)
            if labels:
                _write(self.labels_file, dump_yaml(labels))
            else:
                try:
                    self.labels_file.unlink()
                except OSError as e:
                    raise ConfigError(f"cannot remove: {e.strerror or e}", where=str(self.labels_file)) from None
            return target


def check_label(label: str) -> None:
    problem = label_problem(label)
    if problem:
        raise ConfigError(problem, hint="labels are lower-case ASCII letters, digits, '-', '_' or '.', "
                                        "not 'vN', 'working' or hex digits, e.g. 'production'")


def _write(path: Path, text: str) -> None:
    try:
        atomic_write(path, text)
    except OSError as e:
        raise ConfigError(f"cannot write: {e.strerror or e}", where=str(path), hint="check the folder's permissions") from None


class Library:
    """The prompts/ folder of a project."""

    def __init__(self, root: Path):
        self.root = root

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and PromptFolder(p).exists())

    def folder(self, ref: str) -> tuple[PromptFolder, str | None]:
        """Parse a ref: 'sentiment', 'prompts/sentiment', 'sentiment@v2', 'sentiment@production', a path."""
        try:
            return self._folder(ref)
        except OSError as e:  # a name too long for the file system, a loop of symlinks...
            shown = ref if len(ref) <= 80 else ref[:80] + "..."
            raise NotFoundError(f"prompt reference {shown!r} is not a usable path: {e.strerror or e}") from None

    def _folder(self, ref: str) -> tuple[PromptFolder, str | None]:
        if not ref or not ref.strip():
            raise NotFoundError("empty prompt reference", hint="give a prompt name such as 'sentiment'")
        base, sep, selector = ref.rpartition("@") if "@" in ref else (ref, "", "")
        base = base.rstrip("/")
        if sep and not selector:
            raise NotFoundError(f"prompt reference {ref!r} has nothing after '@'", hint="e.g. sentiment@v1")
        path = Path(base)
        if "/" in base or path.is_absolute():
            # A relative path means the project's prompts/ first (--project), then the working directory.
            candidate = None
            if not path.is_absolute() and path.parts and path.parts[0] == self.root.name:
                candidate = self.root.joinpath(*path.parts[1:])
                candidate = candidate if candidate.is_dir() else None
            if candidate is None and path.is_dir():
                candidate = path
            if candidate is None or not PromptFolder(candidate).exists():
                raise NotFoundError(
                    f"prompt reference {base!r} is not a prompt folder",
                    hint=f"a prompt folder holds {PROMPT_FILE}; prompts here: {', '.join(self.names()) or 'none'}",
                )
            return PromptFolder(candidate), selector or None
        if not NAME_RE.fullmatch(base) and base in self.names():  # listed, but not a name a ref can use
            raise ConfigError(f"prompt folder {base[:80]!r} does not have a valid prompt name", where=str(self.root / base),
                              hint="rename the folder: ASCII letters, digits, '_', '.' or '-', starting with a letter or digit")
        if not NAME_RE.fullmatch(base) or not PromptFolder(self.root / base).exists():
            raise NotFoundError(f"unknown prompt {base[:80]!r}", where=str(self.root), hint=did_you_mean(base, self.names()))
        return PromptFolder(self.root / base), selector or None

    def resolve(self, ref: str) -> PromptVersion:
        folder, selector = self.folder(ref)
        return folder.resolve(selector)


__all__ = ["WORKING", "Library", "PromptFolder", "PromptVersion", "content_hash"]
