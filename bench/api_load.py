"""Load test of the web server: first-answer latency and sustained POST /api/ask throughput.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/api_load.py [--index index] [--requests 120] [--clients 4]

Starts `assistant serve` on a free loopback port (a real subprocess, as a user runs it), measures
the time from the process start to the first answer of /api/ask, then fires a bounded number of
requests from a few concurrent clients and prints p50/p95 latency and requests per second.
Loopback only; bounded in count (--requests) and in time (--max-seconds). Without an index
folder, the bundled corpus is indexed into a temporary one first (not timed).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "品牌应该all in直播带货吗？",
    "Should a brand go all in on live-stream selling?",
    "网红营销有哪些风险？",
    "社交电商中什么是促成交易的决定性因素？",
    "Why do influencers care about trust?",
    "How do I bake a chocolate cake?",  # declined: the cheap path
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=str(ROOT / "index"), help="index folder (default: ./index)")
    parser.add_argument("--requests", type=int, default=120, help="requests in the sustained phase")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--max-seconds", type=float, default=300, help="stop the sustained phase after this long")
    parser.add_argument("--stream", action="store_true", help="ask with stream=true (server-sent events)")
    args = parser.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    index = Path(args.index)
    tmp = None
    if not (index / "library.sqlite").is_file():
        tmp = tempfile.TemporaryDirectory()
        index = Path(tmp.name) / "index"
        print(f"no index at {args.index}: indexing {ROOT / 'corpus'} into {index} (not timed)", flush=True)
        subprocess.run([sys.executable, "-m", "assistant.cli", "index", str(ROOT / "corpus"), "--index", str(index)],
                       cwd=ROOT, env=env, check=True, capture_output=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--index", str(index),
                               "--host", "127.0.0.1", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr_tail: list[str] = []
    threading.Thread(target=lambda: [stderr_tail.append(line) for line in server.stderr], daemon=True).start()
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                if server.poll() is not None:
                    print("".join(stderr_tail[-20:]), file=sys.stderr)
                    return 1
                try:
                    r = client.post("/api/ask", json={"question": QUESTIONS[0]})
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > 180:
                    print("the server did not answer within 180 s", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        first = time.perf_counter() - started
        print(f"first answer: {first:.2f} s after `assistant serve` started (model load, app start, one answer)")

        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        counter = iter(range(args.requests))
        deadline = time.perf_counter() + args.max_seconds

        def worker() -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                for n in counter:
                    if time.perf_counter() > deadline:
                        return
                    q = QUESTIONS[n % len(QUESTIONS)]
                    t = time.perf_counter()
                    try:
                        if args.stream:
                            with client.stream("POST", "/api/ask", json={"question": q, "stream": True}) as r:
                                ok = r.status_code == 200 and "event: answer" in r.read().decode()
                        else:
                            r = client.post("/api/ask", json={"question": q})
                            ok = r.status_code == 200 and "answer" in r.json()
                    except httpx.HTTPError as exc:
                        ok, r = False, exc
                    with lock:
                        (latencies.append(time.perf_counter() - t) if ok else failures.append(repr(r)))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        done = len(latencies)
        print(f"sustained: {done} answers, {len(failures)} failures, {args.clients} clients, "
              f"{'stream' if args.stream else 'json'}, {wall:.1f} s wall")
        if done:
            print(f"  throughput {done / wall:.2f} req/s; latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
                  f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
        for f in failures[:5]:
            print("  failure:", f)
        return 0 if not failures else 1
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if tmp:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
