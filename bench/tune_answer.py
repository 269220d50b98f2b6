"""Tune declining and sentence choice on question sets (a tuning aid, not a test).

For every question the retrieved passages (with what their relevance is made of) and every candidate
sentence (with what its score is made of, and whether it holds the gold evidence) are computed once
and cached; decline floors and sentence-scoring weights are then compared in seconds on:
answered (answerable questions), declined (unanswerable ones), first quote holds the evidence, some
quote holds it. Tune on the dev half, report the test half with `assistant eval --half test`. Usage:

    python bench/tune_answer.py [--half dev] [--cache DIR] ../shared/eval/rgb_zh ../shared/eval/clapnq_en ...
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np

from tuning import arguments, cached_rows

from assistant import Assistant, Config, load_config
from assistant.answer.asked import analyse, document_context, passages_that_answer
from assistant.answer.compose import SCORING, Scoring, candidates
from assistant.answer.retrieve import relevance
from assistant.evaluate import quote_supports
from assistant.models.embed import calibration
from assistant.text import detect_lang, in_other_language


def rows_for(dataset: Path, config: Config, indexes: Path, half: str | None) -> list[dict]:
    return cached_rows("answer-v2", dataset, config, indexes, half, lambda bot, questions: [
        _row(bot, config, q) for q in questions])


def _row(bot: Assistant, config: Config, q: dict) -> dict:
    text = f"{q['product_title']}: {q['text']}" if q.get("product_title") else q["text"]
    query = bot.retriever.prepare(text)
    hits = bot.retriever.search(query, k=config.top_k)
    lang = detect_lang(text)
    widened = [bot.retriever.widen(h, config.context_chars) for h in hits]
    found = candidates(text, query, widened, bot.index)
    docs = {h.doc_id: bot.document(h.doc_id) for h in hits}
    return {
        "answerable": q.get("answerable", True), "lang": lang, "asked": analyse(text),
        "hits": [{"dense": h.dense, "coverage": h.coverage, "other": in_other_language(h.text, lang),
                  "text": f"{w.title}\n{w.text}",
                  "document": document_context(docs[h.doc_id].title, docs[h.doc_id].text, w.text)}
                 for h, w in zip(hits, widened)],
        "candidates": [dataclasses.replace(c, hit=None) for c in found],
        "rank_of": [hits.index(next(h for h in hits if h.chunk_id == c.hit.chunk_id)) for c in found],
        "supports": [bool(q.get("evidence")) and quote_supports(docs[c.hit.doc_id].text[c.start:c.end], c.start,
                                                                 c.hit.doc_id, docs[c.hit.doc_id].text, q["evidence"])
                     for c in found],
        "has_evidence": bool(q.get("evidence")),
    }


def simulate(rows: list[dict], floor: float, gap: float, chinese: float, keyword: float, min_answer: float,
             scoring: Scoring, sentences: int = 4) -> dict[str, float]:
    """The extractive answer's decisions (answer.respond.Responder.stream + answer.compose.extractive_answer) on
    cached rows: the relevance floor, the passages that name what the question names and asks (asked.passages_that_answer),
    the sentence floor, and the sentence order."""
    answered = declined = first = anyq = 0
    n_answerable = n_unanswerable = n_evidence = 0
    scale = dataclasses.replace(calibration(""), cross_language_gap=gap, chinese_gap=chinese, keyword_evidence=keyword)
    for r in rows:
        relevant = [i for i, h in enumerate(r["hits"])
                    if relevance(scale, h["dense"], h["coverage"], h["other"], r["lang"] == "zh") >= floor]
        covered = passages_that_answer(r["asked"], [r["hits"][i]["text"] for i in relevant],
                                       [r["hits"][i]["document"] for i in relevant])
        usable = {relevant[i] for i in covered.usable}
        found = [(c, s) for c, s, rank in zip(r["candidates"], r["supports"], r["rank_of"]) if rank in usable]
        decline = not found
        if found:
            top = max(found, key=lambda cs: scoring.score(cs[0]))[0]
            match = max((scoring.match(c) for c, _ in found if c.lang == r["lang"]), default=0.0)
            other = max((c.similarity for c, _ in found if c.lang != r["lang"]), default=0.0)
            decline = (match < min_answer if top.lang == r["lang"] else other < calibration("").answer_other_language)
        if r["answerable"]:
            n_answerable += 1
            answered += not decline
            if r["has_evidence"]:
                n_evidence += 1
                if not decline:
                    ranked = sorted(found, key=lambda cs: scoring.score(cs[0]), reverse=True)[:sentences]
                    best = scoring.score(ranked[0][0])
                    kept = [(c, s) for c, s in ranked if scoring.score(c) >= scoring.keep * best]
                    first += kept[0][1]
                    anyq += any(s for _, s in kept)
        else:
            n_unanswerable += 1
            declined += decline
    return {"answered": answered / max(n_answerable, 1), "declined": declined / n_unanswerable if n_unanswerable else None,
            "first": first / max(n_evidence, 1), "any": anyq / max(n_evidence, 1)}


def main() -> None:
    args = arguments(__doc__)
    config = load_config().replace(min_relevance=-1.0, min_answer_score=-1.0)
    sets = {Path(p).name: rows_for(Path(p), config, args.cache, args.half) for p in args.sets}
    shipped_p = calibration(config.model)
    shipped_s = calibration(config.sentence_model)
    shipped = (shipped_p.relevance, shipped_p.cross_language_gap, shipped_p.chinese_gap, shipped_p.keyword_evidence,
               shipped_s.answer)

    def report(label: str, params: tuple, scoring: Scoring = SCORING) -> None:
        res = {n: simulate(rows, *params, scoring) for n, rows in sets.items()}
        print(f"{label:<44} " + "  ".join(
            f"{n[:8]} ans {m['answered']:.2f} dec {m['declined'] if m['declined'] is None else round(m['declined'], 2)}"
            f" 1st {m['first']:.2f} any {m['any']:.2f}" for n, m in res.items()))

    report("shipped", shipped)
    print("\ndecline floors (relevance floor, cross-language gap, Chinese gap, keyword evidence, min_answer_score):")
    grid = []
    for floor, min_answer in itertools.product(np.arange(0.78, 0.90, 0.01), np.arange(0.2, 0.8, 0.05)):
        params = (round(float(floor), 3), *shipped[1:4], round(float(min_answer), 3))
        res = {n: simulate(rows, *params, SCORING) for n, rows in sets.items()}
        worst_answered = min(m["answered"] for m in res.values())
        declined = [m["declined"] for m in res.values() if m["declined"] is not None]
        grid.append((worst_answered >= 0.95, float(np.mean(declined)) if declined else 0.0, worst_answered, params))
    for ok, dec, ans, params in sorted(grid, key=lambda g: (g[0], g[1], g[2]), reverse=True)[:12]:
        report(f"  {params} (least answered {ans:.2f})", params)
    print("\nsentence scoring (first quote holds the evidence):")
    results = []
    for cov, new, rank, keep, asked in itertools.product([0.5, 1.0, 1.5], [0.0, 0.2, 0.4], [0.0, 0.1, 0.3], [0.5, 0.7],
                                                         [0.0, 0.3]):
        scoring = dataclasses.replace(SCORING, coverage=cov, new_words=new, rank=rank, keep=keep, asked=asked)
        res = {n: simulate(rows, *shipped, scoring) for n, rows in sets.items()}
        results.append((float(np.mean([m["first"] for m in res.values()])),
                        float(np.mean([m["any"] for m in res.values()])), scoring))
    for first, anyq, scoring in sorted(results, key=lambda r: r[:2], reverse=True)[:10]:
        report(f"  cov={scoring.coverage} new={scoring.new_words} rank={scoring.rank} keep={scoring.keep} "
               f"asked={scoring.asked}",
               shipped, scoring)


if __name__ == "__main__":
    main()
