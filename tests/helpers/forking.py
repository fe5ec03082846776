"""Forked children that start in milliseconds: the parent imports promptkit once, each child runs one
task with its own output files and exit code, as `python -m promptkit` would."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn


def become_child(task: Callable[[], int], stdout_path: Path, stderr_path: Path, timeout: float) -> NoReturn:
    """In a freshly forked child: send fd 1 and 2 to the files, run `task` under an alarm of `timeout`
    seconds and exit with its code (SystemExit's code; 1 and a printed traceback for anything else)."""
    code = 1
    try:
        with open(stdout_path, "wb") as o, open(stderr_path, "wb") as e:
            os.dup2(o.fileno(), 1)
            os.dup2(e.fileno(), 2)
        # under pytest sys.stdout is a capture object, not fd 1
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
        signal.alarm(int(timeout))
        code = task()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - report like the interpreter would
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@dataclass
class Child:
    returncode: int
    stdout: str
    stderr: str


def fork_all(tasks: list[Callable[[], int]], work: Path, timeout: float = 120,
             while_running: Callable[[], None] | None = None) -> list[Child]:
    """Run each task in its own forked process, all released at once; returns exit codes and output."""
    import promptkit.cli
    import promptkit.cli.prompt  # noqa: F401

    work.mkdir(parents=True, exist_ok=True)
    gate_r, gate_w = os.pipe()
    pids = []
    for i, task in enumerate(tasks):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(gate_w)

            def after_the_barrier(task: Callable[[], int] = task) -> int:
                os.read(gate_r, 1)  # returns when the parent closes its end
                return task()

            become_child(after_the_barrier, work / f"{i}.out", work / f"{i}.err", timeout)
        pids.append(pid)
    os.close(gate_r)
    os.close(gate_w)  # release every child at once
    children: dict[int, int] = {}
    while len(children) < len(pids):
        if while_running is not None:
            while_running()
        for pid in pids:
            if pid in children:
                continue
            done, status = os.waitpid(pid, os.WNOHANG if while_running is not None else 0)
            if done:
                children[pid] = os.waitstatus_to_exitcode(status)
        if while_running is not None:
            time.sleep(0.002)
    return [Child(children[pid], (work / f"{i}.out").read_text(errors="replace"),
                  (work / f"{i}.err").read_text(errors="replace")) for i, pid in enumerate(pids)]
