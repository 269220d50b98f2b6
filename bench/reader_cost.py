"""What the reader adds to a question: `ask` p50 / p95 with the reader against the same index with the
quotes by Scoring alone (reader = false, the previous release's answer path), alternating question by
question in one process so that this machine's drift falls on both, and the reader's own CPU-ms a
question (`Reader.read`: e5's lower layers, the trained top and, when it answers, the span network; process
CPU time).

    python bench/reader_cost.py INDEX QUESTIONS.jsonl [--limit 100]

QUESTIONS: JSONL with "text" (../shared/eval's queries) or "question"; INDEX: an index folder of ~3k
passages (`assistant eval ../shared/eval/rgb_zh --cache index-eval` keeps one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant import Assistant, Config  # noqa: E402
from assistant.answer.compose import ReaderPicker  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("questions", type=Path)
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.questions.open(encoding="utf-8") if line.strip()][: args.limit]
    texts = [r.get("text") or r["question"] for r in rows]
    bots = {on: Assistant.open(args.index, Config(question_log=False, reader=on)) for on in (False, True)}
    if not isinstance(bots[True].picker, ReaderPicker):
        sys.exit("the reader is not there (assistant/models/reader_weights/): train it first (docs/reader.md)")
    reader = bots[True].picker.reader
    cpu: list[float] = []
    read = reader.read

    def timed_read(*args, **kwargs):
        started = time.process_time()
        try:
            return read(*args, **kwargs)
        finally:
            cpu.append(1000 * (time.process_time() - started))

    reader.read = timed_read
    for t in texts[:5]:  # warm-up: sessions, caches
        bots[False].ask(t), bots[True].ask(t)
    cpu.clear()
    ms: dict[bool, list[float]] = {False: [], True: []}
    for n, t in enumerate(texts):
        for on in ((False, True) if n % 2 else (True, False)):
            started = time.perf_counter()
            bots[on].ask(t)
            ms[on].append(1000 * (time.perf_counter() - started))
    report = {("reader" if on else "scoring alone"): {"p50_ms": round(pct(v, 0.5), 1), "p95_ms": round(pct(v, 0.95), 1)}
              for on, v in ms.items()}
    report["p50 added by the reader (ms)"] = round(pct(ms[True], 0.5) - pct(ms[False], 0.5), 1)
    report["reader CPU-ms a question (p50 / p95)"] = [round(pct(cpu, 0.5), 1), round(pct(cpu, 0.95), 1)] if cpu else None
    report["questions"] = len(texts)
    report["questions the reader read"] = len(cpu)
    report["index"] = str(args.index)
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
