"""Rebuild the reader's training groups from ../shared/train (never from ../shared/eval).

    .venv/bin/python training/reader_data.py [--train ../shared/train] [--eval ../shared/eval] [--out training/data]

Each group is one question with candidate sentences, each labelled 1 when it holds the answer:
- DRCD (zh, converted to simplified with OpenCC) and XQuAD (zh, en): the gold sentence (the one holding the
  answer's start) against the other sentences of its paragraph and the closest sentences of the article's
  other paragraphs (hard negatives: they share the question's words, not its answer);
- XQuAD across languages: the English question over the Chinese paragraph and the other way round (the two
  files are the same questions, id for id);
- hetPQA (en, product QA): the evidence against other evidence of the same product;
- withheld: a question whose gold paragraph is left out, over its article's other paragraphs: every
  candidate is 0, the "near-topic, not answered" case the reader must decline.
A gold sentence of DRCD and XQuAD also carries where the answer stands in it ("answer": [a, b]), which
training/train_span.py learns to mark.

Every paragraph, product (asin) and question that also appears in ../shared/eval is dropped first, by
shingles of 8 tokens (a word or a CJK character) of the eval documents, their asins and the eval questions' normalised text
(compared as hashes; the eval questions are never printed). The split is by article / product, 10% to
validation, seeded. Writes train.jsonl, val.jsonl and stats.json.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from assistant.text import quotable, sentence_spans  # noqa: E402  (the run-time sentence splitter)

SHINGLE = 8
OVERLAP_DROP = 0.2  # share of a paragraph's shingles found in the eval documents that drops it
SAME_PARAGRAPH_NEGATIVES = 6
OTHER_PARAGRAPH_NEGATIVES = 4
WITHHELD_SHARE = 0.3  # questions also turned into an all-negative group (gold paragraph left out)
WITHHELD_CANDIDATES = 8
VALIDATION_SHARE = 0.1
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]")


def norm(text: str) -> str:
    return _SPACE.sub("", text).lower()


def shingles(text: str) -> set[int]:
    """Hashes of every run of SHINGLE tokens (a Latin word or a CJK character is one token)."""
    t = _WORD.findall(text.lower())
    return {int.from_bytes(hashlib.blake2b(" ".join(t[i:i + SHINGLE]).encode(), digest_size=8).digest(), "little")
            for i in range(max(1, len(t) - SHINGLE + 1))}


def units(text: str) -> set[str]:
    """Words (Latin) and characters (CJK), with character bigrams: what overlap with the question means."""
    tokens = _WORD.findall(text.lower())
    return set(tokens) | {a + b for a, b in zip(tokens, tokens[1:])}


def overlap(question: set[str], sentence: str) -> float:
    return len(question & units(sentence)) / (len(question) or 1)


class EvalGuard:
    """What ../shared/eval holds, as hashes: a training paragraph, product or question found there is dropped."""

    def __init__(self, folder: Path):
        self.shingles: set[int] = set()
        self.asins: set[str] = set()
        self.questions: set[str] = set()
        for docs in folder.glob("*/docs.jsonl"):
            for line in docs.open(encoding="utf-8"):
                doc = json.loads(line)
                self.shingles |= shingles(doc.get("text", ""))
                if doc.get("asin"):
                    self.asins.add(doc["asin"])
        for queries in folder.glob("*/queries.jsonl"):
            for line in queries.open(encoding="utf-8"):
                self.questions.add(hashlib.sha1(norm(json.loads(line)["text"]).encode()).hexdigest())
        self.dropped = defaultdict(int)

    def paragraph_seen(self, text: str, what: str) -> bool:
        s = shingles(text)
        seen = len(s & self.shingles) / (len(s) or 1) >= OVERLAP_DROP
        self.dropped[what] += seen
        return seen

    def question_seen(self, text: str, what: str) -> bool:
        seen = hashlib.sha1(norm(text).encode()).hexdigest() in self.questions
        self.dropped[what] += seen
        return seen

    def asin_seen(self, asin: str) -> bool:
        seen = asin in self.asins
        self.dropped["hetpqa asins"] += seen
        return seen


def sentences(text: str) -> list[tuple[int, int]]:
    return [(a, b) for a, b in sentence_spans(text) if quotable(text, a, b)]


def context(title: str, text: str, spans: list[tuple[int, int]], i: int) -> str:
    """What the reader sees beside a candidate: the document's title and the tail of the sentence before."""
    before = text[spans[i - 1][0]:spans[i - 1][1]][-60:] if i > 0 else ""
    return f"{title}\n{before}".strip()


