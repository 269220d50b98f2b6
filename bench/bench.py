"""The benchmark: indexing throughput, query latency at 1k / 100k / 1M chunks, memory, cold start.

Every figure is printed next to a baseline measured in the same run, as a ratio:
  * indexing: whole pipeline (read, clean, chunk, tokenise, embed passages with e5 and sentences with
    USE, store) vs the embedding model alone on the same passages (the mean of one run before and
    one after the pipeline's, which cancels this machine's drift between minutes), and vs the
    pipeline with USE as the passage model; re-indexing an unchanged library vs the first build;
  * queries: `search` and `ask` through the real Assistant vs a brute-force numpy search of the
    same vectors; the larger sizes use synthetic text and random unit vectors;
  * cold start: a new process up to its first answer vs a bare Python start.

    python bench/bench.py [--sizes 3000,100000] [--docs 120] [--queries 50]
                          [--index DIR --questions FILE.jsonl]

--index measures the ~3k size on an index you built (e.g. an evaluation set's, kept by `assistant eval
--cache`), asked the questions of FILE (JSONL with "text" or "question"), instead of the indexing run's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from assistant import Assistant, Config, index_library
from assistant.document import Chunk, Document
from assistant.ingest.chunk import chunk_document
from assistant.ingest.indexing import embed_input
from assistant.ingest.load import iter_files, load_file
from assistant.models.embed import USE_MODEL, get_embedder
from assistant.store.folder import DB_NAME, Store
from assistant.store.keyword import tokenize
from assistant.store.vectors import VectorIndex

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["品牌应该all in直播带货吗？", "Should a brand go all in on live-stream selling?", "网红营销有哪些风险？",
             "What do consumers trust in social commerce?", "社交电商的本质是什么？"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def synthetic_library(folder: Path, docs: int) -> Path:
    """Articles made by reshuffling the sentences of the bundled library (realistic Chinese text)."""
    from assistant.text import sentence_spans

    source = [d for p in iter_files([ROOT / "corpus"]) for d in load_file(p)[0]]
    sentences = [d.text[a:b] for d in source for a, b in sentence_spans(d.text)]
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(docs):
        body = "\n\n".join("".join(rng.sample(sentences, 4)) for _ in range(8))
        (folder / f"article-{i:04d}.md").write_text(f"---\ntitle: 合成文章 {i}\n---\n\n{body}\n", encoding="utf-8")
    return folder


def bench_indexing(work: Path, articles: int) -> Path:
    library = synthetic_library(work / "library", articles)
    folder = work / "index-1k"
    config = Config()
    # Load the models and jieba's dictionary first: start-up is measured separately (cold start).
    embedder = get_embedder(config.model)
    embedder.encode(["预热 warm-up"])
    get_embedder(config.sentence_model).encode(["预热 warm-up"])
    tokenize("预热")
    # The same passages through the embedding model alone, once before and once after the pipeline:
    # this machine's speed drifts between minutes, and the mean of the two cancels a steady drift.
    inputs = [embed_input(doc, c) for path in iter_files([library]) for doc in load_file(path)[0]
              for c in chunk_document(doc, config.chunk_size, config.chunk_overlap)]
    before, _ = timed(embedder.encode, inputs)
    first, report = timed(index_library, [library], folder, config)
    after, _ = timed(embedder.encode, inputs)
    alone = (before + after) / 2
    again, _ = timed(index_library, [library], folder, config)
    use, _ = timed(index_library, [library], work / "index-use", Config(model=USE_MODEL))
    n = report.chunks
    print(f"\nIndexing {articles} articles, {n} passages")
    print(f"  whole pipeline      {n / first:8.1f} passages/s  ({first:.1f} s)")
    print(f"  embedding alone     {n / alone:8.1f} passages/s  ({before:.1f} s before the pipeline, {after:.1f} s after)")
    print(f"  pipeline / model    {(n / first) / (n / alone):8.2f} x")
    print(f"  pipeline with USE   {n / use:8.1f} passages/s  ({use:.1f} s; e5 pipeline = {use / first:.2f} x USE's)")
    print(f"  re-index unchanged  {again:8.2f} s = {again / first:.3f} of the first build")
    return folder


def synthetic_index(folder: Path, chunks: int, dim: int, model: str) -> None:
    """An index of `chunks` synthetic passages, written through the Store.

    The vectors are unit vectors scattered around 2,000 random topics, so that they have the
    cluster structure of real embeddings (uniformly random vectors would defeat any ANN index).
    """
    rng = np.random.default_rng(0)
    topics = rng.standard_normal((2000, dim)).astype(np.float32)
    words = [w for w in tokenize((ROOT / "corpus").joinpath(
        next(p.name for p in (ROOT / "corpus").iterdir())).read_text(encoding="utf-8")) if len(w) > 1]
    store = Store(folder / DB_NAME)
    per_doc = 10
    with store.transaction():
        for d in range(chunks // per_doc):
            parts, spans, tokens, pos = [], [], [], 0
            for _ in range(per_doc):
                picked = rng.choice(words, 25)
                sentence = "".join(picked) + "。"
                spans.append((pos, pos + len(sentence)))
                parts.append(sentence)
                tokens.append(" ".join(picked))  # the words it was made of: jieba is not what is measured here
                pos += len(sentence)
            text = "".join(parts)
            doc = Document(doc_id=f"syn-{d}", text=text, title=f"synthetic {d}", lang="zh")
            cs = [Chunk(doc.doc_id, i, a, b, text[a:b]) for i, (a, b) in enumerate(spans)]
            hashes = [hashlib.sha256(f"{d}-{i}".encode()).hexdigest() for i in range(per_doc)]
            store.add_document(doc, cs, hashes, tokens, [])
            vectors = topics[rng.integers(0, len(topics), per_doc)] + 0.8 * rng.standard_normal(
                (per_doc, dim)).astype(np.float32)
            store.put_embeddings(hashes, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
            store.put_file(f"/synthetic/{d}", "0", 0, 0, [doc.doc_id])
        store.set_meta("model", model)
        store.set_meta("sentence_model", Config().sentence_model)
        store.set_meta("faiss", "flat")
        store.set_meta("generation", "1")
    store.close()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_queries(folder: Path, label: str, queries: int, questions: list[str] = QUESTIONS) -> None:
    config = Config()
    before = rss_mb()
    open_s, bot = timed(Assistant.open, folder, config)
    n = bot.index.store.counts()["chunks"]
    _, vecs = bot.index.store.chunk_vectors()
    qs = [questions[i % len(questions)] for i in range(queries)]
    qvecs = bot.index.embedder.encode_query(qs)
    embed_q = [timed(bot.index.embedder.encode_query, [q])[0] for q in qs]
    brute, search, extra = [], [], []
    ms = lambda xs: f"{1000 * statistics.median(xs):7.1f} / {1000 * pct(xs, 95):7.1f} ms"  # noqa: E731
    for i, q in enumerate(qs):
        qv = qvecs[i]
        t, _ = timed(lambda: np.argpartition(-(vecs @ qv), 50)[:50])
        brute.append(t)
        t, _ = timed(bot.index.store.dense_search, qv, 50)
        search.append(t)
    dense_p50 = statistics.median(search)
    search_full = [timed(bot.search, q, 5)[0] for q in qs]
    ask = [timed(bot.ask, q)[0] for q in qs]
    if n >= 10_000:  # what the approximate index kinds buy at this size
        for kind in ("ivf", "hnsw") if n <= 100_000 else ("ivf",):
            build, index = timed(VectorIndex.build, vecs.shape[1], kind, np.arange(n, dtype=np.int64), vecs)
            times, recall = [], []
            for i in range(len(qs)):
                qv = vecs[(i * 7919) % n]  # queries near real items, as questions are near passages
                t, got = timed(index.search, qv, 10)
                times.append(t)
                exact = set(np.argpartition(-(vecs @ qv), 10)[:10].tolist())
                recall.append(len(exact & {chunk for chunk, _ in got}) / 10)
            extra.append(f"  FAISS {kind:<5} search   p50/p95 {ms(times)}   = "
                         f"{statistics.median(times) / statistics.median(brute):.2f} x brute force, "
                         f"recall@10 {np.mean(recall):.2f}, built in {build:.0f} s")
    faiss_bytes = sum(f.stat().st_size for f in folder.glob("vectors-*.faiss"))
    db_bytes = sum(f.stat().st_size for f in folder.glob(DB_NAME + "*"))
    print(f"\n{label}: {n} chunks (open {open_s:.1f} s)")
    print(f"  numpy brute force   p50/p95 {ms(brute)}")
    print(f"  question embedding  p50/p95 {ms(embed_q)}   (part of search and ask)")
    print(f"  FAISS dense search  p50/p95 {ms(search)}   = {dense_p50 / statistics.median(brute):.2f} x brute force")
    print(f"  search (hybrid)     p50/p95 {ms(search_full)}   = "
          f"{statistics.median(search_full) / statistics.median(brute):.2f} x brute force")
    print(f"  ask                 p50/p95 {ms(ask)}   = {statistics.median(ask) / statistics.median(brute):.2f} x brute force")
    for line in extra:
        print(line)
    print(f"  memory per chunk    {faiss_bytes / n:.0f} B FAISS file, {db_bytes / n:.0f} B SQLite, "
          f"{(rss_mb() - before) * 1e6 / n:.0f} B peak RSS growth")
    bot.close()


def bench_cold_start(folder: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    bare, _ = timed(subprocess.run, [sys.executable, "-c", "pass"], check=True)
    code = (f"from assistant import Assistant; "
            f"print(Assistant.open({str(folder)!r}).ask({QUESTIONS[0]!r}).citations[0].quote)")
    cold, proc = timed(subprocess.run, [sys.executable, "-c", code], env=env, check=True, capture_output=True)
    print(f"\nCold start to the first answer: {cold:.2f} s  (bare Python start {bare:.2f} s, {cold / bare:.0f} x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="3000,100000", help="chunk counts for the query benchmark (1000000: ~1 hour)")
    parser.add_argument("--docs", type=int, default=120, help="articles in the indexing benchmark (~4 passages each; "
                                                               "e5 embeds ~3 a second on 2 cores)")
    parser.add_argument("--queries", type=int, default=50, help="questions per size")
    parser.add_argument("--index", type=Path, help="an index folder to measure at the ~3k size")
    parser.add_argument("--questions", type=Path, help="JSONL of questions for --index")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="assistant-bench-"))
    try:
        real = bench_indexing(work, args.docs)
        bench_cold_start(real)
        for size in (int(s) for s in args.sizes.split(",")):
            if size <= 5000:
                if args.index:
                    lines = args.questions.read_text(encoding="utf-8").splitlines() if args.questions else []
                    asked = [q.get("text") or q["question"] for q in map(json.loads, lines)] or QUESTIONS
                    bench_queries(args.index, f"real library {args.index}", args.queries, asked)
                else:
                    bench_queries(real, "real library", args.queries)
                continue
            folder = work / f"index-{size}"
            folder.mkdir()
            build, _ = timed(synthetic_index, folder, size, get_embedder(Config().model).dim, Config().model)
            print(f"\n(synthetic index of {size} chunks written in {build:.0f} s)")
            bench_queries(folder, f"{size // 1000}k synthetic chunks", args.queries)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
