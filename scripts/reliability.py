#!/usr/bin/env python
"""One command for promptkit's reliability figures: the malformed-input corpus through the real CLI,
the property tests, SIGKILLed evals (and --resume where the CLI has it) and the secrets scan.

    python scripts/reliability.py [--examples N] [--kills N]

Prints inputs tried, clear errors, tracebacks, secrets leaked and examples lost after kills; exits 1
when any traceback, leak, loss or unexpected failure shows up."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="hypothesis examples per property")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLed eval runs")
    args = parser.parse_args()
    os.environ["PROMPTKIT_PROPERTY_EXAMPLES"] = str(args.examples)

    from tests.hard_helpers import eval_help, kill_trial, load_cases, make_slow_project, run_corpus

    started = time.perf_counter()
    failures: list[str] = []

    # 1. the corpus, through the real CLI
    cases = load_cases()
    results = run_corpus(cases)
    xfail = {c["id"]: c["xfail"] for c in cases if c.get("xfail")}
    clear = sum(r.ok for r in results.values())
    tracebacks = sum(r.traceback for r in results.values())
    for r in results.values():
        if not r.ok and r.id not in xfail:
            failures.append(f"corpus {r.id}: {'; '.join(r.problems)}")
    known = [f"{r.id} ({xfail[r.id]})" for r in results.values() if not r.ok and r.id in xfail]

    # 2. property tests, in this process
    import tests.test_properties as props

    unexpected = 0
    for name in dir(props):
        test = getattr(props, name)
        if name.startswith("test_") and hasattr(test, "hypothesis"):
            try:
                test()
            except Exception as e:  # noqa: BLE001 - any non-PromptkitError escape is the finding
                unexpected += 1
                failures.append(f"property {name}: {type(e).__name__}: {e}")
    props.teardown_module()
    tried_props = sum(props.TRIED.values())
    clear_props = sum(props.CLEAR.values())

    # 3. SIGKILL at random points, then --resume when the CLI has it
    resume = "--resume" in eval_help()
    work = Path(tempfile.mkdtemp(prefix="promptkit-reliability-"))
    lost = 0
    try:
        project = make_slow_project(work / "project", rows=24, batch=2, delay=0.1)
        rng = random.Random(int(time.time()))
        for _ in range(args.kills):
            trial = kill_trial(project, rng, 24, 2, resume=resume)
            lost += trial.lost
            failures += [f"kill: {p}" for p in trial.problems]

        # 4. secrets
        from tests.test_secrets import secrets_check

        secret = secrets_check(work / "secrets")
        failures += [f"secrets: {p}" for p in secret["problems"]]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"inputs tried:        {len(results) + tried_props}  ({len(results)} corpus cases through the CLI, "
          f"{tried_props} property examples)")
    print(f"clear errors:        {clear + clear_props}  ({clear}/{len(results)} corpus cases: exit 2, one line naming "
          f"file and place; {clear_props} property inputs answered with a PromptkitError)")
    print(f"known gaps:          {len(known)}" + "".join(f"\n  - {k}" for k in known))
    print(f"tracebacks:          {tracebacks + unexpected}")
    print(f"secrets leaked:      {len(secret['hits'])}  (checked: {', '.join(secret['ran'])}"
          + (f"; skipped: {', '.join(secret['skipped'])}" if secret["skipped"] else "") + ")")
    print(f"examples lost after kills: {lost}  ({args.kills} SIGKILLed evals, "
          + ("each resumed with --resume" if resume else "store checked; --resume not in this build") + ")")
    print(f"time: {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"FAIL {failure}")
    bad = tracebacks + unexpected + len(secret["hits"]) + lost + len(failures)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
