"""Question sets in `assistant eval`'s format built from the reader's VALIDATION articles of ../shared/train,
for choosing the answer stage's thresholds and weights on the whole pipeline (retrieval, candidates,
picker) without reading ../shared/eval.

    .venv/bin/python training/pipeline_set.py [--train ../shared/train] [--eval ../shared/eval] [--out training/pipeline]

Each validation article (training/reader_data.py's split, so the reader never trained on it) gives its
paragraphs as documents; a share of its paragraphs is WITHHELD from the library, and their questions become
unanswerable ones whose topic (the article) is there but not their answer: the near-topic case. Sets:
- drcd_zh: DRCD (simplified), Chinese questions over Chinese paragraphs;
- xquad_en: XQuAD's English questions over its English paragraphs;
- xquad_cross: XQuAD's English questions over its Chinese paragraphs (the same articles);
- hetpqa_en: hetPQA's product questions over one document a product holding its answer snippets (asked
  with the product's name, as ePQA is; the ASIN stands for the name, which hetPQA does not give).
Each question names its paragraph (`relevant_doc_ids`), the answer (`answer_groups`) and the gold sentence
(`evidence`, the sentence holding the answer's start). Paragraphs overlapping ../shared/eval are dropped as
reader_data.py drops them.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reader_data import EvalGuard, arguments, sentences, split_of  # noqa: E402

WITHHELD_PARAGRAPHS = 0.25
QUESTIONS_PER_PARAGRAPH = 2
MAX_QUESTIONS = 400


def articles(path: Path, unit: str, guard: EvalGuard, convert=lambda t: t) -> list[tuple[str, str, list[dict]]]:
    """The validation articles of one SQuAD-style file: (key, title, [paragraph with its text and qas])."""
    out = []
    for n, article in enumerate(json.loads(path.read_text(encoding="utf-8"))["data"]):
        key = f"{unit}:{n}"
        if split_of(key) != "val":
            continue
        paragraphs = [{"text": convert(p["context"]), "qas": p["qas"]} for p in article["paragraphs"]]
        paragraphs = [p for p in paragraphs if not guard.paragraph_seen(p["text"], unit)]
        out.append((key, convert(article.get("title", "")), paragraphs))
    return out


def build(sets: dict[str, tuple[list, list]], out: Path, rng: random.Random) -> None:
    """sets: name -> (articles whose paragraphs are the documents, articles whose questions are asked; the
    same articles in the same order, possibly another language)."""
    for name, (doc_articles, question_articles) in sets.items():
        docs, answerable, unanswerable = [], [], []
        for (key, title, paragraphs), (_, _, asked) in zip(doc_articles, question_articles):
            for p_index, (paragraph, asked_paragraph) in enumerate(zip(paragraphs, asked)):
                doc_id = f"{key}:{p_index}"
                withheld = rng.random() < WITHHELD_PARAGRAPHS
                if not withheld:
                    docs.append({"id": doc_id, "title": title, "text": paragraph["text"]})
                spans = sentences(paragraph["text"])
                for qa, asked_qa in list(zip(paragraph["qas"], asked_paragraph["qas"]))[:QUESTIONS_PER_PARAGRAPH]:
                    if not qa.get("answers"):
                        continue
                    answer = qa["answers"][0]
                    start = answer["answer_start"]
                    gold = next(((a, b) for a, b in spans if a <= start < b), None)
                    if gold is None:
                        continue
                    text = asked_qa["question"]
                    query = {"id": qa["id"], "text": text}
                    if withheld:
                        unanswerable.append({**query, "answerable": False})
                    else:
                        answerable.append({**query, "answerable": True, "relevant_doc_ids": [doc_id],
                                           "answer_groups": [[paragraph["text"][start:start + len(answer["text"])]]],
                                           "evidence": [{"doc_id": doc_id, "start": gold[0], "end": gold[1]}]})
        write(out / name, docs, answerable, unanswerable, rng)


def write(folder: Path, docs: list[dict], answerable: list[dict], unanswerable: list[dict], rng: random.Random) -> None:
    """One set: at most MAX_QUESTIONS, three answerable to one unanswerable where there are enough."""
    rng.shuffle(answerable)
    rng.shuffle(unanswerable)
    answerable = answerable[: MAX_QUESTIONS * 3 // 4]
    unanswerable = unanswerable[: MAX_QUESTIONS - len(answerable)]
    queries = sorted(answerable + unanswerable, key=lambda q: rng.random())  # either half has both kinds
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "docs.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(q, ensure_ascii=False) + "\n" for q in queries)
    meta = {"built_by": "training/pipeline_set.py", "documents": len(docs), "answerable": len(answerable),
            "unanswerable": len(unanswerable), "withheld_paragraphs": WITHHELD_PARAGRAPHS}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(folder.name, json.dumps(meta))


def hetpqa(path: Path, guard: EvalGuard, out: Path, rng: random.Random) -> None:
    """hetpqa_en: a document a validation product (its distinct answer snippets, one a line); a snippet
    withheld from it makes its questions unanswerable, the product's other snippets still there."""
    import csv

    products: dict[str, list[dict]] = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if (row["question"].strip() and row["candidate"].strip() and split_of(f"hetpqa:{row['ASIN']}") == "val"
                    and not guard.asin_seen(row["ASIN"])):
                products.setdefault(row["ASIN"], []).append(row)
    docs, answerable, unanswerable = [], [], []
    for asin, rows in products.items():
        snippets = list(dict.fromkeys(r["candidate"].strip() for r in rows))
        withheld = {s for s in snippets if len(snippets) > 1 and rng.random() < WITHHELD_PARAGRAPHS}
        kept = [s for s in snippets if s not in withheld]
        text = "\n".join(kept)
        doc_id, title = f"hetpqa:{asin}", f"product {asin}"
        docs.append({"id": doc_id, "title": title, "text": text})
        for r in rows:
            snippet = r["candidate"].strip()
            query = {"id": f"{asin}:{len(answerable) + len(unanswerable)}", "text": r["question"], "product_title": title}
            if snippet in withheld:
                unanswerable.append({**query, "answerable": False})
            else:
                start = text.index(snippet)
                answerable.append({**query, "answerable": True, "relevant_doc_ids": [doc_id],
                                   "evidence": [{"doc_id": doc_id, "start": start, "end": start + len(snippet)}]})
    write(out / "hetpqa_en", docs, answerable, unanswerable, rng)


def main() -> None:
    args, to_simplified = arguments(__doc__, "training/pipeline")
    guard = EvalGuard(args.eval)
    drcd = [a for name in ("DRCD_dev", "DRCD_test")
            for a in articles(args.train / f"{name}.json", name, guard, to_simplified)]
    zh = articles(args.train / "xquad.zh.json", "xquad", guard)
    en = articles(args.train / "xquad.en.json", "xquad", guard)
    # The two XQuAD files are the same articles, paragraphs and questions in the same order; keep the
    # articles whose paragraphs survived the overlap check alike in both.
    keep = {k for k, _, p in zh} & {k for k, _, p in en}
    zh = [a for a in zh if a[0] in keep and len(a[2]) == len(next(b for b in en if b[0] == a[0])[2])]
    en = [next(b for b in en if b[0] == a[0]) for a in zh]
    rng = random.Random(args.seed)
    build({"drcd_zh": (drcd, drcd), "xquad_en": (en, en), "xquad_cross": (zh, en)}, args.out, rng)
    hetpqa(args.train / "hetPQA_answer_generation_train.csv", guard, args.out, rng)


if __name__ == "__main__":
    main()
