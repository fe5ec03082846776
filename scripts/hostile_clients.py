"""Hostile clients against a running `promptkit serve` (loopback only), then a health verdict.

    python scripts/hostile_clients.py --url http://127.0.0.1:8000/v1 --key KEY --pid SERVER_PID

At once, for --duration seconds (every loop is bounded):
  slow headers   --slow sockets that send a request's headers one byte at a time
  slow bodies    --slow sockets that send headers (half with the key, half without) and then a body
                 one byte at a time
  connections    --connections idle sockets held open
  large echo     authenticated completions with echo+logprobs on a prompt just under 1 MB
Meanwhile a normal request (a one-token chat completion) is timed every second. Checks: every
normal request answered 200 within --max-latency seconds; the slow sockets were cut off by the
server before the attack ended; the server's peak memory (VmHWM of --pid) stayed under --max-rss-mb.
Prints one JSON summary; exit 0 when every check holds, 1 otherwise."""

from __future__ import annotations

import argparse
import ipaddress
import json
import resource
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def post(url: str, body: dict[str, Any], key: str | None, timeout: float = 60) -> tuple[int, float]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as e:
        e.read()
        status = e.code
    except OSError:
        status = 0
    return status, time.monotonic() - start


def peak_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Trickler:
    """Sockets that each send their bytes one at a time, one byte per socket per tick."""

    def __init__(self, host: str, port: int, payloads: list[bytes]):
        self.sockets: list[tuple[socket.socket, bytes]] = []
        for payload in payloads:
            s = socket.create_connection((host, port), timeout=5)
            s.setblocking(False)
            self.sockets.append((s, payload))
        self.position = 0
        self.cut_off = 0  # sockets the server closed on us

    def tick(self) -> None:
        alive = []
        for s, payload in self.sockets:
            try:
                s.send(payload[self.position % len(payload): self.position % len(payload) + 1])
                try:
                    if s.recv(65536) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                alive.append((s, payload))
            except OSError:
                self.cut_off += 1
                s.close()
        self.sockets = alive
        self.position += 1

    def close(self) -> None:
        for s, _ in self.sockets:
            s.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the server's /v1 URL (loopback only)")
    parser.add_argument("--key", help="the server's API key")
    parser.add_argument("--pid", type=int, help="the server's process id (for its peak memory)")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=50, help="slow-header and slow-body sockets, each")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds the attack lasts")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between trickled bytes")
    parser.add_argument("--echo-bytes", type=int, default=900_000)
    parser.add_argument("--max-latency", type=float, default=1.0)
    parser.add_argument("--max-rss-mb", type=float, default=2048)
    args = parser.parse_args()

    parsed = urllib.parse.urlparse(args.url)
    host, port = parsed.hostname or "", parsed.port or 80
    if not loopback(host):
        print(f"refusing {host}: this script only attacks loopback addresses", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 4 * args.slow + 64)), hard))
    base = args.url.rstrip("/")
    path = parsed.path.rstrip("/")
    auth = f"Authorization: Bearer {args.key}\r\n" if args.key else ""
    head = f"POST {path}/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    slow_headers = [(head + f"X-Slow-{i}: " + "a" * 4000 + "\r\n").encode() for i in range(args.slow)]
    slow_bodies = [(head + (auth if i % 2 else "") + "Content-Length: 100000\r\n\r\n").encode() for i in range(args.slow)]
    normal = {"model": args.model, "max_tokens": 1, "messages": [{"role": "user", "content": "Say hi"}]}

    summary: dict[str, Any] = {"normal_latencies": [], "normal_statuses": [], "echo_statuses": []}
    status, took = post(base + "/chat/completions", normal, args.key)  # warm-up: the model's first call is slow
    summary["before_attack"] = {"status": status, "latency": round(took, 3)}
    held: list[socket.socket] = []
    refused = 0
    for _ in range(args.connections):
        try:
            held.append(socket.create_connection((host, port), timeout=5))
        except OSError:
            refused += 1
    headers_attack = Trickler(host, port, slow_headers)
    bodies_attack = Trickler(host, port, [b + b"{" * 100000 for b in slow_bodies])
    bodies_attack.position = 0
    # slow bodies: send the headers whole at once, then trickle the body
    for s, payload in bodies_attack.sockets:
        s.setblocking(True)
        s.sendall(payload[: payload.index(b"\r\n\r\n") + 4])
        s.setblocking(False)
    bodies_attack.sockets = [(s, b"{") for s, _ in bodies_attack.sockets]

    stop = threading.Event()

    def echo() -> None:
        prompt = "word " * (args.echo_bytes // 5)
        body = {"model": args.model, "prompt": prompt, "echo": True, "logprobs": 5, "max_tokens": 0}
        for _ in range(3):
            if stop.is_set():
                return
            summary["echo_statuses"].append(post(base + "/completions", body, args.key, timeout=args.duration)[0])

    echo_thread = threading.Thread(target=echo, daemon=True)
    echo_thread.start()
    start, next_probe = time.monotonic(), time.monotonic() + 1
    while time.monotonic() - start < args.duration:
        headers_attack.tick()
        bodies_attack.tick()
        if time.monotonic() >= next_probe:
            status, took = post(base + "/chat/completions", normal, args.key, timeout=max(5.0, args.max_latency * 5))
            summary["normal_statuses"].append(status)
            summary["normal_latencies"].append(round(took, 3))
            next_probe = time.monotonic() + 1
        time.sleep(args.tick)
    stop.set()
    echo_thread.join(timeout=args.duration)
    still_open = 0
    for s in held:
        try:
            s.setblocking(False)
            if s.recv(1) != b"":
                still_open += 1
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
        s.close()
    summary.update(
        connections=args.connections, connections_refused=refused, idle_connections_still_open=still_open,
        slow_header_sockets_cut_off=headers_attack.cut_off, slow_header_sockets=args.slow,
        slow_body_sockets_cut_off=bodies_attack.cut_off, slow_body_sockets=args.slow,
        server_peak_rss_mb=peak_rss_mb(args.pid),
    )
    headers_attack.close()
    bodies_attack.close()
    status, took = post(base + "/chat/completions", normal, args.key)
    summary["after_attack"] = {"status": status, "latency": round(took, 3)}
    checks = {
        "normal requests answered within max latency": bool(summary["normal_latencies"]) and all(
            s == 200 and t <= args.max_latency
            for s, t in zip(summary["normal_statuses"], summary["normal_latencies"], strict=True)),
        "slow sockets cut off": headers_attack.cut_off == args.slow and bodies_attack.cut_off == args.slow,
        "large echo refused or answered, never a server error": all(
            s in (200, 400, 413) for s in summary["echo_statuses"]),
        "memory under the cap": summary["server_peak_rss_mb"] is None or summary["server_peak_rss_mb"] < args.max_rss_mb,
        "answers after the attack": status == 200 and took <= args.max_latency,
    }
    summary["checks"] = checks
    print(json.dumps(summary))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
