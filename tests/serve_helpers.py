"""Start `promptkit serve` in a subprocess and wait until it is listening."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def start_serve(*args: str, cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str, list[str]]:
    """(process, base URL, stderr lines read so far). The URL comes from the server's ready line."""
    process = subprocess.Popen([sys.executable, "-m", "promptkit", "serve", "--port", "0", *args],
                               cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    log: list[str] = []
    for line in process.stderr:
        log.append(line)
        if "promptkit serve: model" in line:
            return process, line.split(" at ")[1].split()[0], log
    process.wait(timeout=30)
    raise AssertionError("promptkit serve never became ready:\n" + "".join(log))