def squad_groups(path: Path, lang: str, source: str, guard: EvalGuard, convert=None, rng=random.Random(0),
                 unit: str = ""):
    """Groups of one SQuAD-style file, keyed by article: {"UNIT:n": [group, ...]} (UNIT: the file's stem)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    articles: dict[str, list[dict]] = {}
    for a_index, article in enumerate(data):
        title = convert(article.get("title", "")) if convert else article.get("title", "")
        paragraphs = []
        for p in article["paragraphs"]:
            text = convert(p["context"]) if convert else p["context"]
            if guard.paragraph_seen(text, f"{source} paragraphs"):
                continue
            paragraphs.append((text, sentences(text), p["qas"]))
        groups = []
        for p_index, (text, spans, qas) in enumerate(paragraphs):
            if len(spans) < 2:
                continue
            for qa in qas:
                question = convert(qa["question"]) if convert else qa["question"]
                if not qa.get("answers") or guard.question_seen(question, f"{source} questions"):
                    continue
                at = qa["answers"][0]["answer_start"]
                gold = next((i for i, (a, b) in enumerate(spans) if a <= at < b), None)
                if gold is None:
                    continue
                q_units = units(question)
                others = sorted((i for i in range(len(spans)) if i != gold),
                                key=lambda i: -overlap(q_units, text[spans[i][0]:spans[i][1]]))
                chosen = [gold] + others[:SAME_PARAGRAPH_NEGATIVES]
                candidates = [{"text": text[spans[i][0]:spans[i][1]], "context": context(title, text, spans, i),
                               "label": int(i == gold)} for i in chosen]
                answer = _answer_in(qa["answers"][0], spans[gold][0], spans[gold][1], text)
                if answer:
                    candidates[0]["answer"] = answer
                far = [(t, s, i) for k, (t, s, _) in enumerate(paragraphs) if k != p_index for i in range(len(s))]
                far.sort(key=lambda x: -overlap(q_units, x[0][x[1][x[2]][0]:x[1][x[2]][1]]))
                outside = [{"text": t[s[i][0]:s[i][1]], "context": context(title, t, s, i), "label": 0}
                           for t, s, i in far[:max(OTHER_PARAGRAPH_NEGATIVES, WITHHELD_CANDIDATES)]]
                groups.append({"id": f"{source}:{qa['id']}", "source": source, "question": question, "lang": lang,
                               "answerable": True,
                               "candidates": candidates + outside[:OTHER_PARAGRAPH_NEGATIVES],
                               "qa_id": qa["id"], "paragraph": p_index})
                if outside and rng.random() < WITHHELD_SHARE:
                    groups.append({"id": f"{source}:{qa['id']}:withheld", "source": source + " withheld",
                                   "question": question, "lang": lang, "answerable": False,
                                   "candidates": outside[:WITHHELD_CANDIDATES]})
        articles[f"{unit or path.stem}:{a_index}"] = groups
    return articles


def _answer_in(answer: dict, start: int, end: int, text: str) -> list[int] | None:
    """Where the answer stands in its gold sentence text[start:end] ([a, b], the sentence's own offsets), for
    the reader's answer span (training/train_span.py); None when it runs past the sentence."""
    a = answer["answer_start"] - start
    b = a + len(answer["text"].strip())
    return [a, b] if 0 <= a < b <= end - start and text[start + a:start + b].strip() else None


def cross_language(zh: dict[str, list[dict]], en: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """XQuAD's two files hold the same questions: each language's question over the other's candidates."""
    by_id = {g["qa_id"]: g for groups in en.values() for g in groups if g.get("qa_id")}
    crossed: dict[str, list[dict]] = {}
    for article, groups in zh.items():
        out = []
        for g in groups:
            other = by_id.get(g.get("qa_id"))
            if other is None:
                continue
            out.append({**g, "id": g["id"] + ":en-question", "source": "xquad en→zh", "question": other["question"],
                        "lang": "en"})
            out.append({**other, "id": other["id"] + ":zh-question", "source": "xquad zh→en",
                        "question": g["question"], "lang": "zh"})
        crossed[article + ":cross"] = out
    return crossed


def hetpqa_groups(path: Path, guard: EvalGuard, rng: random.Random) -> dict[str, list[dict]]:
    rows = defaultdict(list)
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["question"].strip() and row["candidate"].strip() and not guard.asin_seen(row["ASIN"]):
                if not guard.question_seen(row["question"], "hetpqa questions"):
                    rows[row["ASIN"]].append(row)
    products: dict[str, list[dict]] = {}
    for asin, items in rows.items():
        groups = []
        for n, row in enumerate(items):
            negatives = [r["candidate"] for r in items if r["candidate"] != row["candidate"]]
            rng.shuffle(negatives)
            if not negatives:
                continue
            candidates = [{"text": row["candidate"], "context": "", "label": 1}]
            candidates += [{"text": t, "context": "", "label": 0} for t in negatives[:SAME_PARAGRAPH_NEGATIVES]]
            groups.append({"id": f"hetpqa:{asin}:{n}", "source": "hetpqa", "question": row["question"], "lang": "en",
                           "answerable": True, "candidates": candidates})
            if rng.random() < WITHHELD_SHARE:
                groups.append({"id": f"hetpqa:{asin}:{n}:withheld", "source": "hetpqa withheld",
                               "question": row["question"], "lang": "en", "answerable": False,
                               "candidates": [{"text": t, "context": "", "label": 0}
                                              for t in negatives[:WITHHELD_CANDIDATES]]})
        products[f"hetpqa:{asin}"] = groups
    return products


def split_of(key: str) -> str:
    """An article's split ("train" or "val"), whatever its language or crossing: keyed by "UNIT:n" (the
    file's stem and the article's position), so training/pipeline_set.py finds the same validation articles."""
    base = key.split(":")[0] + ":" + key.split(":")[1]
    return "val" if random.Random(base).random() < VALIDATION_SHARE else "train"


def arguments(doc: str, out: str) -> tuple[argparse.Namespace, Callable[[str], str]]:
    """--train, --eval, --out, --seed as the scripts that read ../shared/train take them, and OpenCC's
    traditional-to-simplified conversion (DRCD is in traditional characters)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=Path("../shared/train"))
    parser.add_argument("--eval", type=Path, default=Path("../shared/eval"))
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--seed", type=int, default=0)
    import opencc  # training only (the `training` extra)

    return parser.parse_args(), opencc.OpenCC("t2s").convert


def main() -> None:
    args, to_simplified = arguments(__doc__, "training/data")
    rng = random.Random(args.seed)
    guard = EvalGuard(args.eval)
    units_of_work: dict[str, list[dict]] = {}
    for name in ("DRCD_dev.json", "DRCD_test.json"):
        units_of_work |= squad_groups(args.train / name, "zh", "drcd", guard, to_simplified, rng)
    # The two XQuAD files are one set of articles: keyed alike ("xquad:n"), so that their split agrees.
    xquad_zh = squad_groups(args.train / "xquad.zh.json", "zh", "xquad zh", guard, None, rng, "xquad")
    xquad_en = squad_groups(args.train / "xquad.en.json", "en", "xquad en", guard, None, rng, "xquad")
    units_of_work |= {k + ":zh": v for k, v in xquad_zh.items()}
    units_of_work |= {k + ":en": v for k, v in xquad_en.items()}
    units_of_work |= cross_language(xquad_zh, xquad_en)
    units_of_work |= hetpqa_groups(args.train / "hetPQA_answer_generation_train.csv", guard, rng)

    args.out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    files = {s: (args.out / f"{s}.jsonl").open("w", encoding="utf-8") for s in ("train", "val")}
    for key, groups in units_of_work.items():
        split = split_of(key)
        for g in groups:
            g.pop("qa_id", None)
            g.pop("paragraph", None)
            files[split].write(json.dumps(g, ensure_ascii=False) + "\n")
            counts[split][g["source"]] += 1
            counts[split]["pairs"] += len(g["candidates"])
    for f in files.values():
        f.close()
    stats = {"dropped as in ../shared/eval": dict(guard.dropped), "groups": {k: dict(v) for k, v in counts.items()}}
    (args.out / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(stats, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
