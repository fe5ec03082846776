"""Speedup of the openai provider at concurrency 16 over sequential calls, against a local
OpenAI-compatible server that answers after 50 ms (tests/helpers/fault_server.py in a subprocess).

    python benchmarks/openai_concurrency.py [--requests 160] [--latency 0.05] [--concurrency 16]

Goal: at least 12x."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promptkit.providers import Request  # noqa: E402
from promptkit.providers.factory import open_provider  # noqa: E402

GOAL = 12.0


def timed(url: str, concurrency: int, requests: list[Request]) -> tuple[float, int]:
    provider = open_provider("openai:fixed", base_url=url, api_key="bench", concurrency=concurrency,
                             batch_size=len(requests))
    provider.complete(requests[:concurrency])  # warm up: imports, connections
    start = time.perf_counter()
    responses = provider.complete(requests)
    elapsed = time.perf_counter() - start
    provider.close()
    return elapsed, sum(r.error is not None for r in responses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    fault_server = ROOT / "tests" / "helpers" / "fault_server.py"
    server = subprocess.Popen([sys.executable, str(fault_server), "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        requests = [Request(id=str(i), text=f"Review: example {i} was great\nSentiment:", labels=["negative", "positive"],
                            label_prefix=" ") for i in range(args.requests)]
        sequential, err1 = timed(url, 1, requests)
        parallel, err2 = timed(url, args.concurrency, requests)
    finally:
        server.terminate()
        server.wait()
    speedup = sequential / parallel
    print(f"{args.requests} label-scoring requests, server latency {args.latency * 1000:.0f} ms")
    print(f"sequential:     {sequential:6.2f} s  ({args.requests / sequential:6.1f} req/s)")
    print(f"concurrency {args.concurrency}: {parallel:6.2f} s  ({args.requests / parallel:6.1f} req/s)")
    print(f"speedup at concurrency {args.concurrency}: {speedup:.1f}x (goal: >= {GOAL:.0f}x) "
          f"{'PASS' if speedup >= GOAL else 'BELOW GOAL'}; errors: {err1 + err2}")


if __name__ == "__main__":
    main()
