"""SIGKILL trials: start an eval on the slow fake model (tests/helpers/fakes.py), kill it at a random point,
check the run store, optionally finish the run with --resume. Shared with scripts/reliability.py."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.cli import cli_env, run_cli, start_cli
from tests.helpers.run_store import run_status, store_check, store_rows

EVAL_SLOW = ["eval", "sentiment@v1", "--suite", "slow", "-m", "slowfake:x"]  # run by tests.helpers.fakes


def start_slow_eval(project: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`promptkit eval` of the slow project's suite in the background (projects.slow_project)."""
    return start_cli(*EVAL_SLOW, *extra, cwd=project, module="tests.helpers.fakes",
                     env=cli_env(PROMPTKIT_CACHE_DIR=str(project / ".cache"), **(env or {})))


@dataclass
class KillTrial:
    seen_before_kill: int  # results the test read from the store just before SIGKILL
    after_kill: int
    after_resume: int | None
    total: int
    problems: list[str]

    @property
    def lost(self) -> int:
        if self.after_resume is not None:
            return self.total - self.after_resume
        return max(0, self.seen_before_kill - self.after_kill)


def kill_trial(project: Path, rng: Any, total: int, batch: int, resume: bool, timeout: float = 120) -> KillTrial:
    """Start an eval, SIGKILL it at a random point (before or while it writes results), check the store,
    and with `resume` finish the run with --resume and check nothing was lost or repeated."""
    import signal

    db = project / ".promptkit" / "runs.db"
    before_runs = set(store_rows(db))
    target = rng.choice([0, *range(batch, total - 2 * batch, batch)])  # 0: kill during start-up / first batch
    proc = start_slow_eval(project)
    deadline = time.monotonic() + timeout
    seen: list[tuple[str, str]] = []
    run_id = None
    while proc.poll() is None and time.monotonic() < deadline:
        runs = {k: v for k, v in store_rows(db).items() if k not in before_runs}
        if runs:
            run_id, seen = next(iter(runs.items()))
        if (run_id and len(seen) >= target) or (target == 0 and rng.random() < 0.3):
            break
        time.sleep(0.01)
    finished_early = proc.poll() is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    problems = [] if not finished_early else ["the run ended before the kill (slow the fake model down)"]
    if db.exists():
        problems += store_check(db)
    runs = {k: v for k, v in store_rows(db).items() if k not in before_runs}
    run_id = run_id or next(iter(runs), None)
    after = runs.get(run_id, []) if run_id else []
    if len(after) % batch:
        problems.append(f"{len(after)} results is not whole batches of {batch}")
    kept = dict(after)
    changed = [eid for eid, data in seen if kept.get(eid) != data]
    if changed:
        problems.append(f"{len(changed)} results written before the kill changed or vanished")
    after_resume = None
    if run_id and run_status(db, run_id) == "finished":  # the last batch beat the kill: nothing to resume
        after_resume = len(after) if resume else None
    elif resume and run_id:
        done = run_cli(*EVAL_SLOW, "--resume", run_id, cwd=project, module="tests.helpers.fakes", timeout=timeout,
                       env=cli_env(PROMPTKIT_CACHE_DIR=str(project / ".cache")))
        if done.returncode != 0:
            problems.append(f"--resume failed ({done.returncode}): {done.stderr[-500:]}")
        final = dict(store_rows(db).get(run_id, []))
        after_resume = len(final)
        if any(final.get(eid) != data for eid, data in after):
            problems.append("--resume rewrote results that were already done")
        problems += store_check(db)
    return KillTrial(len(seen), len(after), after_resume, total, problems)
