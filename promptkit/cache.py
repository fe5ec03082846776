"""The response cache: model outputs on disk (SQLite, WAL), keyed by everything that can change them.

The key hashes the provider's name, its identity (model, file fingerprints, adapter), the
options that shape outputs, the rendered request and the decoding settings. Looking a key up
never loads a model: model files are fingerprinted by a content hash remembered per
(path, size, mtime, inode, ctime), so a large file is read once."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from promptkit import dbfile
from promptkit.errors import PromptkitError
from promptkit.models import embedded_model_path
from promptkit.providers.base import Provider
from promptkit.results import Request, Response, from_stored

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    response TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprints (
    stat TEXT PRIMARY KEY,
    digest TEXT NOT NULL
);
"""

CHUNK = 1 << 20


class ResponseCache(dbfile.Closing):
    """Responses by key in `path` (default: the project's .promptkit/cache.db).

    The cache only saves work, so it is never fatal: a damaged file is set aside (renamed) and
    rebuilt with a warning, a row that does not decode is a miss, and a cache that breaks or stays
    locked in the middle of a run is switched off for the rest of it with a warning. A file that
    is an SQLite database of another program is refused, untouched."""

    def __init__(self, path: Path):
        self.path = path
        self.hits = 0
        self.misses = 0
        self._off = False
        try:
            self._db = dbfile.open_checked(path, "the cache", _check_schema, lambda db: db.executescript(SCHEMA))
        except dbfile.DamagedDatabase as e:
            aside = _set_aside(path)
            _warn(f"{e.message}; set it aside as {aside.name} and started a new cache")
            self._db = dbfile.open_checked(path, "the cache", _check_schema, lambda db: db.executescript(SCHEMA))
        except dbfile.ForeignDatabase:
            raise
        except PromptkitError as e:
            raise PromptkitError(dbfile.cannot_open("the cache", e.message), where=e.where or str(path),
                                 hint=e.hint or "rerun with --no-cache") from None
        except OSError as e:
            raise PromptkitError(f"cannot open the cache: {e.strerror or e}", where=str(path),
                                 hint="rerun with --no-cache") from None

    def _fail(self, error: sqlite3.Error) -> None:
        """Switch the cache off for this run after an error, with one warning."""
        if not self._off:
            self._off = True
            reason = "stayed locked by another process" if dbfile.is_locked(error) else f"failed ({error})"
            _warn(f"{self.path}: the cache {reason}; going on without it for this run")

    def get_many(self, keys: Sequence[str]) -> dict[str, Response]:
        """Cached responses for the keys that have one, marked `cached`. A row that does not
        decode as a response counts as a miss (it is replaced when the answer is stored)."""
        found: dict[str, Response] = {}
        if not self._off:
            try:
                for start in range(0, len(keys), 500):
                    part = list(keys[start: start + 500])
                    marks = ",".join("?" * len(part))
                    for key, data in self._db.execute(f"SELECT key, response FROM responses WHERE key IN ({marks})", part):
                        response = _decode(data)
                        if response is not None:
                            found[key] = response
            except sqlite3.Error as e:
                self._fail(e)
        self.hits += len(found)
        self.misses += len(set(keys) - set(found))
        return found

    def put_many(self, items: Iterable[tuple[str, Response]]) -> None:
        """Store successful responses; failures are not cached, so a rerun tries them again."""
        rows = [(key, blob, _now()) for key, r in items if r.error is None and (blob := _encode(r)) is not None]
        if not rows or self._off:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO responses (key, response, created) VALUES (?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            self._fail(e)

    def __len__(self) -> int:
        try:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        except sqlite3.Error as e:
            self._fail(e)
            return 0

    def fingerprint(self, path: Path) -> str:
        """sha256 of a file, or of a folder's files, remembered per (path, size, mtime, inode, ctime)."""
        if path.is_dir():
            parts = [f"{p.relative_to(path)}:{self.fingerprint(p)}" for p in sorted(path.rglob("*")) if p.is_file()]
            return hashlib.sha256("\n".join(parts).encode()).hexdigest()
        stat = path.stat()
        # inode and ctime too: a file replaced by one of the same size with its mtime set back (cp -p,
        # rsync -a, touch -r) must not be served the old file's digest; ctime cannot be set back
        stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}|{stat.st_ctime_ns}"
        if not self._off:
            try:
                row = self._db.execute("SELECT digest FROM fingerprints WHERE stat = ?", (stamp,)).fetchone()
                if row and isinstance(row[0], str):
                    return row[0]
            except sqlite3.Error as e:
                self._fail(e)
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(CHUNK):
                digest.update(block)
        if not self._off:
            try:
                self._db.execute("INSERT OR REPLACE INTO fingerprints (stat, digest) VALUES (?, ?)",
                                 (stamp, digest.hexdigest()))
            except sqlite3.Error as e:
                self._fail(e)
        return digest.hexdigest()

    def close(self) -> None:
        self._db.close()


