"""Ingest workers (`assistant worker`) on one PostgreSQL: passages embedded per second with 1 and 2 workers.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/workers.py [--articles 60]

Starts PostgreSQL 18 + pgvector on 127.0.0.1 (tests/pg.py), and for 1 then 2 workers: a fresh database,
--articles distinct articles queued as one upload job each (as a server with --no-ingest queues them),
then that many `assistant worker` processes (as a user starts them, each with OMP_NUM_THREADS = cores /
workers; their start-up is counted) until every job is done. Prints passages/s for each and the ratio; what N machines would do is N times the
one-worker figure, since workers share nothing but the database.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/pg.py: the PostgreSQL server
from pg import LocalPostgres  # noqa: E402

from assistant import Config  # noqa: E402
from assistant.ingest.jobs import PostgresJobs  # noqa: E402
from assistant.store.factory import open_store  # noqa: E402

PARAGRAPH = ("第{n}号仓库的头程物流方案：旺季前三个月开始备货，海运至少预留六周，空运只用于补货。"
             "港口拥堵时改走铁路，运费上浮约百分之十五。清关资料要提前准备，税号和发票缺一不可。")


def article(n: int) -> tuple[str, bytes]:
    body = "\n\n".join(PARAGRAPH.format(n=f"{n}-{p}") for p in range(12))
    return f"warehouse-{n}.md", f"# 仓库方案 {n}\n\n{body}\n".encode()


def run(pg: LocalPostgres, workers: int, articles: int) -> tuple[float, int]:
    uri = pg.createdb(f"bench_workers_{workers}")
    open_store(Config(store=uri)).close()  # the schema, as `assistant index` or a worker makes it
    queue = PostgresJobs(uri)
    ids = [queue.upload([article(n)]).id for n in range(articles)]
    started = time.perf_counter()
    # Workers on one machine share its cores: each engine gets its share of threads, not all of them.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
    procs = [subprocess.Popen([sys.executable, "-m", "assistant.cli", "worker", "--store", uri], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    try:
        while not all(queue.get(i).state in ("done", "failed") for i in ids):
            time.sleep(0.5)
        seconds = time.perf_counter() - started
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        queue.close()
    store = open_store(Config(store=uri))
    passages = store.counts()["chunks"]
    store.close()
    return seconds, passages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=60)
    args = parser.parse_args()
    pg = LocalPostgres().start()
    try:
        rates = {}
        for workers in (1, 2):
            seconds, passages = run(pg, workers, args.articles)
            rates[workers] = passages / seconds
            print(f"{workers} worker(s): {passages} passages in {seconds:.1f} s = {rates[workers]:.2f} passages/s",
                  flush=True)
        print(f"2 workers on this machine: {rates[2] / rates[1]:.2f}x one; on 2 machines: ~2x one "
              f"({2 * rates[1]:.2f} passages/s), the workers sharing only the database")
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
