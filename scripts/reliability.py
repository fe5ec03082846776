#!/usr/bin/env python
"""One command for promptkit's reliability figures: the malformed-input corpus through the real CLI
(counted per issue-18 class), the property tests, SIGKILLed evals (and --resume where the CLI has
it), the secrets scan, and the concurrency races: concurrent `prompt label` + `prompt new-version`
rounds and brand-new projects opened by many processes at once.

    python scripts/reliability.py [--examples N] [--kills N] [--races N] [--opens N] [--skip-corpus]

Prints inputs tried, clear errors, tracebacks, secrets leaked, examples lost after kills and
updates lost in races; exits 1 when any traceback, leak, loss or unexpected failure shows up."""

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
    parser.add_argument("--races", type=int, default=20, help="rounds of 20 labels + 20 new-versions at once")
    parser.add_argument("--opens", type=int, default=50, help="rounds of 16 processes opening a new project")
    args = parser.parse_args()
    os.environ["PROMPTKIT_PROPERTY_EXAMPLES"] = str(args.examples)

    from tests.helpers.cli import eval_help
    from tests.helpers.error_corpus import load_cases, run_corpus
    from tests.helpers.kill_trials import kill_trial
    from tests.helpers.projects import slow_project

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
    by_class: dict[str, list[int]] = {}
    for case in cases:
        counts = by_class.setdefault(str(case.get("class", "earlier")), [0, 0])
        counts[0] += 1
        counts[1] += results[case["id"]].ok

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
        project = slow_project(work / "project", rows=24, batch=2, delay=0.1)
        rng = random.Random(int(time.time()))
        for _ in range(args.kills):
            trial = kill_trial(project, rng, 24, 2, resume=resume)
            lost += trial.lost
            failures += [f"kill: {p}" for p in trial.problems]

        # 4. secrets
        from tests.helpers.secrets_scan import secrets_check

        secret = secrets_check(work / "secrets")
        failures += [f"secrets: {p}" for p in secret["problems"]]

        # 5. concurrency (issue 18 class 1): lost updates and failed opens
        from tests.helpers.projects import copy_project
        from tests.helpers.races import library_race, open_race

        race_losses = open_failures = published = 0
        for i in range(args.races):
            race = library_race(copy_project(work / f"race-{i}"), work / f"race-work-{i}", labels=20, publishers=20)
            race_losses += len(race.problems)
            published += race.published
            failures += [f"race {i}: {p}" for p in race.problems]
        for i in range(args.opens):
            (work / f"open-{i}").mkdir()
            problems = open_race(work / f"open-{i}", work / f"open-work-{i}", processes=16)
            open_failures += bool(problems)
            failures += [f"open {i}: {p}" for p in problems]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"inputs tried:        {len(results) + tried_props}  ({len(results)} corpus cases through the CLI, "
          f"{tried_props} property examples)")
    print(f"clear errors:        {clear + clear_props}  ({clear}/{len(results)} corpus cases: exit 2, one line naming "
          f"file and place; {clear_props} property inputs answered with a PromptkitError)")
    names = {"1": "concurrent writers", "2": "damaged or foreign stores", "3": "template resource caps",
             "4": "special files and odd paths", "5": "numbers that are not numbers", "6": "values of the wrong type",
             "7": "gate inputs", "8": "resume after a move", "earlier": "earlier corpus (round one)"}
    for key in sorted(by_class, key=lambda k: (k == "earlier", k)):
        total, ok = by_class[key]
        print(f"  class {key:7} {names.get(key, key):30} {ok}/{total} clear")
    print(f"known gaps:          {len(known)}" + "".join(f"\n  - {k}" for k in known))
    print(f"tracebacks:          {tracebacks + unexpected}")
    print(f"secrets leaked:      {len(secret['hits'])}  (checked: {', '.join(secret['ran'])}"
          + (f"; skipped: {', '.join(secret['skipped'])}" if secret["skipped"] else "") + ")")
    print(f"examples lost after kills: {lost}  ({args.kills} SIGKILLed evals, "
          + ("each resumed with --resume" if resume else "store checked; --resume not in this build") + ")")
    print(f"class 1 races:       {race_losses} problems in {args.races} rounds of 20 `prompt label` + 20 "
          f"`prompt new-version` at once ({published} versions published, every label and message checked)")
    print(f"class 1 opens:       {open_failures} failed rounds of {args.opens} (16 processes opening a brand-new "
          f"project's runs.db and cache.db at once)")
    print("classes 8 and the rest of 2-7: tests/test_reliability_round2.py (files untouched, warnings, lease, --force)")
    print(f"time: {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"FAIL {failure}")
    bad = tracebacks + unexpected + len(secret["hits"]) + lost + len(failures) + race_losses + open_failures
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
