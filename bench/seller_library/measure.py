"""Answers on the seller's library (build.py) to its 40 questions, as a seller would judge them: the
answerable ones answered with the evidence in the first quote, the near-topic ones declined; per language.

    .venv/bin/python bench/seller_library/measure.py [--work /tmp/seller] [--no-reader] [--show]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

from build import build  # noqa: E402

from assistant import Assistant, Config  # noqa: E402
from assistant.text import detect_lang  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/seller-library"))
    parser.add_argument("--no-reader", action="store_true", help="the quotes by Scoring alone")
    parser.add_argument("--show", action="store_true", help="print each question's outcome")
    args = parser.parse_args()
    library, index = args.work / "library", args.work / "index"
    if not library.exists():
        build(library)
    config = Config(question_log=False, reader=not args.no_reader)
    bot = Assistant.build([library], index, config) if not index.exists() else Assistant.open(index, config)
    questions = [json.loads(line) for line in (HERE / "questions.jsonl").open(encoding="utf-8")]
    tally: dict[str, dict[str, int]] = {}
    seconds = []
    for q in questions:
        started = time.perf_counter()
        answer = bot.ask(q["question"])
        seconds.append(time.perf_counter() - started)
        lang = detect_lang(q["question"])
        row = tally.setdefault(lang, {"answerable": 0, "answered": 0, "first": 0, "unanswerable": 0, "declined": 0})
        if q["answerable"]:
            row["answerable"] += 1
            row["answered"] += not answer.declined
            first = answer.citations[0].quote if answer.citations else ""
            row["first"] += any(e in first for e in q["evidence"])
        else:
            row["unanswerable"] += 1
            row["declined"] += answer.declined
        if args.show:
            shown = "DECLINED " + str(answer.meta.get("reason", "")) if answer.declined else answer.citations[0].quote
            print(f"{'A' if q['answerable'] else 'U'} {q['question']}\n    -> {shown[:120]}")
    seconds.sort()
    print(json.dumps({"reader": not args.no_reader, "by_language": tally,
                      "ask_p50_ms": round(1000 * seconds[len(seconds) // 2]),
                      "ask_max_ms": round(1000 * seconds[-1])}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