def _check_schema(db: sqlite3.Connection) -> None:
    have = dbfile.tables(db)
    ours = {"responses": {"key", "response", "created"}, "fingerprints": {"stat", "digest"}}
    foreign = [t for t in have if t not in ours] + [t for t, cols in ours.items() if t in have and not cols <= have[t]]
    if foreign:
        raise dbfile.ForeignDatabase(f"not a promptkit cache: it holds table {sorted(foreign)[0]!r}",
                                     hint="move it away (promptkit rebuilds the cache) or rerun with --no-cache")


def _decode(data: Any) -> Response | None:
    """A stored response, or None (a miss) for a row that is not one promptkit wrote: damaged JSON,
    wrong types, NaN, a score of null, or an error (failures are never cached)."""
    try:
        response = from_stored(Response, json.loads(data))
    except (ValueError, TypeError, RecursionError):
        return None
    if response.error is not None or any(v is None for v in (response.scores or {}).values()):
        return None
    response.cached = True
    return response


def _encode(response: Response) -> str | None:
    """A response as strict JSON; None (not cached) when it holds NaN or infinity."""
    try:
        return json.dumps({**response.to_dict(), "cached": False}, allow_nan=False)
    except (ValueError, TypeError):
        return None


def _set_aside(path: Path) -> Path:
    """Rename a damaged database file (and its WAL side files) out of the way."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            try:
                os.replace(source, aside.with_name(aside.name + suffix))
            except OSError as e:
                raise PromptkitError(f"the cache is damaged and cannot be moved aside: {e.strerror or e}",
                                     where=str(path), hint="remove it, or rerun with --no-cache") from None
    return aside


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _model_file(model: str) -> Path | None:
    """The file or folder a local model string names, if any (found without importing the model)."""
    if model.startswith("embedded:"):
        try:
            return embedded_model_path(model)
        except PromptkitError:
            return None
    try:
        path = Path(model).expanduser()
        # a FIFO or a device (/dev/zero) would be read forever; the provider refuses it when it loads
        return path if path.is_file() or path.is_dir() else None
    except (OSError, ValueError):
        return None


def provider_identity(provider: Provider, cache: ResponseCache | None = None) -> dict[str, Any]:
    """What about a provider can change an output: its identity, model and adapter file hashes,
    and its output-shaping options. Loads no model."""
    identity: dict[str, Any] = dict(provider.identity)
    identity.setdefault("provider", provider.name)
    identity.setdefault("model", provider.model)
    files: dict[str, str] = {}
    local = _model_file(provider.model)
    if local is not None and cache is not None:
        files["model"] = cache.fingerprint(local)
    adapter = provider.options.get("adapter")
    if adapter:
        adapter_path = Path(str(adapter)).expanduser()
        regular = adapter_path.is_dir() or adapter_path.is_file()
        files["adapter"] = cache.fingerprint(adapter_path) if cache is not None and regular else str(adapter)
    if files:
        identity["files"] = files
    # the provider's Options declare which options never change an output
    neutral = provider.Options.output_neutral()
    identity["options"] = {k: v for k, v in sorted(provider.options.items()) if k not in neutral}
    return identity


def request_key(identity: dict[str, Any], request: Request) -> str:
    """The cache key of one request to one provider (the request's id is not part of it)."""
    payload = {
        "identity": identity,
        "text": request.text,
        "messages": request.messages,
        "labels": request.labels,
        "label_prefix": request.label_prefix,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stop": request.stop,
        "seed": request.seed,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
