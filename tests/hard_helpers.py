"""Helpers for the reliability tests (corpus, crash safety, secrets), shared with scripts/reliability.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
SHOW = ["prompt", "show", "sentiment@working", "-m", "fake:x"]
COMMANDS = {
    "show": SHOW,
    "eval": ["eval", "sentiment@working", "-m", "fake:x", "--no-store"],
    "list": ["prompt", "list"],
}


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PROMPTKIT_DEBUG", None)
    env.update(extra)
    return env


def make_project(where: Path) -> Path:
    """A scratch copy of the repo's prompts/ and evals/."""
    where.mkdir(parents=True, exist_ok=True)
    for name in ("prompts", "evals"):
        shutil.copytree(ROOT / name, where / name)
    return where


def load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


@dataclass
class CaseResult:
    id: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    where: str
    problems: list[str] = field(default_factory=list)

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stdout + self.stderr

    @property
    def ok(self) -> bool:
        return not self.problems


def _place(project: Path, scratch: Path, name: str, spec: Any) -> None:
    path = Path(name.replace("{tmp}", str(scratch)))
    path = path if path.is_absolute() else project / path
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(spec, str):
        path.write_bytes(spec.encode("utf-8"))
    elif "from" in spec:
        shutil.copyfile(CORPUS / spec["from"], path)
    elif "size_mb" in spec:
        with path.open("wb") as f:  # sparse: instant, takes no disk
            f.truncate(int(spec["size_mb"]) * 1_000_000)
    elif "symlink" in spec:
        path.symlink_to(spec["symlink"].replace("{tmp}", str(scratch)))
    elif "mkdir" in spec:
        path.mkdir()
    elif "fifo" in spec:
        os.mkfifo(path)
    elif "delete" in spec:
        pass
    else:
        raise ValueError(f"unknown file spec {spec!r}")


def prepare_case(case: dict[str, Any], base: Path) -> dict[str, Any]:
    """Build the case's scratch project; returns a job: id, cwd, args, cache."""
    work = base / case["id"]
    project, scratch = make_project(work / "project"), work / "scratch"
    scratch.mkdir(parents=True)
    for name, spec in (case.get("files") or {}).items():
        _place(project, scratch, name, spec)
    args = [a.replace("{tmp}", str(scratch)) for a in case.get("args") or COMMANDS[case["cmd"]]]
    return {"id": case["id"], "cwd": str(project), "args": args, "cache": str(work / "cache")}


def run_case(case: dict[str, Any], base: Path, timeout: float = 60) -> CaseResult:
    """One case in its own `python -m promptkit` process."""
    job = prepare_case(case, base)
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "promptkit", *job["args"]], cwd=job["cwd"], capture_output=True,
                              text=True, timeout=timeout, env=cli_env(PROMPTKIT_CACHE_DIR=job["cache"]))
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ""
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr or ""
        return CaseResult(case["id"], -1, out, err, timeout, case["where"], [f"timed out after {timeout:.0f}s"])
    return check_case(case, proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)


def check_case(case: dict[str, Any], returncode: int, stdout: str, stderr: str, seconds: float) -> CaseResult:
    result = CaseResult(case["id"], returncode, stdout, stderr, seconds, case["where"])
    lines = [line for line in stderr.splitlines() if line.strip()]
    if returncode == -9:
        result.problems.append("timed out")
    elif returncode != 2:
        result.problems.append(f"exit code {returncode}, expected 2")
    if result.traceback:
        result.problems.append("printed a traceback")
    if len(lines) != 1:
        result.problems.append(f"{len(lines)} lines on stderr, expected exactly one")
    errors = [line for line in lines if line.startswith("error: ")]
    if len(errors) != 1:
        result.problems.append("no single 'error: ...' line")
    elif case["where"] not in errors[0]:
        result.problems.append(f"the message does not name {case['where']!r}")
    return result


def run_corpus(cases: list[dict[str, Any]] | None = None, own_process: int = 4, timeout: float = 30) -> dict[str, CaseResult]:
    """Run every case. The first `own_process` cases (and any marked `own_process: true`) each get a
    fresh `python -m promptkit`; the rest run in one batch process that imports promptkit once and
    forks a child per case which runs `python -m promptkit` semantics (runpy) with its own argv,
    folder, environment and output files: the same code path, without 1 s of start-up per case."""
    cases = cases if cases is not None else load_cases()
    base = Path(tempfile.mkdtemp(prefix="promptkit-corpus-"))
    try:
        alone = [c for i, c in enumerate(cases) if i < own_process or c.get("own_process")]
        batch = [c for c in cases if c not in alone]
        jobs = [prepare_case(c, base) for c in batch]
        with ThreadPoolExecutor(2) as pool:
            singles = pool.map(lambda c: run_case(c, base, c.get("timeout", timeout)), alone)
            proc = subprocess.run([sys.executable, "-c", "from tests.hard_helpers import batch_main; batch_main()"],
                                  input=json.dumps({"jobs": jobs, "timeout": timeout}), capture_output=True, text=True,
                                  cwd=ROOT, env=cli_env(), timeout=timeout * 4 + 10 * len(jobs))
            results = list(singles)
        if proc.returncode != 0:
            raise RuntimeError(f"corpus batch runner failed: {proc.stderr[-3000:]}")
        by_id = {c["id"]: c for c in batch}
        for row in json.loads(proc.stdout):
            results.append(check_case(by_id[row["id"]], row["returncode"], row["stdout"], row["stderr"], row["seconds"]))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    order = {c["id"]: i for i, c in enumerate(cases)}
    return {r.id: r for r in sorted(results, key=lambda r: order[r.id])}


