"""The corpus of malformed inputs (tests/corpus/cases.yaml) run through the real CLI: each case must end
with exit 2 and one `error:` line naming the place. Shared with scripts/reliability.py."""

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

from tests.helpers.cli import cli_env, run_cli
from tests.helpers.forking import become_child
from tests.helpers.projects import ROOT, copy_project

CORPUS = ROOT / "tests" / "corpus"
SHOW = ["prompt", "show", "sentiment@working", "-m", "fake:x"]
COMMANDS = {
    "show": SHOW,
    "eval": ["eval", "sentiment@working", "-m", "fake:x", "--no-store"],
    "list": ["prompt", "list"],
}


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
    project, scratch = copy_project(work / "project"), work / "scratch"
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
        proc = run_cli(*job["args"], cwd=job["cwd"], timeout=timeout, env=cli_env(PROMPTKIT_CACHE_DIR=job["cache"]))
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
            proc = subprocess.run([sys.executable, "-c", "from tests.helpers.error_corpus import batch_main; batch_main()"],
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


def run_promptkit_main(job: dict[str, Any]) -> int:
    """`python -m promptkit ARGS` semantics (runpy) in the job's folder, environment and argv."""
    import runpy

    os.chdir(job["cwd"])
    os.environ.update(cli_env(PROMPTKIT_CACHE_DIR=job["cache"]))
    sys.argv = ["promptkit", *job["args"]]
    runpy.run_module("promptkit", run_name="__main__", alter_sys=True)
    return 0


def batch_main() -> None:
    """The batch runner: reads jobs as JSON on stdin, prints results as JSON."""
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
            become_child(lambda job=job: run_promptkit_main(job), stdout_path, stderr_path, request["timeout"])
        _, status = os.waitpid(pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        if returncode == -signal.SIGALRM:
            returncode = -9
        out.append({"id": job["id"], "returncode": returncode, "seconds": time.perf_counter() - start,
                    "stdout": stdout_path.read_text(errors="replace"), "stderr": stderr_path.read_text(errors="replace")})
    sys.stdout.write(json.dumps(out))
