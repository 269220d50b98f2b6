"""Grid-search the fusion of dense and keyword scores on question sets (a tuning aid, not a test).

For every question the candidate pool (top 100 of each side) is scored on both sides once and
cached; fusion variants are then compared on hit@5 and nDCG@10 in seconds. Tune on the dev half
(even-numbered questions) and report the test half with `assistant eval --half test`. Usage:

    python bench/tune_fusion.py [--half dev] [--cache DIR] ../shared/eval/rgb_zh ../shared/eval/clapnq_en ...

--cache names the folder of `assistant eval --cache`, whose indexes are reused (nothing is embedded again).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from tuning import arguments, cached_rows

from assistant import Assistant, Config, load_config
from assistant.answer.retrieve import (COVERAGE_WEIGHT, LONG_QUESTION, MISSED_TERMS_SHIFT, YEAR_WEIGHT, coverage,
                                       dense_share)
from assistant.evaluate import hit_at, ndcg_at
from assistant.text import detect_lang


def candidates(dataset: Path, config: Config, indexes: Path, half: str | None) -> list[dict]:
    return cached_rows("fusion-v7", dataset, config, indexes, half, lambda bot, questions: [
        _row(bot, q) for q in questions if q.get("relevant_doc_ids")])


def _row(bot: Assistant, q: dict) -> dict:
    store = bot.index.store
    text = f"{q['product_title']}: {q['text']}" if q.get("product_title") else q["text"]
    query = bot.retriever.prepare(text)
    dense = dict(store.dense_search(query.vector, 100))
    keyword = dict(store.keyword_search(query.searched, 100, also=dense)) if query.searched else {}
    ids = sorted(set(dense) | set(keyword))
    all_tokens = store.chunk_tokens(ids)
    dense = bot.retriever.dense_scores(query, dense, all_tokens)[1]  # as `search` ranks them
    top_keyword = sorted(keyword, key=keyword.get, reverse=True)[:5]
    top_tokens = store.chunk_tokens(top_keyword)
    top_tokens = [set(top_tokens.get(i, "").split()) for i in top_keyword]
    tokens = top_tokens[0] if top_tokens else set()
    doc_of = {cid: c.doc_id for cid, c in store.chunks(ids).items()}
    gains = {d: float(g) for d, g in (q.get("graded_relevance") or {}).items()} or {
        d: 1.0 for d in q["relevant_doc_ids"]}
    return {"ids": ids, "dense": np.array([dense[i] for i in ids]),
            "keyword": np.array([keyword.get(i, 0.0) for i in ids]), "doc": [doc_of[i] for i in ids],
            "relevant": set(q["relevant_doc_ids"]), "gains": gains, "lang": detect_lang(text),
            "kcov": coverage(query, tokens), "nterms": len(query.terms),
            "weights": query.weights, "top_tokens": top_tokens,
            "coverage": np.array([coverage(query, set(all_tokens.get(i, "").split())) for i in ids]),
            "dated": np.array([bool(query.years) and set(query.years) <= set(all_tokens.get(i, "").split())
                               for i in ids], dtype=float)}


def minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 1e-9 else np.ones_like(x)


def rank_scores(x: np.ndarray, k: int = 60) -> np.ndarray:
    order = np.argsort(-x)
    ranks = np.empty_like(order)
    ranks[order] = np.arange(len(x))
    return 1.0 / (k + ranks + 1)


VARIANTS = {
    "dense": lambda r, w: r["dense"],
    "keyword": lambda r, w: r["keyword"],
    "rrf": lambda r, w: rank_scores(r["dense"]) + rank_scores(r["keyword"]),
    "minmax": lambda r, w: w * minmax(r["dense"]) + (1 - w) * minmax(r["keyword"]),
    "maxnorm": lambda r, w: w * r["dense"] / max(r["dense"].max(), 1e-9)
    + (1 - w) * r["keyword"] / max(r["keyword"].max(), 1e-9),
    "zscore": lambda r, w: w * (r["dense"] - r["dense"].mean()) / (r["dense"].std() + 1e-9)
    + (1 - w) * (r["keyword"] - r["keyword"].mean()) / (r["keyword"].std() + 1e-9),
}


def _gap(x: np.ndarray, n: int = 10) -> float:
    """How far the best score stands above the next ones, in units of their spread."""
    top = np.sort(x)[::-1][:n]
    return float((top[0] - top[1:].mean()) / (top[1:].std() + 1e-9)) if len(top) > 2 else 0.0


def adaptive(r: dict, w: float) -> np.ndarray:
    """Each side weighted by how clearly its best candidate stands out for this query."""
    gd, gk = max(_gap(r["dense"]), 0.0), max(_gap(r["keyword"]), 0.0)
    wd = w * gd / (w * gd + (1 - w) * gk) if gd + gk > 0 else w
    return wd * minmax(r["dense"]) + (1 - wd) * minmax(r["keyword"])


VARIANTS["adaptive"] = adaptive


def by_coverage(r: dict, w: float) -> np.ndarray:
    """Lean on the dense side when the best keyword match misses much of the question."""
    wd = w + (1 - w) * (1 - r["kcov"])
    return wd * minmax(r["dense"]) + (1 - wd) * minmax(r["keyword"])


VARIANTS["by_coverage"] = by_coverage


def shipped(r: dict, w: float, c: float = COVERAGE_WEIGHT, long: tuple[int, int] = LONG_QUESTION,
            shift: float = MISSED_TERMS_SHIFT, year: float = YEAR_WEIGHT) -> np.ndarray:
    """The fusion in assistant/answer/retrieve.py, with w as its dense_weight (the other constants can be varied;
    the cross-language signal is left out: no evaluation set asks across languages)."""
    wd = dense_share(r["nterms"], 1 - r["kcov"], w, long, shift)
    return wd * minmax(r["dense"]) + (1 - wd) * minmax(r["keyword"]) + c * r["coverage"] + year * r["dated"]


VARIANTS["shipped"] = shipped
GRID = {"w": [0.4, 0.5, 0.6, 0.7, 0.8], "c": [0.2, 0.4, 0.6, 0.8, 1.0], "long": [(5, 10), (7, 12), (10, 16)],
        "shift": [0.3, 0.5, 0.7, 1.0]}


def grid(sets: dict[str, list[dict]]) -> None:
    """Every point of GRID for the shipped fusion: mean nDCG@10 over the sets, and the sets where it
    falls below the better of dense and keyword alone (the first thing a fusion must not do)."""
    floors = {name: max(score(rows, VARIANTS[v], 0.5)[1] for v in ("dense", "keyword")) for name, rows in sets.items()}
    results = []
    for w, c, long, shift in itertools.product(*GRID.values()):
        ndcg = {name: score(rows, lambda r, _: shipped(r, w, c, long, shift), w)[1] for name, rows in sets.items()}
        worse = sum(ndcg[n] < floors[n] - 1e-9 for n in sets)
        results.append((worse, -float(np.mean(list(ndcg.values()))), w, c, long, shift, ndcg))
    print("\nshipped fusion grid, best 15 (worse-than-better-half count, mean nDCG@10, per set):")
    for worse, neg, w, c, long, shift, ndcg in sorted(results, key=lambda r: r[:2])[:15]:
        print(f"  w={w} c={c} long={long} shift={shift}: {worse} worse, mean {-neg:.4f}  "
              + " ".join(f"{n}={v:.3f}" for n, v in ndcg.items()))


def score(rows: list[dict], fuse, w: float) -> tuple[float, float]:
    hits, ndcgs = [], []
    for r in rows:
        s = fuse(r, w)
        ranked = list(dict.fromkeys(r["doc"][i] for i in np.argsort(-s)))
        hits.append(hit_at(ranked, r["relevant"], 5))
        ndcgs.append(ndcg_at(ranked, r["gains"], 10))
    return float(np.mean(hits)), float(np.mean(ndcgs))


def main() -> None:
    args = arguments(__doc__)
    config = load_config()
    sets = {}
    for path in args.sets:
        rows = sets[Path(path).name] = candidates(Path(path), config, args.cache, args.half)
        print(f"\n{Path(path).name} ({len(rows)} questions)   hit@5  ndcg@10")
        for name, fuse in VARIANTS.items():
            weights = [0.5] if name in ("dense", "keyword", "rrf") else [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
            for w in weights:
                h, n = score(rows, fuse, w)
                label = name if len(weights) == 1 else f"{name} w={w}"
                print(f"  {label:<18} {h:.3f}  {n:.3f}")
    grid(sets)


if __name__ == "__main__":
    main()
