"""Acceptance 4: an identical second `promptkit eval` is served from the response cache without
loading the model, at least 20x faster as a whole process than the first.

Runs the embedded SmolLM2 on N examples of the sentiment suite in a scratch project, twice, as
separate processes, and prints both wall times and their ratio. The model's one-time GGUF conversion
is done beforehand (untimed), so the first run is an ordinary uncached run.

    python benchmarks/cache_rerun.py [--examples 30] [--data ../shared/data/sentiment/yelp.jsonl]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import sys, runpy
sys.argv = ["promptkit", *sys.argv[1:]]
try:
    runpy.run_module("promptkit", run_name="__main__")
except SystemExit as e:
    code = e.code
else:
    code = 0
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def run(project: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, "--project", str(project), *args],
                          capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"promptkit {' '.join(args)} failed:\n{done.stderr}")
    return elapsed, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--data", type=Path, help="score this file (e.g. ../shared/data/sentiment/yelp.jsonl)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        for name in ("prompts", "evals"):
            shutil.copytree(ROOT / name, project / name)
        args: tuple[str, ...] = ("eval", "sentiment", "--limit", str(options.examples))
        if options.data:
            args += ("--data", str(options.data.resolve()))
        run(project, "eval", "sentiment", "--limit", "1", "--no-cache", "--no-store")  # one-time model conversion
        first, first_log = run(project, *args)
        second, second_log = run(project, *args)
        hits = next((line for line in second_log.splitlines() if "from the cache" in line), "?")
        print(f"first run (model loaded): {first:.2f} s   [{first_log.strip().splitlines()[-1]}]")
        print(f"second run (cached):      {second:.2f} s   [{hits.strip()}; {second_log.strip().splitlines()[-1]}]")
        print(f"cached re-run speedup: {first / second:.1f}x (goal: at least 20x)")


if __name__ == "__main__":
    main()
