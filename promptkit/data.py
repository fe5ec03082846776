"""Datasets: JSONL or CSV files, a field mapping onto prompt variables, splits, hashing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptkit.errors import ConfigError, NotFoundError


@dataclass(frozen=True)
class Example:
    """One dataset row, mapped onto the prompt's variables."""

    id: str  # stable: a hash of the input variables (and an index for duplicates)
    index: int  # position in the file
    vars: dict[str, Any]
    target: str | None
    split: str | None = None


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def input_hash(variables: dict[str, Any]) -> str:
    canonical = json.dumps(variables, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for each record of a .jsonl/.json-lines or .csv/.tsv file."""
    if not path.exists():
        raise NotFoundError("dataset file not found", where=str(path), hint="check the path (relative to where you run)")
    if path.is_dir():
        raise ConfigError("dataset path is a folder, not a file", where=str(path))
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv", ".tsv"):
        raise ConfigError(f"unsupported dataset format {suffix or '(none)'!r}", where=str(path), hint="use .jsonl or .csv")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"not valid UTF-8 (byte {e.start})", where=f"{path}:{line}", hint="re-save the file as UTF-8") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        try:
            for row in reader:
                rows.append((reader.line_num, {k: v for k, v in row.items() if k is not None}))
        except csv.Error as e:
            raise ConfigError(f"CSV error: {e}", where=f"{path}:{reader.line_num}") from None
    else:
        for number, record in enumerate(text.split("\n"), start=1):
            if not record.strip():
                continue
            try:
                row = json.loads(record)
            except json.JSONDecodeError as e:
                raise ConfigError(f"invalid JSON: {e.msg} at column {e.colno}", where=f"{path}:{number}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"expected a JSON object, got {type(row).__name__}", where=f"{path}:{number}")
            rows.append((number, row))
    if not rows:
        raise ConfigError("dataset is empty", where=str(path), hint="add at least one row")
    return rows


def load_examples(
    path: Path,
    fields: dict[str, str],
    target: str | None,
    split_field: str | None = None,
) -> list[Example]:
    """Map each row's fields onto prompt variables. `fields` maps variable -> column."""
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for index, (line, row) in enumerate(read_rows(path)):
        variables: dict[str, Any] = {}
        for var, column in fields.items():
            if column not in row:
                raise ConfigError(
                    f"row has no field {column!r} (needed for variable {var!r})",
                    where=f"{path}:{line}",
                    hint=f"fields in this row: {', '.join(map(str, row)) or 'none'}",
                )
            variables[var] = row[column]
        expected = None
        if target is not None:
            if target not in row:
                raise ConfigError(f"row has no target field {target!r}", where=f"{path}:{line}",
                                  hint=f"fields in this row: {', '.join(map(str, row)) or 'none'}")
            expected = str(row[target])
        key = input_hash(variables)
        seen[key] = seen.get(key, 0) + 1
        example_id = key if seen[key] == 1 else f"{key}-{seen[key]}"
        split = str(row[split_field]) if split_field and row.get(split_field) is not None else None
        examples.append(Example(example_id, index, variables, expected, split))
    return examples


def select_split(examples: list[Example], split: str | None, where: str) -> list[Example]:
    if split is None:
        return examples
    chosen = [e for e in examples if e.split == split]
    if not chosen:
        known = sorted({e.split for e in examples if e.split})
        raise NotFoundError(f"no examples in split {split!r}", where=where, hint=f"splits: {', '.join(known) or 'none'}")
    return chosen
