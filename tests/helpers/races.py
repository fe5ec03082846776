"""Concurrent writers, shared by tests/test_store_concurrency.py and scripts/reliability.py.

Each race forks real processes (tests/helpers/forking.py), holds them at a barrier, and lets them go
at the same instant. A CLI child runs `promptkit ARGS` exactly as `python -m promptkit` does."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.forking import fork_all


def cli_task(project: Path, *args: str) -> Callable[[], int]:
    def run() -> int:
        from promptkit.cli import main

        os.chdir(project)
        os.environ["COLUMNS"] = "300"
        main(list(args), prog_name="promptkit")
        return 0

    return run


@dataclass
class RaceResult:
    problems: list[str] = field(default_factory=list)
    published: int = 0
    labels: int = 0


def library_race(project: Path, work: Path, labels: int = 20, publishers: int = 20) -> RaceResult:
    """`labels` concurrent `prompt label` and `publishers` concurrent `prompt new-version -m MSG`
    on one prompt, while the working copy keeps changing under them. Checks: every command exits 0,
    every label is present, versions are numbered without gaps or duplicates, no content is
    published twice, and every version a command reports publishing holds that command's message."""
    from promptkit.config import atomic_write

    folder = project / "prompts" / "sentiment"
    before = sorted(int(p.stem[1:]) for p in (folder / "versions").glob("v*.yaml"))
    base = (folder / "prompt.yaml").read_text(encoding="utf-8")
    tasks = [cli_task(project, "prompt", "label", "sentiment@v1", f"lane-{i}") for i in range(labels)]
    tasks += [cli_task(project, "prompt", "new-version", "sentiment", "-m", f"message {i}") for i in range(publishers)]
    edits = iter(range(10**9))

    def edit() -> None:  # the working copy changes while the publishers read it
        atomic_write(folder / "prompt.yaml", base.replace("{{ text }}", f"{{{{ text }}}} (edit {next(edits)})", 1))

    children = fork_all(tasks, work, while_running=edit)
    result = RaceResult()
    for i, child in enumerate(children):
        if child.returncode != 0:
            result.problems.append(f"command {i} exited {child.returncode}: {child.stderr.strip()[-300:]}")
    have = yaml.safe_load((folder / "versions" / "labels.yaml").read_text(encoding="utf-8")) or {}
    missing = [f"lane-{i}" for i in range(labels) if have.get(f"lane-{i}") != "v1"]
    if missing:
        result.problems.append(f"{len(missing)} labels lost: {missing[:5]}")
    result.labels = labels - len(missing)
    numbers = sorted(int(p.stem[1:]) for p in (folder / "versions").glob("v*.yaml"))
    if numbers != list(range(1, len(numbers) + 1)):
        result.problems.append(f"version numbers have gaps or duplicates: {numbers}")
    records = {n: yaml.safe_load((folder / "versions" / f"v{n}.yaml").read_text(encoding="utf-8")) for n in numbers}
    hashes = [r["hash"] for r in records.values()]
    if len(set(hashes)) != len(hashes):
        result.problems.append("the same content was published twice")
    claimed: dict[int, str] = {}
    for i, child in enumerate(children[labels:]):
        match = re.search(r"published sentiment@v(\d+)", child.stdout)
        if match:
            number = int(match.group(1))
            if number in claimed:
                result.problems.append(f"two commands both published v{number}")
            claimed[number] = f"message {i}"
            if records.get(number, {}).get("message") != f"message {i}":
                result.problems.append(f"v{number} lost its message ({records.get(number, {}).get('message')!r} "
                                       f"instead of 'message {i}')")
        elif "unchanged" not in child.stdout and child.returncode == 0:
            result.problems.append(f"new-version {i} printed neither 'published' nor 'unchanged': {child.stdout!r}")
    new = [n for n in numbers if n not in before]
    if sorted(claimed) != new:
        result.problems.append(f"versions created {new} but commands reported {sorted(claimed)}")
    result.published = len(claimed)
    (folder / "prompt.yaml").write_text(base, encoding="utf-8")
    return result


def open_task(project: Path, index: int) -> Callable[[], int]:
    """Open both stores of a (brand-new) project and write to each."""

    def run() -> int:
        from promptkit.cache import ResponseCache
        from promptkit.results import Response
        from promptkit.runs import RunStore

        state = project / ".promptkit"
        store = RunStore(state / "runs.db")
        cache = ResponseCache(state / "cache.db")
        run_id = store.create_run({"prompt": f"p@v{index}"})
        store.finish_run(run_id, [])
        cache.put_many([(f"key-{index}", Response(output=f"answer {index}"))])
        store.close()
        cache.close()
        return 0

    return run


def open_race(project: Path, work: Path, processes: int = 16) -> list[str]:
    """`processes` processes open one brand-new project's run store and cache at the same instant."""
    children = fork_all([open_task(project, i) for i in range(processes)], work)
    problems = [f"process {i} exited {c.returncode}: {c.stderr.strip()[-300:]}"
                for i, c in enumerate(children) if c.returncode != 0]
    import sqlite3

    for name, query in (("runs.db", "SELECT COUNT(*) FROM runs"), ("cache.db", "SELECT COUNT(*) FROM responses")):
        path = project / ".promptkit" / name
        if not path.exists():
            problems.append(f"{name} was not created")
            continue
        con = sqlite3.connect(str(path))
        try:
            count = con.execute(query).fetchone()[0]
        finally:
            con.close()
        if count != processes:
            problems.append(f"{name} holds {count} rows, expected {processes}")
    return problems


def summary(data: Any) -> str:
    return json.dumps(data, sort_keys=True)