def batch_main() -> None:
    """The batch runner: reads jobs as JSON on stdin, prints results as JSON."""
    import runpy
    import signal

    # What every case imports anyway, imported once before forking.
    import promptkit.cli
    import promptkit.cli.eval
    import promptkit.cli.prompt
    import promptkit.library.diff
    import promptkit.library.inspect  # noqa: F401

    request = json.load(sys.stdin)
    out = []
    for job in request["jobs"]:
        folder = Path(job["cache"]).parent
        folder.mkdir(parents=True, exist_ok=True)
        stdout_path, stderr_path = folder / "stdout.txt", folder / "stderr.txt"
        sys.stdout.flush()
        sys.stderr.flush()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the child: become `python -m promptkit ARGS` in the case's folder
            code = 1
            try:
                with open(stdout_path, "wb") as o, open(stderr_path, "wb") as e:
                    os.dup2(o.fileno(), 1)
                    os.dup2(e.fileno(), 2)
                os.chdir(job["cwd"])
                os.environ.update(cli_env(PROMPTKIT_CACHE_DIR=job["cache"]))
                sys.argv = ["promptkit", *job["args"]]
                signal.alarm(int(request["timeout"]))
                runpy.run_module("promptkit", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except BaseException:  # noqa: BLE001 - what the interpreter does: print the traceback, exit 1
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        if returncode == -signal.SIGALRM:
            returncode = -9
        out.append({"id": job["id"], "returncode": returncode, "seconds": time.perf_counter() - start,
                    "stdout": stdout_path.read_text(errors="replace"), "stderr": stderr_path.read_text(errors="replace")})
    sys.stdout.write(json.dumps(out))


# ---------------------------------------------------------------- runs with a slow fake model

EVAL_SLOW = [sys.executable, "-m", "tests.hard_cli", "eval", "sentiment@v1", "--suite", "slow", "-m", "slowfake:x"]


def make_slow_project(where: Path, rows: int = 40, batch: int = 2, delay: float = 0.05) -> Path:
    """A scratch project with a suite `slow`: `rows` distinct examples, the slow fake model."""
    project = make_project(where)
    lines = [json.dumps({"text": f"review number {i}: {'great' if i % 2 else 'awful'}",
                         "label": "positive" if i % 2 else "negative"}) for i in range(rows)]
    (project / "evals" / "data" / "slow.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (project / "evals" / "slow.yaml").write_text(
        "prompt: sentiment\ndataset: {path: data/slow.jsonl}\n"
        f"provider_options: {{batch_size: {batch}, delay: {delay}}}\n", encoding="utf-8")
    return project


def start_eval(project: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([*EVAL_SLOW, *extra], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(PYTHONPATH=f"{ROOT}", PROMPTKIT_CACHE_DIR=str(project / ".cache"), **(env or {})))


def store_rows(db: Path) -> dict[str, list[tuple[str, str]]]:
    """run id -> [(example id, data)] read from the run store (read-only, while others write)."""
    import sqlite3

    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        runs = {run_id: [] for (run_id,) in con.execute("SELECT id FROM runs")}
        for run_id, example_id, data in con.execute("SELECT run_id, example_id, data FROM results"):
            runs.setdefault(run_id, []).append((example_id, data))
        return runs
    except sqlite3.OperationalError:  # tables not created yet
        return {}
    finally:
        con.close()


def run_status(db: Path, run_id: str) -> str | None:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def store_check(db: Path) -> list[str]:
    """Problems with a run store file: integrity, and rows that are not whole example results."""
    import sqlite3

    problems = []
    con = sqlite3.connect(str(db), timeout=30)
    try:
        (status,) = con.execute("PRAGMA integrity_check").fetchone()
        if status != "ok":
            problems.append(f"integrity_check: {status}")
        keys = {"id", "index", "input", "expected", "output", "prediction", "correct", "error", "tokens_in", "latency"}
        for example_id, data in con.execute("SELECT example_id, data FROM results"):
            try:
                row = json.loads(data)
            except ValueError:
                problems.append(f"result {example_id} is not JSON")
                continue
            if not keys <= set(row) or row["id"] != example_id:
                problems.append(f"result {example_id} is partial")
    finally:
        con.close()
    return problems


def eval_help() -> str:
    proc = subprocess.run([sys.executable, "-m", "promptkit", "eval", "--help"], capture_output=True, text=True,
                          env=cli_env(), cwd=ROOT, timeout=120)
    return proc.stdout


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
    proc = start_eval(project)
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
        done = subprocess.run([*EVAL_SLOW, "--resume", run_id], cwd=project, capture_output=True, text=True, timeout=timeout,
                              env=cli_env(PROMPTKIT_CACHE_DIR=str(project / ".cache")))
        if done.returncode != 0:
            problems.append(f"--resume failed ({done.returncode}): {done.stderr[-500:]}")
        final = dict(store_rows(db).get(run_id, []))
        after_resume = len(final)
        if any(final.get(eid) != data for eid, data in after):
            problems.append("--resume rewrote results that were already done")
        problems += store_check(db)
    return KillTrial(len(seen), len(after), after_resume, total, problems)
