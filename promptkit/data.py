"""Datasets: JSONL or CSV files, a field mapping onto prompt variables, splits, hashing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptkit.config import decode_text
from promptkit.errors import ConfigError, NotFoundError
from promptkit.fileio import read_regular
from promptkit.strict_json import loads_strict


@dataclass(frozen=True)
class Example:
    """One dataset row, mapped onto the prompt's variables."""

    id: str  # stable: a hash of the input variables (and an index for duplicates)
    index: int  # position in the file
    vars: dict[str, Any]
    target: str | None
    split: str | None = None
    line: int | None = None  # line in the file (for messages)


def file_hash(path: Path) -> str:
    import stat

    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError as e:
        raise ConfigError(f"cannot read the dataset: {e.strerror or e}", where=str(path)) from None
    if not regular:
        raise ConfigError("dataset path is not a regular file", where=str(path), hint="give the path of an ordinary file")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def input_hash(variables: dict[str, Any]) -> str:
    canonical = json.dumps(variables, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def max_dataset_bytes() -> int:
    """Datasets are read whole; refuse files above PROMPTKIT_MAX_DATASET_MB (default 50)."""
    try:
        value = float(os.environ.get("PROMPTKIT_MAX_DATASET_MB", "50"))
    except ValueError:
        return 50_000_000
    # NaN, infinity (int() of it raises OverflowError) or a size of none: the default
    return int(value * 1e6) if 0 < value < 1e9 else 50_000_000


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for each record of a .jsonl/.json-lines or .csv/.tsv file."""
    if not path.exists():
        raise NotFoundError("dataset file not found", where=str(path), hint="check the path (relative to where you run)")
    if path.is_dir():
        raise ConfigError("dataset path is a folder, not a file", where=str(path))
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv", ".tsv"):
        raise ConfigError(f"unsupported dataset format {suffix or '(none)'!r}", where=str(path), hint="use .jsonl or .csv")
    limit = max_dataset_bytes()
    try:
        raw = read_regular(path, limit, "dataset")
    except ConfigError as e:
        if "limit" in e.message:
            raise ConfigError(e.message, where=e.where,
                              hint="use a sample, or raise the limit with PROMPTKIT_MAX_DATASET_MB") from None
        raise
    text = decode_text(raw, path, "utf-8-sig")  # -sig: tolerate a byte-order mark
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix in (".csv", ".tsv"):
        # the whole file is already bounded by `limit`: a long document in one cell is data, not a quoting error
        csv.field_size_limit(max(csv.field_size_limit(), limit))
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",", strict=True)
        try:
            if reader.fieldnames is not None and not any(name.strip() for name in reader.fieldnames):
                # a blank first line would make every row "longer than the header"
                raise ConfigError("the first line is the header but names no column", where=f"{path}:1",
                                  hint="put the column names (e.g. text,label) on the first line")
            for row in reader:
                if None in row:
                    raise ConfigError(f"row has {len(row) - 1 + len(row[None])} values but the header names {len(row) - 1}",
                                      where=f"{path}:{reader.line_num}", hint="quote values that contain the delimiter")
                if any(v is None for v in row.values()):
                    raise ConfigError(f"row has fewer values than the header's {len(row)} columns",
                                      where=f"{path}:{reader.line_num}", hint="fill in every column (empty is fine)")
                rows.append((reader.line_num, dict(row)))
        except csv.Error as e:
            # the reader fails inside the record that starts after the last line it finished
            line = min(reader.line_num + 1, text.count("\n") + 1)
            raise ConfigError(f"CSV error: {e}", where=f"{path}:{line}",
                              hint='check the quoting: wrap a value holding quotes in "..." and double inner quotes') from None
        except RecursionError:
            raise ConfigError("CSV nested too deeply", where=str(path)) from None
        if reader.fieldnames is not None and len(set(reader.fieldnames)) != len(reader.fieldnames):
            duplicates = sorted({f for f in reader.fieldnames if reader.fieldnames.count(f) > 1})
            raise ConfigError(f"the header repeats column {duplicates[0]!r}", where=f"{path}:1")
    else:
        for number, record in enumerate(text.split("\n"), start=1):
            if not record.strip():
                continue
            try:
                row = loads_strict(record, _RowError, "duplicate key {key!r} in one JSON object (which value is meant?)",
                                  "{name} is not a number JSON allows")
            except _RowError as e:
                raise ConfigError(str(e), where=f"{path}:{number}", hint="fix that row") from None
            except json.JSONDecodeError as e:
                raise ConfigError(f"invalid JSON: {e.msg} at column {e.colno}", where=f"{path}:{number}",
                                  hint="each line must be one JSON object") from None
            except RecursionError:
                raise ConfigError("JSON nested too deeply", where=f"{path}:{number}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"expected a JSON object, got {type(row).__name__}", where=f"{path}:{number}")
            rows.append((number, row))
    if not rows:
        raise ConfigError("dataset is empty", where=str(path), hint="add at least one row")
    return rows


class _RowError(ValueError):
    """A JSON row that parses but cannot be taken as written."""


def _check_value(value: Any, column: str, where: str) -> None:
    """A dataset value a prompt can render: text, a number, a boolean, or lists/objects of those."""
    if value is None:
        raise ConfigError(f"field {column!r} is null", where=where,
                          hint="give it a value (an empty string if it is meant to be empty)")


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
            _check_value(row[column], column, f"{path}:{line}")
            variables[var] = row[column]
        expected = None
        if target is not None:
            if target not in row:
                raise ConfigError(f"row has no target field {target!r}", where=f"{path}:{line}",
                                  hint=f"fields in this row: {', '.join(map(str, row)) or 'none'}")
            if row[target] is None or isinstance(row[target], (dict, list)):
                raise ConfigError(f"target field {target!r} is {json.dumps(row[target])[:40]}, not a label or text",
                                  where=f"{path}:{line}", hint="give each row a target value")
            # JSON's own spelling: a `true` target is the label "true", not Python's "True"
            expected = row[target] if isinstance(row[target], str) else json.dumps(row[target])
        key = input_hash(variables)
        seen[key] = seen.get(key, 0) + 1
        example_id = key if seen[key] == 1 else f"{key}-{seen[key]}"
        split = str(row[split_field]) if split_field and row.get(split_field) is not None else None
        examples.append(Example(example_id, index, variables, expected, split, line))
    return examples


def select_split(examples: list[Example], split: str | None, where: str) -> list[Example]:
    if split is None:
        return examples
    chosen = [e for e in examples if e.split == split]
    # a row whose split differs only by case, spacing or a look-alike letter was meant for it: leaving it
    # out would score the split on fewer rows than the file holds, silently
    odd = next((e for e in examples if e.split is not None and e.split != split and _looks_alike(e.split, split)), None)
    if odd is not None:
        raise ConfigError(f"split value {odd.split!r} looks like the split {split!r} but is not it", where=f"{where}:{odd.line}"
                          if odd.line else where, hint=f"write the split as {split!r} in every row meant for it")
    if not chosen:
        known = sorted({e.split for e in examples if e.split})
        raise NotFoundError(f"no examples in split {split!r}", where=where, hint=f"splits: {', '.join(known) or 'none'}")
    return chosen


def _looks_alike(a: str, b: str) -> bool:
    """Two names that differ only by case, spacing, Unicode compatibility form or a non-ASCII look-alike letter."""
    a, b = (unicodedata.normalize("NFKC", x).casefold().strip() for x in (a, b))
    return a == b or (len(a) == len(b) and all(x == y or not (x.isascii() and y.isascii()) for x, y in zip(a, b, strict=True)))
