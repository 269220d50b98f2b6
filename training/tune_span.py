"""Choose when the span network marks the answer, through the whole pipeline on training/pipeline_set.py's sets
(the reader's validation articles), never on ../shared/eval.

    .venv/bin/python training/tune_span.py training/pipeline/drcd_zh training/pipeline/xquad_en \
        training/pipeline/xquad_cross [--precision 0.8] [--write]

train_span.py chooses `min_confidence` on gold sentences; in answers the reader's best sentence is not always the
one that holds the answer, and a mark there is wrong whatever its span. So each answerable question with answer
strings is asked once, with every mark let through (min_confidence 0), and the mark's probability is recorded
with whether its text holds a gold answer (as `assistant eval` counts "the mark holding a gold answer"). The
least probability at which `--precision` of the dev half's marks hold the answer is chosen; the test half is
reported at it. --write puts it in reader.json (span.min_confidence, and what was measured in span.tuned).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from tuning import CACHE, cached_rows  # noqa: E402

import assistant.models.reader as reader_module  # noqa: E402
from assistant import load_config  # noqa: E402
from assistant.evaluate import answer_is_correct  # noqa: E402
from assistant.models.reader import ARTIFACT, shipped  # noqa: E402


def rows(bot, questions: list[dict]) -> list[dict]:
    """(probability, holds a gold answer) of each answered question's mark, every mark let through."""
    reader = shipped()
    reader.spec = dataclasses.replace(reader.spec, span={**reader.spec.span, "min_confidence": 0.0})
    seen = []
    best_span = reader_module.best_span

    def recorded(logits, where):
        found = best_span(logits, where)
        seen.append(found[2] if found else None)
        return found

    reader_module.best_span = recorded
    out = []
    try:
        for q in questions:
            if not q.get("answerable", True) or not q.get("answer_groups"):
                continue
            seen.clear()
            answer = bot.ask(q["text"])
            marked = next((c for c in answer.citations if c.emphasis), None)
            if answer.declined or marked is None or not seen or seen[-1] is None:
                out.append({"marked": False})
                continue
            text = bot.document(marked.doc_id).text[slice(*marked.emphasis)]
            out.append({"marked": True, "probability": seen[-1], "right": answer_is_correct(text, q["answer_groups"]),
                        "first": marked.number == 1})
    finally:
        reader_module.best_span = best_span
    return out


def figures(found: list[dict], least: float) -> dict:
    marks = [r for r in found if r["marked"] and r["probability"] >= least]
    return {"answers": len(found), "marked": round(len(marks) / max(1, len(found)), 3),
            "marks holding a gold answer": round(sum(r["right"] for r in marks) / max(1, len(marks)), 3),
            "marks": len(marks)}


def choose(found: list[dict], precision: float) -> float:
    marks = sorted((r for r in found if r["marked"]), key=lambda r: -r["probability"])
    least, right = 1.0, 0
    for n, r in enumerate(marks, 1):
        right += r["right"]
        if right / n >= precision and n >= 10:
            least = r["probability"]
    return least


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--cache", type=Path, default=CACHE, help="the folder of `assistant eval --cache`")
    parser.add_argument("--precision", type=float, default=0.8, help="share of marks that must hold a gold answer")
    parser.add_argument("--write", action="store_true", help="put the chosen confidence into reader.json")
    args = parser.parse_args()
    precision, write = args.precision, args.write
    now = float(shipped().spec.span["min_confidence"])  # before `rows` lets every mark through
    config = load_config(None).replace(question_log=False, reader=True, answer_emphasis=True)
    halves = {half: [r for s in args.sets for r in cached_rows(f"span-{shipped().spec.span['sha256'][:12]}", s,
                                                                  config, args.cache, half, rows)]
              for half in ("dev", "test")}
    least = choose(halves["dev"], precision)
    report = {"precision asked": precision, "chosen min_confidence": round(least, 4),
              **{f"{half} at the chosen": figures(found, least) for half, found in halves.items()},
              **{f"{half} at train_span's {now}": figures(found, now) for half, found in halves.items()},
              "sets": [s.name for s in args.sets]}
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if write:
        spec_file = ARTIFACT / "reader.json"
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        spec["span"] = {**spec["span"], "min_confidence": round(least, 4), "tuned": report}
        spec_file.write_text(json.dumps(spec, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"wrote span.min_confidence {least:.4f} into {spec_file}")


if __name__ == "__main__":
    main()
