"""Collections (#32): search and ask in a small collection inside a large library, against the same questions
on the whole library, on both stores in one run; and FAISS's ways of scoping a search (docs/collections.md).

1. FAISS alone, one core, 384-dimension normalised vectors, a 300-vector collection in libraries of 3k and
   100k: the whole library (flat), a flat index with an id selector (IDSelectorBatch), an exact index of the
   collection's own vectors (what the folder store keeps), and HNSW with the selector (found and recall@50).
2. The real Assistant over a synthetic library (bench/stores.py's: clustered vectors, 10 passages a document)
   whose first documents make a collection of --collection passages: search and ask p50/p95 in it against
   the whole library, on the index folder and on PostgreSQL + pgvector (a copy of the same library).

    python bench/collections_speed.py [--chunks 100000] [--collection 300] [--queries 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from stores import QUESTIONS, ROOT, latencies, synthetic  # noqa: E402  (also puts tests/ on the path)
from pg import LocalPostgres  # noqa: E402

from assistant import Assistant, Config  # noqa: E402
from assistant.models.embed import get_embedder  # noqa: E402
from assistant.store.factory import copy_library, open_store  # noqa: E402
from assistant.store.keyword import tokenize  # noqa: E402

COLLECTION = "small"


def timed(call, reps: int = 30) -> tuple[float, object]:
    result = call()
    start = time.perf_counter()
    for _ in range(reps):
        result = call()
    return 1000 * (time.perf_counter() - start) / reps, result


def faiss_scoping(sizes: tuple[int, ...], members: int, dim: int = 384) -> None:
    print(f"FAISS, one core, a {members}-vector collection (ms a search of 50):", flush=True)
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    for n in sizes:
        x = rng.standard_normal((n, dim)).astype(np.float32)
        faiss.normalize_L2(x)
        ids = np.arange(1, n + 1, dtype=np.int64)
        q = rng.standard_normal((1, dim)).astype(np.float32)
        faiss.normalize_L2(q)
        chosen = np.sort(rng.choice(ids, members, replace=False))
        flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        flat.add_with_ids(x, ids)
        whole, _ = timed(lambda: flat.search(q, 50))
        selector = faiss.IDSelectorBatch(chosen)
        filtered, (_, by_selector) = timed(lambda: flat.search(q, 50, params=faiss.SearchParameters(sel=selector)))
        start = time.perf_counter()
        own = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        own.add_with_ids(x[chosen - 1], chosen)
        built = 1000 * (time.perf_counter() - start)
        per, (_, exact) = timed(lambda: own.search(q, 50))
        assert set(by_selector[0]) == set(exact[0])
        hnsw = faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT))
        hnsw.add_with_ids(x, ids)
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=128)
        graph, (_, found) = timed(lambda: hnsw.search(q, 50, params=params))
        recall = len(set(found[0]) & set(exact[0])) / 50
        print(f"  {n:>7} vectors: whole library {whole:6.3f}   flat + selector {filtered:6.3f}   own index {per:6.3f} "
              f"(built in {built:.2f})   hnsw + selector {graph:6.3f}, found {(found[0] >= 0).sum()}/50, "
              f"recall {recall:.2f}", flush=True)


class In:
    """An assistant scoped to one collection (None: the whole library), as stores.latencies asks it."""

    def __init__(self, bot: Assistant, collection: str | None):
        self.bot, self.collection = bot, collection

    def search(self, question: str, k: int):
        return self.bot.search(question, k=k, collection=self.collection)

    def ask(self, question: str):
        return self.bot.ask(question, collection=self.collection)


def compare(label: str, bot: Assistant, members: set[str], queries: int) -> None:
    hits = bot.search(QUESTIONS[0], k=5, collection=COLLECTION)
    assert len(hits) == 5 and {h.doc_id for h in hits} <= members, "the collection's search left it"
    whole, small = latencies(In(bot, None), QUESTIONS, queries), latencies(In(bot, COLLECTION), QUESTIONS, queries)
    for name in ("search", "ask"):
        print(f"  {label:8} {name:6} whole library {whole[name][0]:7.1f} / {whole[name][1]:7.1f} ms   "
              f"collection {small[name][0]:7.1f} / {small[name][1]:7.1f} ms (p50 / p95)   "
              f"p50 ratio {small[name][0] / whole[name][0]:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000, help="the library, in passages")
    parser.add_argument("--collection", type=int, default=300, help="the collection, in passages (10 a document)")
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    faiss_scoping(tuple(sorted({3_000, args.chunks})), args.collection)

    for model in (Config().model, Config().sentence_model):
        get_embedder(model).encode(["预热 warm-up"])
    words = [w for w in tokenize(next((ROOT / "corpus").iterdir()).read_text(encoding="utf-8")) if len(w) > 1]
    work = Path(tempfile.mkdtemp(prefix="bench-collections-"))
    pg = LocalPostgres().start()
    try:
        print(f"\n{args.collection}-passage collection in a {args.chunks}-passage synthetic library; "
              f"{os.cpu_count()} cores; {args.queries} questions per figure", flush=True)
        folder = work / "index"
        store = open_store(Config(), folder)
        synthetic(store, args.chunks, 384, Config().model, words)
        members = {f"syn-{d}" for d in range(args.collection // 10)}
        store.put_collection(COLLECTION, "小集合")
        store.change_collections(sorted(members), add=COLLECTION, remove="default")
        uri = pg.createdb("collections")
        target = open_store(Config(store=uri))
        copy_library(store, target)
        store.close()
        target.close()
        for label, config, where in (("folder", Config(), folder), ("postgres", Config(store=uri), None)):
            bot = Assistant.open(where, config)
            compare(label, bot, members, args.queries)
            bot.close()
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
