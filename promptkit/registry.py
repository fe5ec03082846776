"""Name -> factory registries for providers, metrics and tuners."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from promptkit.errors import NotFoundError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. Entries may be lazy ("module:attr") so that
    registering a provider never imports torch or openai."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str | None = None) -> Callable[[T], T]:
        """Register `entry` under `name`; usable as a decorator."""

        def add(obj: T) -> T:
            self._entries[name] = obj
            return obj

        if entry is not None:
            self._entries[name] = entry
        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise NotFoundError(f"unknown {self.kind} {name!r}", hint=did_you_mean(name, self.names()))
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
