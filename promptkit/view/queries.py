"""Read-side queries the app needs beyond RunStore's: filtered, paginated run lists over thousands of runs."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptkit.dbfile import open_readonly
from promptkit.runs import COLUMNS, RunRecord, _record, reading

PAGE_SIZE = 50
FILTERS = ("prompt", "model", "suite", "dataset", "status")
# The dataset path is only in the settings JSON; the others are columns of their own.
COLUMN = {"prompt": "prompt", "model": "model", "suite": "suite", "status": "status",
          "dataset": "json_extract(settings, '$.dataset')"}

# Runs of any version of a prompt, given "NAME@" twice: exact and case-sensitive (LIKE would let `_` and `%` in
# a name match other characters, and `Sentiment` match `sentiment`).
VERSIONS_OF = "substr(prompt, 1, length(?)) = ?"


@dataclass
class RunFilter:
    prompt: str = ""  # a name (all versions) or an exact ref (name@v2)
    model: str = ""
    suite: str = ""
    status: str = ""
    page: int = 1
    dataset: str = ""

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if self.prompt:
            if "@" in self.prompt:
                clauses.append("prompt = ?")
                args.append(self.prompt)
            else:
                clauses.append(f"(prompt = ? OR {VERSIONS_OF})")
                args += [self.prompt, f"{self.prompt}@", f"{self.prompt}@"]
        for column in ("model", "suite", "dataset", "status"):
            value = getattr(self, column)
            if value:
                clauses.append(f"{COLUMN[column]} = ?")
                args.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


@dataclass
class RunPage:
    runs: list[RunRecord]
    total: int
    page: int
    pages: int
    choices: dict[str, list[str]] = field(default_factory=dict)  # distinct values per filter


class Queries:
    """A read-only connection to the run store file (the app never writes runs). A file moved aside and
    replaced by a new store (the recovery the errors advise) is reopened; damage is a PromptkitError naming it."""

    def __init__(self, path: Path):
        self.path = path
        self._file = self._identity()
        self._db = open_readonly(path, "the run store")
        self._choices: tuple[int, dict[str, list[str]]] | None = None

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _current(self) -> sqlite3.Connection:
        """The connection, reopened on the file now at `path` if the one it was opened on was replaced."""
        identity = self._identity()
        if identity is not None and identity != self._file:
            db = open_readonly(self.path, "the run store")
            self._db.close()
            self._db, self._file, self._choices = db, identity, None
        return self._db

    def list_runs(self, f: RunFilter, page_size: int = PAGE_SIZE) -> RunPage:
        where, args = f.where()
        with reading(self.path):
            db = self._current()
            total = int(db.execute(f"SELECT COUNT(*) FROM runs{where}", args).fetchone()[0])
            pages = max(1, -(-total // page_size))
            page = min(max(1, f.page), pages)
            rows = db.execute(f"SELECT {COLUMNS} FROM runs{where} ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?",
                              [*args, page_size, (page - 1) * page_size])
            return RunPage([_record(row) for row in rows], total, page, pages, self.choices())

    def choices(self) -> dict[str, list[str]]:
        """Distinct values per filter; recomputed only when another connection has written the store."""
        with reading(self.path):
            db = self._current()
            version = db.execute("PRAGMA data_version").fetchone()[0]
            if self._choices is None or self._choices[0] != version:
                choices = {}
                for column in FILTERS:
                    expr = COLUMN[column]
                    values = [str(v) for (v,) in db.execute(f"SELECT DISTINCT {expr} FROM runs WHERE {expr} IS NOT NULL")]
                    if column == "prompt":
                        values += list({v.split("@")[0] for v in values})
                    choices[column] = sorted(set(values))
                self._choices = (version, choices)
            return self._choices[1]

    def counts(self, run_ids: list[str]) -> dict[str, int]:
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        with reading(self.path):
            rows = self._current().execute(
                f"SELECT run_id, COUNT(*) FROM results WHERE run_id IN ({marks}) GROUP BY run_id", run_ids)
            return {run_id: int(n) for run_id, n in rows}

    def runs_of_prompt(self, name: str) -> list[RunRecord]:
        with reading(self.path):
            rows = self._current().execute(f"SELECT {COLUMNS} FROM runs WHERE {VERSIONS_OF} ORDER BY created DESC",
                                           (f"{name}@", f"{name}@"))
            return [_record(row) for row in rows]

    def close(self) -> None:
        self._db.close()


def main_metric(run: RunRecord) -> tuple[str, float] | None:
    """The run's headline number: accuracy, else the first quality metric it has."""
    by_name = {m["name"]: m for m in run.metrics}
    for name in ("accuracy", "exact_match", "f1_macro", "relevance", "rouge_l", "bleu"):
        if name in by_name and by_name[name].get("value") is not None:
            return name, float(by_name[name]["value"])
    for m in run.metrics:
        if m.get("higher_is_better") and m.get("value") is not None:
            return str(m["name"]), float(m["value"])
    return None
