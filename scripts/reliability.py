#!/usr/bin/env python
"""One command for promptkit's reliability figures: the malformed-input corpus through the real CLI
(counted per issue-18 class), the property tests, SIGKILLed evals (and --resume where the CLI has
it), the secrets scan, the concurrency races: concurrent `prompt label` + `prompt new-version`
rounds and brand-new projects opened by many processes at once, and classes 9-11 (secrets in
outputs, `promptkit serve` under hostile clients, faults the user pays for) through their named
non-model tests plus, unless --skip-serve, a short hostile-client run against a real `promptkit serve`
on the embedded model.

    python scripts/reliability.py [--examples N] [--kills N] [--races N] [--opens N] [--skip-serve]

Prints inputs tried, clear errors, tracebacks, secrets leaked, examples lost after kills and
updates lost in races; exits 1 when any traceback, leak, loss or unexpected failure shows up."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

# Issue 18 classes 9-11: the fast, non-model tests of each class, by test id (file::function; every
# parametrisation counts as a case).
CLASS_TESTS = {
    "9": ["tests/test_secrets.py::test_key_never_in_argv_of_child_commands",
          "tests/test_http_eval.py::test_key_echoed_by_the_endpoint_is_redacted_everywhere",
          "tests/test_reliability_classes.py::test_class9_key_echoed_inside_a_json_error_body",
          "tests/test_reliability_classes.py::test_class9_key_echoed_in_a_chat_reply"],
    "10": ["tests/test_serve_hostile.py::test_refuses_to_listen_beyond_loopback_without_a_key",
           "tests/test_serve_hostile.py::test_hostile_script_refuses_other_hosts"],
    "11": ["tests/test_http_eval.py::test_bad_key_stops_the_run_at_the_first_401",
           "tests/test_http_eval.py::test_dead_endpoint_fails_the_run_fast",
           "tests/test_http_eval.py::test_a_run_whose_every_example_failed_exits_nonzero_and_is_recorded_failed",
           "tests/test_http_eval.py::test_whole_request_is_bounded_by_the_timeout",
           "tests/test_reliability_classes.py::test_class11_endpoint_that_accepts_and_never_answers",
           "tests/test_reliability_classes.py::test_class11_endpoint_that_answers_500_then_goes_down"],
}


def class_tests(work: Path) -> dict[str, list[tuple[str, bool]]]:
    """{class: [(test id, passed)]} from one `pytest -m "not model"` run over CLASS_TESTS."""
    report = work / "class-tests.xml"
    ids = [t for tests in CLASS_TESTS.values() for t in tests]
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not model", "-p", "no:cacheprovider",
                    f"--junitxml={report}", *ids], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    outcomes: dict[str, bool] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            file = case.get("classname", "").replace(".", "/") + ".py"
            outcomes[f"{file}::{case.get('name')}"] = not any(c.tag in ("failure", "error", "skipped") for c in case)
    found: dict[str, list[tuple[str, bool]]] = {}
    for key, tests in CLASS_TESTS.items():
        for test in tests:
            ran = [(tid, ok) for tid, ok in outcomes.items() if tid == test or tid.startswith(test + "[")]
            found.setdefault(key, []).extend(ran or [(test + " (did not run)", False)])
    return found


def serve_scenarios(work: Path) -> list[tuple[str, bool]]:
    """Class 10 against a real `promptkit serve` (embedded model): a short hostile-client run, then
    a 10 MB body, n=1000 and max_tokens=10**9, each answered with a clear 4xx or a capped answer."""
    from tests.helpers.serving import serving

    key = "sk-reliability-serve-key"
    cases: list[tuple[str, bool]] = []
    with serving("--read-timeout", "1", "--max-connections", "32", "--max-prompt-tokens", "512",
                 "--max-tokens", "8", key=key, cwd=work) as client:
        hostile = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "hostile_clients.py"), "--url", client.url, "--key", key,
             "--pid", str(client.process.pid), "--connections", "150", "--slow", "8", "--duration", "4",
             "--tick", "0.2", "--echo-bytes", "200000", "--max-latency", "1.0"],
            capture_output=True, text=True, timeout=300)
        verdict = "" if hostile.returncode == 0 else f": {(hostile.stdout + hostile.stderr).strip()[-400:]}"
        cases.append(("hostile_clients.py (150 connections, 8 slow headers, 8 slow bodies, 200 kB echo)" + verdict,
                      hostile.returncode == 0))
        chat = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]}
        try:
            status, answer = client.call("/chat/completions", raw=json.dumps(
                {**chat, "messages": [{"role": "user", "content": "x" * 10_000_000}]}).encode())
        except OSError as e:  # the server may close the socket before reading the whole body
            status, answer = 413, {"error": {"message": f"connection closed: {e}"}}
        cases.append((f"10 MB body -> {status}", status == 413))
        status, answer = client.call("/chat/completions", {**chat, "n": 1000})
        cases.append((f"n=1000 -> {status}", status == 400 and "n" in json.dumps(answer)))
        status, answer = client.call("/chat/completions", {**chat, "max_tokens": 10**9})
        tokens = answer.get("usage", {}).get("completion_tokens", 10**9) if status == 200 else 10**9
        cases.append((f"max_tokens=10**9 -> {status}, {tokens} tokens", status == 200 and tokens <= 8))
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="hypothesis examples per property")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLed eval runs")
    parser.add_argument("--races", type=int, default=20, help="rounds of 20 labels + 20 new-versions at once")
    parser.add_argument("--opens", type=int, default=50, help="rounds of 16 processes opening a new project")
    parser.add_argument("--skip-serve", action="store_true",
                        help="class 10 without the hostile-client run against `promptkit serve` (embedded model)")
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

        # 6. classes 9-11: their non-model tests, the secrets scan (9) and serve under attack (10)
        classes = class_tests(work)
        classes["9"].append((f"secrets scan ({', '.join(secret['ran'])})", not secret["hits"] and not secret["problems"]))
        if not args.skip_serve:
            classes["10"] += serve_scenarios(work)
        for key, ran in classes.items():
            failures += [f"class {key}: {test}" for test, ok in ran if not ok]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"inputs tried:        {len(results) + tried_props}  ({len(results)} corpus cases through the CLI, "
          f"{tried_props} property examples)")
    print(f"clear errors:        {clear + clear_props}  ({clear}/{len(results)} corpus cases: exit 2, one line naming "
          f"file and place; {clear_props} property inputs answered with a PromptkitError)")
    names = {"1": "concurrent writers", "2": "damaged or foreign stores", "3": "template resource caps",
             "4": "special files and odd paths", "5": "numbers that are not numbers", "6": "values of the wrong type",
             "7": "gate inputs", "8": "resume after a move", "9": "secrets in outputs",
             "10": "serve under hostile clients", "11": "faults the user pays for",
             "earlier": "earlier corpus (round one)"}
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
    for key, ran in classes.items():
        print(f"class {key}: {len(ran)} cases, {sum(ok for _, ok in ran)} ok  ({names[key]}"
              + ("; serve run skipped" if key == "10" and args.skip_serve else "") + ")")
    print("classes 8 and the rest of 2-7: tests/test_reliability_round2.py (files untouched, warnings, lease, --force)")
    print(f"time: {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"FAIL {failure}")
    bad = tracebacks + unexpected + len(secret["hits"]) + lost + len(failures) + race_losses + open_failures
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
