"""Acceptance 2 of `promptkit view`: with 5,000 stored runs and a 1,000-example run, the runs list
and the run page each render in under 300 ms.

Fills a scratch project's run store (the shipped prompts and suites, a fake model, no model calls),
starts the real app (uvicorn) in this process, and times full HTTP requests to each page: the
median and the slowest of N requests after one warm-up. Not a timed test; run it by hand:

    python benchmarks/view.py [--runs 5000] [--examples 1000] [--repeat 10]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fill(project: Path, runs: int, examples: int) -> str:
    """`runs` small finished runs of sentiment@v1/v2, then one run of `examples` examples (its id)."""
    from promptkit.evaluate import ExampleResult
    from promptkit.library import Library
    from promptkit.metrics import MetricValue
    from promptkit.runs import RunStore

    store = RunStore(project / ".promptkit" / "runs.db")
    store._db.execute("PRAGMA synchronous=OFF")  # filling speed only: the timed pages read
    v2 = Library(project / "prompts").resolve("sentiment@v2")

    def settings(i: int, n: int) -> dict[str, object]:
        version = "sentiment@v2" if i % 2 else "sentiment@v1"
        return {"prompt": version, "prompt_hash": v2.hash if i % 2 else "x", "suite": "sentiment", "task": "classification",
                "model": f"fake:m{i % 7}", "provider": "fake", "base_model": f"m{i % 7}", "adapter": None,
                "dataset": str(project / "evals/data/sentiment.jsonl"), "dataset_hash": "h", "split": "test",
                "examples": n, "decoding": {"temperature": 0.0, "max_tokens": 3, "stop": ["\n"]}, "scoring": "loglik",
                "labels": ["negative", "positive"]}

    def results(n: int) -> list[ExampleResult]:
        out = []
        for j in range(n):
            label = "positive" if j % 3 else "negative"
            out.append(ExampleResult(f"ex{j}", j, {"text": f"Review {j}: the service was {'great' if j % 3 else 'awful'} "
                                                           "and the food arrived on time, mostly."},
                                     label, "positive", "positive", label == "positive",
                                     scores={"negative": -1.2, "positive": -0.4}, tokens_in=30, tokens_out=1,
                                     latency=0.01 + (j % 17) / 1000))
        return out

    small = results(4)
    for i in range(runs):
        try:
            run_id = store.create_run(settings(i, 4))
        except sqlite3.IntegrityError:  # ids are second + 24 random bits: at ~1,000 runs/s they can collide
            run_id = store.create_run(settings(i, 4))
        store.add_results(run_id, small)
        store.finish_run(run_id, [MetricValue("accuracy", 0.75, True, 0.3, 0.95, interval="wilson", n=4)])
    big = store.create_run(settings(1, examples))
    rows = results(examples)
    store.add_results(big, rows)
    accuracy = sum(bool(r.correct) for r in rows) / len(rows)
    store.finish_run(big, [MetricValue("accuracy", accuracy, True, accuracy - 0.03, accuracy + 0.03, interval="wilson",
                                       n=len(rows)),
                           MetricValue("latency_p50", 0.018, False, 0.017, 0.019, unit="s", interval="bootstrap")])
    store.close()
    return big


def serve(project: Path, port: int) -> None:
    import uvicorn

    from promptkit.project import Project
    from promptkit.view.app import ViewConfig, create_app

    app = create_app(ViewConfig(Project(project), "benchmark-token"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)


def timed(url: str, repeat: int) -> tuple[float, float, int]:
    urllib.request.urlopen(url).read()  # warm-up
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(urllib.request.urlopen(url).read())
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        for name in ("prompts", "evals"):
            shutil.copytree(ROOT / name, project / name)
        start = time.perf_counter()
        big = fill(project, args.runs, args.examples)
        print(f"filled {args.runs + 1:,} runs in {time.perf_counter() - start:.1f} s")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        serve(project, port)
        base = f"http://127.0.0.1:{port}"
        pages = {"runs list (page 1)": "/", "runs list (page 50, filtered by prompt)": "/?prompt=sentiment&page=50",
                 f"run page ({args.examples:,} examples)": f"/runs/{big}"}
        print(f"{'page':44} {'median':>9} {'max':>9} {'size':>9}")
        for name, path in pages.items():
            median, worst, size = timed(base + path, args.repeat)
            verdict = "ok" if median < 300 else "SLOW"
            print(f"{name:44} {median:7.1f}ms {worst:7.1f}ms {size / 1024:7.0f}KB  {verdict}")


if __name__ == "__main__":
    main()
