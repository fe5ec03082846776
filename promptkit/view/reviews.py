"""Human judgments made in `promptkit view`, kept in the run store file in a table of their own.

The table is added here by a small additive migration (CREATE TABLE IF NOT EXISTS), so runs.py
is untouched. Two kinds: `pair` (which of two runs' outputs for the same example is better:
a, b or tie) and `label` (one run's output is right or wrong, or the correct label is X).
Exports: a preference file (`prompt, chosen, rejected` JSONL) and corrected labels (JSONL)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from promptkit.dbfile import open_checked
from promptkit.errors import PromptkitError
from promptkit.report.run_view import prompt_renderer
from promptkit.runs import RunStore, reading

SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    kind TEXT NOT NULL,          -- pair | label
    example_id TEXT NOT NULL,
    run_a TEXT NOT NULL,
    run_b TEXT,                  -- pair reviews only
    choice TEXT NOT NULL,        -- pair: a | b | tie; label: right | wrong | label:NAME
    note TEXT
);
CREATE INDEX IF NOT EXISTS reviews_runs ON reviews(run_a, run_b, example_id);
"""

PAIR_CHOICES = ("a", "b", "tie")


def pair_sides(example_id: str, run_a: str, run_b: str) -> tuple[str, str]:
    """The runs ("a", "b") a blind pair review shows on the left and on the right for this example.

    Blind because a reviewer who knows which output is the baseline judges it differently, and these
    judgments become preference training data. A hash rather than a coin toss: the same example always
    shows the same way, about half are swapped, and the server recomputes it when the form comes back."""
    digest = hashlib.sha256("\0".join((example_id, run_a, run_b)).encode()).digest()
    return ("b", "a") if digest[0] & 1 else ("a", "b")


@dataclass
class Review:
    id: int
    created: str
    kind: str
    example_id: str
    run_a: str
    run_b: str | None
    choice: str
    note: str | None


class ReviewStore:
    def __init__(self, path: Path):
        self.path = path
        # the run store's file: opened under its lock, the reviews table created if missing
        self._db = open_checked(path, "the run store", check=lambda db: None,
                                setup=lambda db: db.executescript(SCHEMA))

    def add(self, kind: str, example_id: str, run_a: str, choice: str, run_b: str | None = None,
            note: str | None = None) -> int:
        if kind == "pair" and choice not in PAIR_CHOICES:
            raise PromptkitError(f"a pair review is a, b or tie, not {choice!r}")
        if kind == "label" and choice not in ("right", "wrong") and not choice.startswith("label:"):
            raise PromptkitError(f"a label review is right, wrong or label:NAME, not {choice!r}")
        if kind not in ("pair", "label"):
            raise PromptkitError(f"unknown review kind {kind!r}")
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        # One judgment per example and pair of runs: a new one replaces the old, in one transaction (two viewers).
        with reading(self.path), self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM reviews WHERE kind = ? AND example_id = ? AND run_a = ? AND run_b IS ?",
                             (kind, example_id, run_a, run_b))
            cursor = self._db.execute(
                "INSERT INTO reviews (created, kind, example_id, run_a, run_b, choice, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (created, kind, example_id, run_a, run_b, choice, note))
            return int(cursor.lastrowid or 0)

    def all(self, kind: str | None = None) -> list[Review]:
        query = "SELECT id, created, kind, example_id, run_a, run_b, choice, note FROM reviews"
        with reading(self.path):
            rows = self._db.execute(query + (" WHERE kind = ?" if kind else "") + " ORDER BY id", (kind,) if kind else ())
            return [Review(*row) for row in rows]

    def done(self, kind: str, run_a: str, run_b: str | None) -> dict[str, str]:
        """example id -> choice, for the reviews already made on these runs."""
        with reading(self.path):
            rows = self._db.execute("SELECT example_id, choice FROM reviews WHERE kind = ? AND run_a = ? AND run_b IS ?",
                                    (kind, run_a, run_b))
            return dict(rows)

    def close(self) -> None:
        self._db.close()


def preference_records(project: Any) -> Iterator[dict[str, Any]]:
    """One `prompt, chosen, rejected` record per pair review with a winner (ties carry no preference).

    `prompt` is the example rendered with the prompt version of the chosen run (the same text for
    both sides when the two runs share a prompt version), else the example's input text."""

    store = RunStore(project.runs_path)
    reviews = ReviewStore(project.runs_path)
    try:
        cache: dict[str, Any] = {}

        def run_of(run_id: str) -> Any:
            if run_id not in cache:
                record = store.run(run_id)
                cache[run_id] = (record, {r.id: r for r in store.results(record.id)},
                                 prompt_renderer(project, record.settings))
            return cache[run_id]

        for review in reviews.all("pair"):
            if review.choice not in ("a", "b") or review.run_b is None:
                continue
            winner, loser = (review.run_a, review.run_b) if review.choice == "a" else (review.run_b, review.run_a)
            (w_rec, w_res, w_render), (l_rec, l_res, _) = run_of(winner), run_of(loser)
            chosen, rejected = w_res.get(review.example_id), l_res.get(review.example_id)
            if chosen is None or rejected is None:
                continue
            prompt = (w_render(chosen) if w_render else None) or "\n".join(str(v) for v in chosen.input.values())
            yield {"prompt": prompt, "chosen": chosen.output, "rejected": rejected.output,
                   "example_id": review.example_id, "chosen_run": w_rec.id, "rejected_run": l_rec.id,
                   "chosen_prompt": w_rec.settings.get("prompt"), "rejected_prompt": l_rec.settings.get("prompt")}
    finally:
        reviews.close()
        store.close()


def label_records(project: Any) -> Iterator[dict[str, Any]]:
    """Corrected labels: per label review, the example, its dataset label and the label a person gave.

    `label` is the reviewer's label: the output itself when marked right, the chosen label when
    one was picked; for `wrong` without a pick it is null (the dataset label is disputed or the output is)."""

    store = RunStore(project.runs_path)
    reviews = ReviewStore(project.runs_path)
    try:
        results: dict[str, dict[str, Any]] = {}
        for review in reviews.all("label"):
            if review.run_a not in results:
                results[review.run_a] = {r.id: r for r in store.results(review.run_a)}
            r = results[review.run_a].get(review.example_id)
            if r is None:
                continue
            shown = r.prediction if r.prediction is not None else r.output
            label = shown if review.choice == "right" else review.choice[6:] if review.choice.startswith("label:") else None
            yield {"id": r.id, "input": r.input, "expected": r.expected, "output": shown, "verdict": review.choice,
                   "label": label, "run": review.run_a, "changed": label is not None and label != r.expected}
    finally:
        reviews.close()
        store.close()


def jsonl(records: Iterator[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
