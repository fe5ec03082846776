"""Name -> factory registries for providers, metrics and tuners, and loading user code by name.

A registry may name an entry-point group (e.g. `promptkit.metrics`): a pip-installed plugin
that declares `[project.entry-points."promptkit.metrics"] brevity = "mypkg:Brevity"` adds a
metric without any registration call. `load_project_object` resolves "module:attr" from a
project folder, for the classes and functions a suite file names."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from promptkit.errors import ConfigError, NotFoundError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. Entries may be lazy ("module:attr") so that
    registering a provider never imports torch or openai."""

    def __init__(self, kind: str, group: str | None = None):
        self.kind = kind
        self.group = group  # entry-point group read once, on first lookup
        self._entries: dict[str, T | str] = {}
        self._plugins_loaded = group is None

    def register(self, name: str, entry: T | str | None = None) -> Callable[[T], T]:
        """Register `entry` under `name`; usable as a decorator."""

        def add(obj: T) -> T:
            self._entries[name] = obj
            return obj

        if entry is not None:
            self._entries[name] = entry
        return add

    def _load_plugins(self) -> None:
        """Entry points of the group, as lazy entries; built-in names win over a plugin's."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        try:
            found = list(entry_points(group=self.group or ""))
        except Exception:  # noqa: BLE001 - a broken distribution's metadata must not break every command
            return
        for ep in found:
            self._entries.setdefault(ep.name, ep.value)

    def get(self, name: str) -> T:
        self._load_plugins()
        if name not in self._entries:
            raise NotFoundError(f"unknown {self.kind} {name!r}", hint=did_you_mean(name, self.names()))
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            try:
                entry = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as e:
                raise ConfigError(f"{self.kind} {name!r} cannot be loaded from {module}:{attr}: {e}",
                                  hint="reinstall the package that provides it") from None
            self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def load_project_object(root: Path, target: str, where: str, what: str = "object") -> Any:
    """`module:attr` (module may be dotted, e.g. checks.json) from the project folder `root`,
    imported from its file without a Python registration call. Every problem is a ConfigError
    naming `where`."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr or not all(p.isidentifier() for p in (*module.split("."), *attr.split("."))):
        raise ConfigError(f"{what} {target!r} is not 'module:name'", where=where,
                          hint="e.g. mychecks:quote_is_short for mychecks.py in the project folder")
    base = root.resolve().joinpath(*module.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    if not path.is_file():
        raise ConfigError(f"{what} {target!r}: no {base.name}.py in the project folder", where=where,
                          hint=f"create {base.with_suffix('.py')}")
    # a name unique to the file, so two projects' mymetrics.py never shadow each other
    unique = f"_promptkit_project_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    loaded = sys.modules.get(unique)
    if loaded is None:
        spec = importlib.util.spec_from_file_location(unique, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot import {path}", where=where)
        loaded = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(root.resolve()))  # so the module can import its neighbours
        try:
            spec.loader.exec_module(loaded)
        except Exception as e:  # noqa: BLE001 - any error in the user's module is a config problem
            raise ConfigError(f"importing {path.name} failed: {type(e).__name__}: {e}", where=where,
                              hint=f"fix {path}") from None
        finally:
            sys.path.remove(str(root.resolve()))
        sys.modules[unique] = loaded
    obj: Any = loaded
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(loaded) if not n.startswith("_")]
            raise ConfigError(f"{path.name} defines no {attr!r}", where=where, hint=did_you_mean(attr, names))
        obj = getattr(obj, part)
    return obj
