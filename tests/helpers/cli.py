"""Running the CLI from tests. `run_cli` is the way: a real `python -m promptkit` subprocess on this
checkout's code. `run_cli_in_process` runs click's main in the test process, for tests that make dozens
of calls on a fake model where a subprocess's start-up would dominate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers.projects import ROOT


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this checkout on PYTHONPATH, offline, wide tables, no debug tracebacks."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PROMPTKIT_DEBUG", None)
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path | str = ROOT, env: dict[str, str] | None = None, timeout: float = 600,
            module: str = "promptkit") -> subprocess.CompletedProcess[str]:
    """Run `python -m promptkit ARGS` in a real subprocess (the test's environment plus `env`). `module` runs
    another entry point, e.g. tests.helpers.fakes (the CLI with the test-only fake providers)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def start_cli(*args: str, cwd: Path | str = ROOT, env: dict[str, str] | None = None, module: str = "promptkit",
              **popen: Any) -> subprocess.Popen[str]:
    """`python -m promptkit ARGS` started in the background (text mode; stdout and stderr piped unless
    `popen` says otherwise), for tests that kill it or talk to it while it runs; `module` as for run_cli."""
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, **popen)


def run_cli_in_process(project: Path | None, *args: str, env: dict[str, str] | None = None) -> Any:
    """`promptkit [--project PROJECT] ARGS` in this process; the click Result has exit_code, stdout, stderr.
    Exceptions that escape the CLI's own handling propagate, so a bug shows its traceback."""
    from click.testing import CliRunner

    from promptkit.cli import main

    where = ["--project", str(project)] if project is not None else []
    return CliRunner().invoke(main, [*where, *args], env=env, catch_exceptions=False)


def eval_help() -> str:
    return run_cli("eval", "--help", env=cli_env(), timeout=120).stdout
