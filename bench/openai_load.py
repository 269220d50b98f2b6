"""/v1/chat/completions against /api/ask in one run: requests/s and p50/p95 latency of each, same questions.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/openai_load.py [--index index] [--requests 40] [--clients 2] [--rounds 2]

Starts `assistant serve` on a free loopback port (a real subprocess, with an api_token), warms it up,
then alternates the two endpoints in rounds (A B A B …), each round --requests requests from --clients
concurrent clients, so that a change in the machine's load during the run falls on both. The OpenAI
layer adds parsing the messages, the sources list and absolute links; the answer itself is the same
`Assistant.ask`. Loopback only; bounded in count and in time (--max-seconds per round).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

from api_load import QUESTIONS, ROOT, TOKEN, percentile, serving

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def ask(client: httpx.Client, question: str, stream: bool) -> bool:
    body = {"question": question, "stream": stream}
    if stream:
        with client.stream("POST", "/api/ask", json=body, headers=AUTH) as r:
            return r.status_code == 200 and "event: answer" in r.read().decode()
    r = client.post("/api/ask", json=body, headers=AUTH)
    return r.status_code == 200 and "answer" in r.json()


def chat(client: httpx.Client, question: str, stream: bool) -> bool:
    body = {"model": "seller-assistant", "messages": [{"role": "user", "content": question}], "stream": stream}
    if stream:
        with client.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as r:
            return r.status_code == 200 and r.read().decode().rstrip().endswith("data: [DONE]")
    r = client.post("/v1/chat/completions", json=body, headers=AUTH)
    return r.status_code == 200 and r.json()["choices"][0]["message"]["content"] != ""


ENDPOINTS = {"/api/ask": ask, "/v1/chat/completions": chat}


def round_of(url: str, call, requests: int, clients: int, stream: bool, max_seconds: float):
    """(latencies of the answered requests, failures, wall seconds) of one round."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.perf_counter() + max_seconds

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            for n in counter:
                if time.perf_counter() > deadline:
                    return
                t = time.perf_counter()
                try:
                    ok, why = call(client, QUESTIONS[n % len(QUESTIONS)], stream), "bad reply"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                with lock:
                    (latencies.append(time.perf_counter() - t) if ok else failures.append(why))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=str(ROOT / "index"), help="index folder (default: ./index)")
    parser.add_argument("--requests", type=int, default=40, help="requests per endpoint per round")
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each endpoint, alternated")
    parser.add_argument("--max-seconds", type=float, default=120, help="stop a round after this long")
    parser.add_argument("--stream", action="store_true", help="both endpoints streamed (server-sent events)")
    args = parser.parse_args()
    if not (Path(args.index) / "library.sqlite").is_file():
        print(f"no index at {args.index}: build one with `assistant index corpus --index {args.index}`",
              file=sys.stderr)
        return 1

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ASSISTANT_API_TOKEN": TOKEN}
    with serving(args.index, env) as (url, server):
        started = time.perf_counter()
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:  # the server is up and both endpoints answer (this also warms the models)
                try:
                    if all(call(client, QUESTIONS[0], args.stream) for call in ENDPOINTS.values()):
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.perf_counter() - started > 180:
                    print("the server did not start answering within 180 s", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            for question in QUESTIONS:  # each question once: the first round is not the one that warms up
                for call in ENDPOINTS.values():
                    call(client, question, args.stream)

        results = {name: ([], [], 0.0) for name in ENDPOINTS}
        for _ in range(args.rounds):
            for name, call in ENDPOINTS.items():
                latencies, failures, wall = round_of(url, call, args.requests, args.clients, args.stream,
                                                     args.max_seconds)
                all_latencies, all_failures, total = results[name]
                results[name] = (all_latencies + latencies, all_failures + failures, total + wall)

        print(f"{args.rounds} rounds of {args.requests} requests per endpoint, alternated; {args.clients} clients; "
              f"{'streamed' if args.stream else 'JSON'}")
        for name, (latencies, failures, wall) in results.items():
            if latencies:
                p50 = statistics.median(latencies) * 1000
                print(f"  {name:<22} {len(latencies) / wall:6.2f} req/s  p50 {p50:5.0f} ms  "
                      f"p95 {percentile(latencies, 0.95) * 1000:5.0f} ms  ({len(latencies)} answered, "
                      f"{len(failures)} failed)")
            for f in failures[:3]:
                print(f"  {name} failure: {f}")
        return 0 if all(not failures for _, failures, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
