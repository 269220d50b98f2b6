"""Mixed load (issue #23): do normal questions stay fast beside worst-case questions and an upload?

    HF_HUB_OFFLINE=1 .venv/bin/python bench/mixed_load.py [--library corpus] [--clients 20] [--seconds 60]

Copies the library into a temporary folder, indexes it (not timed), starts `assistant serve` on a free
loopback port with an api_token and an admin_token, and runs three phases of --seconds each, every one
with --clients normal clients asking the questions of bench/api_load.py in a loop:

1. quiet: the normal clients alone;
2. worst-case questions: beside --hostile clients sending 2,000-character questions that tokenise to
   ~2,000 tokens each (". " x 1000, "e" and 1,999 combining accents, one Chinese word repeated);
3. upload: beside the embedding of an ~86 kB article (or --articles small ones) uploaded through POST
   /api/documents (its job is in flight for the whole phase; its progress at the end is printed).

With --hostile 0 the second phase is left out: `--clients 1 --hostile 0 --articles 50` is one user's
`ask` latency while a 50-article upload is indexed, against idle.

Prints the normal clients' p50/p95 per phase and the ratio of each phase's p95 to the quiet one's
(the aim: at most 2x). Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_load import QUESTIONS, percentile, serving  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKEN, ADMIN = "mixed-load-token", "mixed-load-admin"
AUTH, ADMIN_AUTH = {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": f"Bearer {ADMIN}"}
WORST = [". " * 1000, "e" + "\u0301" * 1999, "直播带货" * 500]
PARAGRAPH = ("跨境电商卖家在旺季来临之前需要提前规划库存和头程物流，港口拥堵、船期延误和仓库爆仓都会推高成本。"
             "平台的新规往往在旺季前发布，卖家应该关注佣金、广告和退货政策的变化，并及时调整定价与促销节奏。")


def upload_files(articles: int) -> list[tuple[str, bytes]]:
    """One ~86 kB Markdown article (0), else that many ~2 kB ones; distinct paragraphs, so every chunk is embedded."""
    def article(name: str, sections: range) -> tuple[str, bytes]:
        body = "\n\n".join(f"## 第{n}节\n\n{PARAGRAPH}第{n}条建议：把{n}%的预算留给备用渠道。" for n in sections)
        return f"{name}.md", f"---\ntitle: 旺季备货与物流规划 {name}（压力测试）\n---\n\n{body}\n".encode()

    if not articles:
        return [article("peak-season-plan", range(290))]
    return [article(f"plan-{a}", range(a * 10, a * 10 + 7)) for a in range(articles)]


def ask_loop(url: str, until, latencies: list[float], failures: list[str], lock: threading.Lock, offset: int) -> None:
    with httpx.Client(base_url=url, timeout=300) as client:
        n = offset
        while not until():
            question = QUESTIONS[n % len(QUESTIONS)]
            n += 1
            started = time.perf_counter()
            try:
                r = client.post("/api/ask", json={"question": question}, headers=AUTH)
                ok = r.status_code == 200
            except httpx.HTTPError as exc:
                ok, r = False, exc
            with lock:
                (latencies.append(time.perf_counter() - started) if ok else failures.append(repr(r)[:200]))


def worst_loop(url: str, until, counts: list[int], offset: int) -> None:
    with httpx.Client(base_url=url, timeout=300) as client:
        n = offset
        while not until():
            client.post("/api/ask", json={"question": WORST[n % len(WORST)]}, headers=AUTH)
            n += 1
            counts.append(1)


def phase(url: str, name: str, clients: int, seconds: float, hostile: int = 0,
          upload: list[tuple[str, bytes]] | None = None) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    worst: list[int] = []
    lock = threading.Lock()
    started = time.perf_counter()
    job: dict = {}
    if upload is not None:
        reply = httpx.post(url + "/api/documents", headers=ADMIN_AUTH, timeout=60,
                           files=[("files", (name, data, "text/markdown")) for name, data in upload]).json()
        job = {"url": reply["url"], "state": reply["state"]}

    def job_running() -> bool:
        if not job:
            return False
        job.update(httpx.get(url + job["url"], headers=ADMIN_AUTH, timeout=60).json())
        return job["state"] not in ("done", "failed")

    finished = threading.Event()  # set when --seconds have passed and the upload's job (if any) is done
    until = finished.is_set
    threads = [threading.Thread(target=ask_loop, args=(url, until, latencies, failures, lock, i))
               for i in range(clients)]
    threads += [threading.Thread(target=worst_loop, args=(url, until, worst, i)) for i in range(hostile)]
    for t in threads:
        t.start()
    # The upload is in flight for the whole phase: its job runs at a lower priority than the questions,
    # so under a full load of them it may not finish within the phase (its progress is reported).
    while time.perf_counter() < started + seconds:
        time.sleep(1)
    job_running()
    finished.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    result = {"name": name, "answers": len(latencies), "failures": len(failures), "wall": wall,
              "p50": statistics.median(latencies) if latencies else float("nan"),
              "p95": percentile(latencies, 0.95) if latencies else float("nan"), "worst": len(worst)}
    extra = f", {len(worst)} worst-case questions answered" if hostile else ""
    if job:
        extra += f", upload job {job['state']} after {wall:.0f} s ({job.get('stage')} {job.get('done')}/{job.get('total')})"
    print(f"{name:<22} {result['answers']:>5} answers ({result['answers'] / wall:5.2f}/s), {len(failures)} failures, "
          f"p50 {result['p50'] * 1000:6.0f} ms, p95 {result['p95'] * 1000:6.0f} ms{extra}", flush=True)
    for failure in failures[:3]:
        print("   failure:", failure)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", default=str(ROOT / "corpus"), help="library folder to copy and index")
    parser.add_argument("--clients", type=int, default=20, help="normal clients")
    parser.add_argument("--hostile", type=int, default=4, help="clients sending worst-case questions")
    parser.add_argument("--seconds", type=float, default=60, help="length of each phase")
    parser.add_argument("--articles", type=int, default=0,
                        help="upload this many ~2 kB articles in one job instead of one 86 kB article")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ASSISTANT_API_TOKEN": TOKEN, "ASSISTANT_ADMIN_TOKEN": ADMIN,
           "ASSISTANT_MAX_UPLOAD_FILES": str(max(20, args.articles))}
    with tempfile.TemporaryDirectory() as tmp:
        library, index = Path(tmp) / "library", Path(tmp) / "index"
        shutil.copytree(args.library, library)
        print(f"indexing {args.library} (not timed)", flush=True)
        subprocess.run([sys.executable, "-m", "assistant.cli", "index", str(library), "--index", str(index)],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        with serving(index, env, cwd=Path(tmp)) as (url, server):
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.post(url + "/api/ask", json={"question": QUESTIONS[0]}, headers=AUTH,
                                  timeout=60).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print("the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            quiet = phase(url, "quiet", args.clients, args.seconds)
            results = [phase(url, "worst-case questions", args.clients, args.seconds, hostile=args.hostile)
                       ] if args.hostile else []
            upload = f"{args.articles}-article upload" if args.articles else "86 kB upload"
            results.append(phase(url, upload, args.clients, args.seconds, upload=upload_files(args.articles)))
            for r in results:
                print(f"{r['name']:<22} p95 {r['p95'] / quiet['p95']:.2f}x the quiet run's, "
                      f"p50 {r['p50'] / quiet['p50']:.2f}x")
            return 0 if all(r["failures"] == 0 for r in [quiet, *results]) else 1


if __name__ == "__main__":
    sys.exit(main())
