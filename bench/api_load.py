"""Load test of the web server: first-answer latency and sustained POST /api/ask throughput.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/api_load.py [--index index] [--requests 120] [--clients 4]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/api_load.py --index INDEX --hostile --clients 20 --max-seconds 60

Starts `assistant serve` on a free loopback port (a real subprocess, as a user runs it), measures
the time from the process start to the first answer of /api/ask, then fires a bounded number of
requests from a few concurrent clients and prints p50/p95 latency and requests per second.
Loopback only; bounded in count (--requests) and in time (--max-seconds). Without an index
folder, the bundled corpus is indexed into a temporary one first (not timed).

--hostile: the server gets an api_token, and beside the normal clients (which then run for
--max-seconds, however many requests that is) hostile ones send what issue #9 found: huge
histories, huge bodies, lone surrogates, Gradio API calls without the token or over the limits,
uploads, foreign Host headers. Each hostile request must get its clean refusal; the report gives
both kinds' counts, errors and latencies and the server's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
TOKEN = "api-load-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FOLLOW_UP = "那它有哪些风险？"
JSON = {"content-type": "application/json", **AUTH}


def _gradio(client: httpx.Client, api: str, data: list, headers: dict) -> str:
    """Gradio's own API, as an attacker calls it: the final event of /gradio_api/call/API."""
    r = client.post(f"/gradio_api/call/{api}", content=json.dumps({"data": data}),
                    headers={"content-type": "application/json", **headers})
    if r.status_code != 200:
        return str(r.status_code)
    with client.stream("GET", f"/gradio_api/call/{api}/{r.json()['event_id']}", headers=headers) as events:
        event, last = "", ""
        for line in events.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                last = f"{event}:{line[5:]}"
        return last


# (name, request, what a clean answer looks like): the requests issue #9 found to hurt.
HOSTILE = [
    ("follow-up, 90k-char previous message", lambda c: c.post("/api/ask", headers=AUTH, json={
        "question": FOLLOW_UP, "history": [{"role": "user", "content": "直播带货的风险。" * 11_250}]}).status_code, 200),
    ("follow-up, 990 KB previous message", lambda c: c.post("/api/ask", headers=AUTH, json={
        "question": FOLLOW_UP, "history": [{"role": "user", "content": "x" * 990_000}]}).status_code, 413),
    ("4.1 MB body", lambda c: c.post("/api/ask", headers=JSON, content=b" " * 4_100_000).status_code, 413),
    ("lone surrogate", lambda c: c.post("/api/ask", headers=JSON,
                                        content=b'{"question": "\\ud800 \\u7f51\\u7ea2"}').status_code, 422),
    ("gradio /ask, 11 MB history", lambda c: _gradio(
        c, "ask", [FOLLOW_UP, [{"role": "user", "content": "x" * 11_000_000}]], AUTH), "413"),
    ("gradio /ask without token", lambda c: _gradio(c, "ask", [QUESTIONS[0], []], {}), "error:"),
    ("gradio /ask, 5000 messages", lambda c: _gradio(c, "ask", [FOLLOW_UP, [{"role": "user", "content": "q"}] * 5000],
                                                     AUTH), "error:"),
    ("gradio /chat, surrogate", lambda c: _gradio(c, "chat", ["\ud800 网红", [], None], {}), "complete:"),
    ("upload 50 MB", lambda c: c.post("/gradio_api/upload", files={"files": ("a.txt", b"x" * 50_000_000)}).status_code,
     403),
    ("Host: evil.example", lambda c: c.get("/healthz", headers={"Host": "evil.example"}).status_code, 400),
]


