"""The response cache: model outputs on disk (SQLite, WAL), keyed by everything that can change them.

The key hashes the provider's name, its identity (model, file fingerprints, adapter), the
options that shape outputs, the rendered request and the decoding settings. Looking a key up
never loads a model: model files are fingerprinted by a content hash remembered per
(path, size, mtime), so a large file is read once."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from promptkit.errors import PromptkitError
from promptkit.providers.base import Provider, Request, Response

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

# Options that change how fast or how safely a model answers, never what it answers.
NEUTRAL_OPTIONS = frozenset({
    "batch_size", "generate_batch_size", "concurrency", "threads", "timeout", "max_retries", "retries", "retry", "delay",
    "api_key", "api_key_env", "headers", "price", "prices", "project_root", "backoff", "max_backoff",
})

CHUNK = 1 << 20


class ResponseCache:
    """Responses by key in `path` (default: the project's .promptkit/cache.db)."""

    def __init__(self, path: Path):
        self.path = path
        self.hits = 0
        self.misses = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise PromptkitError(f"cannot open the cache: {e}", where=str(path), hint="rerun with --no-cache") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, Response]:
        """Cached responses for the keys that have one, marked `cached`."""
        found: dict[str, Response] = {}
        for start in range(0, len(keys), 500):
            part = list(keys[start: start + 500])
            marks = ",".join("?" * len(part))
            for key, data in self._db.execute(f"SELECT key, response FROM responses WHERE key IN ({marks})", part):
                response = Response(**json.loads(data))
                response.cached = True
                found[key] = response
        self.hits += len(found)
        self.misses += len(set(keys) - set(found))
        return found

    def put_many(self, items: Iterable[tuple[str, Response]]) -> None:
        """Store successful responses; failures are not cached, so a rerun tries them again."""
        rows = [(key, json.dumps({**r.to_dict(), "cached": False}), _now()) for key, r in items if r.error is None]
        if not rows:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT OR REPLACE INTO responses (key, response, created) VALUES (?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def fingerprint(self, path: Path) -> str:
        """sha256 of a file, or of a folder's files, remembered per (path, size, mtime)."""
        if path.is_dir():
            parts = [f"{p.relative_to(path)}:{self.fingerprint(p)}" for p in sorted(path.rglob("*")) if p.is_file()]
            return hashlib.sha256("\n".join(parts).encode()).hexdigest()
        stat = path.stat()
        stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        row = self._db.execute("SELECT digest FROM fingerprints WHERE stat = ?", (stamp,)).fetchone()
        if row:
            return str(row[0])
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(CHUNK):
                digest.update(block)
        self._db.execute("INSERT OR REPLACE INTO fingerprints (stat, digest) VALUES (?, ?)", (stamp, digest.hexdigest()))
        return digest.hexdigest()

    def close(self) -> None:
        self._db.close()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _model_file(model: str) -> Path | None:
    """The file or folder a local model string names, if any (found without importing the model)."""
    if model.startswith("embedded:"):
        from promptkit.models import embedded_model_path

        try:
            return embedded_model_path(model)
        except PromptkitError:
            return None
    try:
        path = Path(model).expanduser()
        return path if path.exists() else None
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
        files["adapter"] = cache.fingerprint(adapter_path) if cache is not None and adapter_path.exists() else str(adapter)
    if files:
        identity["files"] = files
    identity["options"] = {k: v for k, v in sorted(provider.options.items()) if k not in NEUTRAL_OPTIONS}
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