@contextmanager
def serving(index: str | Path, env: dict, cwd: Path = ROOT, stderr=subprocess.DEVNULL,
            ) -> Iterator[tuple[str, subprocess.Popen]]:
    """`assistant serve` on `index` at a free loopback port, a real subprocess as a user runs it: yields (its
    URL, the process); stopped with Ctrl-C (SIGINT) at the end, killed if it has not stopped in 30 s."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--index", str(index), "--host",
                               "127.0.0.1", "--port", str(port)], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=stderr, text=True)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def _peak_rss_kb(pid: int) -> int:
    """The process's peak resident memory so far (Linux: VmHWM in /proc/PID/status), 0 elsewhere."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=str(ROOT / "index"), help="index folder (default: ./index)")
    parser.add_argument("--requests", type=int, default=120, help="requests in the sustained phase")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--max-seconds", type=float, default=300, help="stop the sustained phase after this long")
    parser.add_argument("--stream", action="store_true", help="ask with stream=true (server-sent events)")

    parser.add_argument("--hostile", action="store_true", help="hostile requests beside the normal ones (issue #9)")
    parser.add_argument("--hostile-clients", type=int, default=4, help="concurrent hostile clients")
    args = parser.parse_args()
    if args.hostile:
        args.requests = 10**9  # the normal clients run for --max-seconds

    env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"ASSISTANT_API_TOKEN": TOKEN} if args.hostile else {})}
    index = Path(args.index)
    tmp = None
    if not (index / "library.sqlite").is_file():
        tmp = tempfile.TemporaryDirectory()
        index = Path(tmp.name) / "index"
        print(f"no index at {args.index}: indexing {ROOT / 'corpus'} into {index} (not timed)", flush=True)
        subprocess.run([sys.executable, "-m", "assistant.cli", "index", str(ROOT / "corpus"), "--index", str(index)],
                       cwd=ROOT, env=env, check=True, capture_output=True)

    started = time.perf_counter()
    try:
        with serving(index, env, stderr=subprocess.PIPE) as (url, server):
            stderr_tail: list[str] = []
            threading.Thread(target=lambda: [stderr_tail.append(line) for line in server.stderr], daemon=True).start()
            with httpx.Client(base_url=url, timeout=120) as client:
                while True:
                    if server.poll() is not None:
                        print("".join(stderr_tail[-20:]), file=sys.stderr)
                        return 1
                    try:
                        r = client.post("/api/ask", json={"question": QUESTIONS[0]}, headers=AUTH)
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
                                with client.stream("POST", "/api/ask", json={"question": q, "stream": True},
                                                   headers=AUTH) as r:
                                    ok = r.status_code == 200 and "event: answer" in r.read().decode()
                            else:
                                r = client.post("/api/ask", json={"question": q}, headers=AUTH)
                                ok = r.status_code == 200 and "answer" in r.json()
                        except httpx.HTTPError as exc:
                            ok, r = False, exc
                        with lock:
                            (latencies.append(time.perf_counter() - t) if ok else failures.append(repr(r)))

            hostile: dict[str, list[float]] = {name: [] for name, _, _ in HOSTILE}
            refusals: list[str] = []

            def attacker(offset: int) -> None:
                with httpx.Client(base_url=url, timeout=120) as client:
                    n = offset
                    while time.perf_counter() < deadline:
                        name, request, expected = HOSTILE[n % len(HOSTILE)]
                        n += 1
                        t = time.perf_counter()
                        try:
                            got = request(client)
                        except httpx.HTTPError as exc:
                            got = repr(exc)
                        ok = got == expected or isinstance(expected, str) and str(got).startswith(expected)
                        with lock:
                            hostile[name].append(time.perf_counter() - t)
                            if not ok:
                                refusals.append(f"{name}: expected {expected!r}, got {str(got)[:200]!r}")

            t0 = time.perf_counter()
            threads = [threading.Thread(target=worker) for _ in range(args.clients)]
            if args.hostile:
                threads += [threading.Thread(target=attacker, args=(i * 3,)) for i in range(args.hostile_clients)]
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
            if args.hostile:
                print(f"hostile: {sum(map(len, hostile.values()))} requests, {len(refusals)} not refused cleanly, "
                      f"{args.hostile_clients} clients")
                for name, times in hostile.items():
                    if times:
                        print(f"  {name:<40} {len(times):>4}  p50 {statistics.median(times) * 1000:6.0f} ms  "
                              f"p95 {percentile(times, 0.95) * 1000:6.0f} ms")
                for f in refusals[:5]:
                    print("  not clean:", f)
                alive = server.poll() is None and httpx.get(url + "/healthz").status_code == 200
                print(f"server: peak RSS {_peak_rss_kb(server.pid) / 1024:.0f} MB (VmHWM), "
                      f"{'alive' if alive else 'DEAD'} after the run")
                failures += refusals + ([] if alive else ["server died"])
            return 0 if not failures else 1
    finally:
        if tmp:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
