"""Hybrid retrieval: dense (FAISS or pgvector) and keyword (BM25) candidates, both scored on every candidate, fused.

Plain reciprocal-rank fusion throws scores away and loses to BM25 alone on Chinese text, so
each candidate from either list gets both its dense score (its cosine, plus its match with the
best few dense passages: `Retriever.dense_scores`) and its BM25 score; the two are min-max
normalised per query and mixed. The dense share starts at `dense_weight` and grows when keyword
matching is weak evidence for this question: when the question is long (BM25 drowns in the terms
of conversational questions) or when the best keyword match misses much of it. To the mix is added
the candidate's coverage: the share of the question's keyword weight (IDF) it contains, which
BM25's length normalisation and term-frequency saturation blur; and to a candidate in another
language than the question, its best sentence's match in the sentence model (`_across_languages`);
and to a candidate naming every year the question names, `YEAR_WEIGHT`.
The fusion constants were tuned with bench/tune_fusion.py on the evaluation sets, the cross-language
weight on our own English questions about the bundled Chinese article (see README). Overlapping
chunks of one document and near-identical chunks of different documents are collapsed to the best
of them; the documents of the second kind are listed on the hit (`same_text`). Each hit also carries
`relevance`, the evidence used to decide whether the library covers the question at all.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..config import Config
from ..models.embed import Calibration, calibration
from ..store.index import Index
from ..store.keyword import query_terms
from ..text import detect_lang, in_other_language, mostly_other_script, sentence_spans

MODES = ("hybrid", "dense", "keyword")
# The dense share reaches 1 as a question grows from LONG_QUESTION[0] to LONG_QUESTION[1] content terms.
LONG_QUESTION = (5, 10)
# In a library of more than COMMON_MIN_LIBRARY chunks, words found in more than COMMON_SHARE of them
# are left out of the keyword query: their BM25 weight is next to nothing, and scoring every chunk
# that contains them made a keyword search of 1M chunks take over a second. Smaller libraries keep
# every word (on a topical library of 3,000 chunks, half the questions would lose a word).
COMMON_SHARE = 0.05
COMMON_MIN_LIBRARY = 50_000
# How strongly a best keyword match that misses part of the question shifts weight to the dense side.
MISSED_TERMS_SHIFT = 0.7
# Weight of coverage added to the fused (0..1) score of each candidate.
COVERAGE_WEIGHT = 0.8
# Pseudo-relevance feedback: the dense ranking adds, at this weight, each candidate's cosine with the mean
# of the best few dense candidates (bench: rgb_zh dev nDCG@10 +0.017, epqa +0.009; 2 and 5 chunks, or
# feedback taken from the fused ranking, did worse on rgb_zh).
FEEDBACK_CHUNKS = 3
FEEDBACK_WEIGHT = 1.0
# Weight of the normalised best-sentence match added to a candidate in another language than the question.
ACROSS_WEIGHT = 0.5
# Added to a candidate that names every year the question names: "the year-end No 1 in 2020" is about
# 2020, and a passage on the ranking in general matched it better in words and meaning (bench: rgb_en_fact
# dev nDCG@10 0.619 -> 0.642, test 0.611 -> 0.633; rgb_zh dev +0.002, test -0.001; 0.3 cost rgb_zh test 0.004).
YEAR_WEIGHT = 0.2
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")


@dataclass
class Hit:
    chunk_id: int
    doc_id: str
    title: str
    text: str  # == document(doc_id).text[start:end]
    start: int
    end: int
    page: int | None
    score: float  # the ranking score of the mode used
    dense: float = 0.0  # cosine similarity with the question
    keyword: float = 0.0  # BM25
    coverage: float = 0.0  # share of the question's keyword weight found in the chunk
    relevance: float = 0.0  # evidence that the chunk is on the question's topic (see `relevance`)
    # Other documents whose passage here is near-identical (syndicated news, an article saved twice):
    # folded into this hit rather than shown again, and listed so that each copy can still be opened.
    same_text: list[str] = dataclasses.field(default_factory=list)


@dataclass
class Query:
    """A question prepared once for retrieval and answering."""

    text: str
    vector: np.ndarray
    terms: list[str]
    weights: dict[str, float]  # term -> IDF
    searched: list[str]  # the terms the keyword query matches on
    years: tuple[str, ...] = ()  # the years it names ("2020"), which a passage about it is likely to name
    sentence_vector: np.ndarray | None = None  # in the sentence model, once needed (Index.question_in_sentence_model)


class Retriever:
    def __init__(self, index: Index, config: Config):
        self.index, self.config = index, config

    def prepare(self, text: str) -> Query:
        terms = query_terms(text)
        store = self.index.store
        n = max(store.counts()["chunks"], 1)
        df = store.document_frequency(terms)
        weights = {t: float(np.log(1 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5))) for t in terms}
        # A word in more than half the chunks has no BM25 weight (its IDF is clamped to ~0), and matching
        # on it ("年", "个") made the keyword query score most of the library.
        share = COMMON_SHARE if n > COMMON_MIN_LIBRARY else 0.5
        rare = [t for t in terms if df.get(t, 0) <= share * n]
        return Query(text, self.index.embedder.encode_query([text])[0], terms, weights, rare or terms,
                     years=tuple(dict.fromkeys(_YEAR.findall(text))))

    def search(self, query: str | Query, k: int = 5, mode: str = "hybrid", collection: str | None = None) -> list[Hit]:
        """The k best passages of the library, or of `collection` (scoped in the store's searches)."""
        if mode not in MODES:
            raise ValueError(f"search mode {mode!r} is not one of {MODES}")
        q = query if isinstance(query, Query) else self.prepare(query)
        store = self.index.store
        pool = max(50, 4 * k)
        dense = dict(store.dense_search(q.vector, pool, collection)) if mode != "keyword" else {}
        # Every candidate is scored on both sides, so that fusion compares like with like.
        keyword = (dict(store.keyword_search(q.searched, pool, also=dense if mode == "hybrid" else (),
                                             collection=collection))
                   if q.searched and mode != "dense" else {})
        ids = set(dense) | set(keyword)
        tokens = store.chunk_tokens(ids) if ids else {}
        words = {i: set(t.split()) for i, t in tokens.items()}
        covered = {i: coverage(q, w) for i, w in words.items()}
        ranked_dense = dense
        if mode != "keyword" and tokens:
            dense, ranked_dense = self.dense_scores(q, dense, tokens)
        if mode == "dense":
            scores = ranked_dense
        elif mode == "keyword":
            scores = keyword
        else:
            fused = _fuse(ranked_dense, keyword, self._dense_share(q, keyword, covered))
            across = self._across_languages(q, other_language_majority(q, tokens))
            dated = {i for i, w in words.items() if w.issuperset(q.years)} if q.years else set()
            scores = {i: s + COVERAGE_WEIGHT * covered.get(i, 0.0) + ACROSS_WEIGHT * across.get(i, 0.0)
                      + YEAR_WEIGHT * (i in dated) for i, s in fused.items()}
        ranked = sorted(scores, key=scores.get, reverse=True)
        return self._hits(ranked, scores, dense, keyword, covered, q, k)

    def widen(self, hit: Hit, chars: int) -> Hit:
        """The hit with up to `chars` characters of whole sentences around it, as context for answering.

        Chunks cut a document at sentence boundaries, so the sentence that answers a question may
        sit just outside the chunk that matched it.
        """
        doc = self.index.document(hit.doc_id)
        if doc is None or chars <= 0:
            return hit
        lo, hi = max(0, hit.start - chars), min(len(doc.text), hit.end + chars)
        spans = sentence_spans(doc.text, lo, hi)
        # The outermost spans may be cut mid-sentence unless they touch the ends of the document.
        inner_starts = [a for a, _ in (spans if lo == 0 else spans[1:]) if a <= hit.start]
        inner_ends = [b for _, b in (spans if hi == len(doc.text) else spans[:-1]) if b >= hit.end]
        start = min(inner_starts, default=hit.start)
        end = max(inner_ends, default=hit.end)
        return dataclasses.replace(hit, start=start, end=end, text=doc.text[start:end])

    def dense_scores(self, q: Query, dense: dict[int, float],
                     tokens: dict[int, str]) -> tuple[dict[int, float], dict[int, float]]:
        """(cosine with the question, dense ranking score) of every candidate (`tokens`' keys). The ranking
        adds the candidate's match with the mean of the FEEDBACK_CHUNKS best dense passages
        (pseudo-relevance feedback): those passages say in the library's own words what the question is
        about, which a one-line question does not, and candidates that agree with them are more often
        the ones that answer it (README: Quality). Not when one of them is in another language than the
        question: the passage model's cosines across languages are compressed, so its best few there
        are no reliable picture of the topic (it ranked the passage that answers one of our English
        questions 9th of its Chinese article's 14). The cosine alone stays the evidence that the library
        covers the question (`relevance`), so declining does not change."""
        got, vectors = self.index.store.chunk_vectors(tokens)
        if not len(got):
            return dense, dense
        got_ids = got.tolist()
        row = {i: n for n, i in enumerate(got_ids)}
        best = [i for i in sorted(dense, key=dense.get, reverse=True)[:FEEDBACK_CHUNKS] if i in row]
        lang = detect_lang(q.text)
        cosine = vectors @ q.vector
        ranking = cosine
        if best and not any(mostly_other_script(tokens[i], lang) for i in best):
            ranking = cosine + FEEDBACK_WEIGHT * (vectors @ vectors[[row[i] for i in best]].mean(axis=0))
        return dict(zip(got_ids, cosine.tolist())), dict(zip(got_ids, ranking.tolist()))

    def _across_languages(self, q: Query, other: list[int]) -> dict[int, float]:
        """For a question over candidates mostly in another language (an English question over Chinese
        articles), their best sentence's cosine with it in the sentence model, normalised over them. A
        chunk is one vector of many sentences, and the passage model's cosines across languages are
        compressed; the sentence model was trained to align languages sentence by sentence, and its
        vectors are stored."""
        if not other or self.index.models.sentences == self.index.models.passages:
            return {}
        chunks = self.index.store.chunks(other)
        other = [i for i in other if i in chunks]
        return _normalise(dict(zip(other, self.index.best_sentence_similarity(q, [chunks[i].text for i in other]))))

    def _dense_share(self, q: Query, keyword: dict[int, float], covered: dict[int, float]) -> float:
        if not keyword:
            return 1.0
        missed = 1.0 - covered.get(max(keyword, key=keyword.get), 0.0)
        return dense_share(len(q.terms), missed, self.config.dense_weight)

    def _hits(self, ranked: list[int], scores: dict[int, float], dense: dict[int, float],
              keyword: dict[int, float], covered: dict[int, float], q: Query, k: int) -> list[Hit]:
        window = ranked[: 3 * k]
        chunks = self.index.store.chunks(window)
        scale = calibration(self.index.models.passages)
        lang = detect_lang(q.text)
        hits: list[Hit] = []
        kept: list[_Span] = []
        for cid in window:
            c = chunks.get(cid)
            if c is None:
                continue
            span = _Span(c.doc_id, c.start, c.end, _shingles(c.text))
            twin = next((n for n, other in enumerate(kept) if _duplicate(span, other)), None)
            if twin is not None:
                if c.doc_id != kept[twin].doc_id and c.doc_id not in hits[twin].same_text:
                    hits[twin].same_text.append(c.doc_id)
                continue
            if len(hits) == k:  # the rest of the window is only looked at for copies of the hits
                continue
            kept.append(span)
            hits.append(Hit(cid, c.doc_id, c.title or "", c.text, c.start, c.end, c.page, float(scores[cid]),
                            dense=float(dense.get(cid, 0.0)), keyword=float(keyword.get(cid, 0.0)),
                            coverage=covered.get(cid, 0.0),
                            relevance=relevance(scale, dense.get(cid, 0.0), covered.get(cid, 0.0),
                                                in_other_language(c.text, lang), lang == "zh")))
        return hits


def other_language_majority(q: Query, tokens: dict[int, str]) -> list[int]:
    """The candidates in another language than the question when they are most of them (an English
    question over Chinese articles), else none. A few among many (English boilerplate pages in a Chinese
    library) do not count: normalised over so few, the cross-language signal lifted the best of them."""
    lang = detect_lang(q.text)
    other = [i for i, t in tokens.items() if mostly_other_script(t, lang)]
    return other if 2 * len(other) > len(tokens) else []


def relevance(scale: Calibration, cosine: float, coverage: float, other_language: bool, chinese: bool) -> float:
    """Evidence that a chunk is on the question's topic, comparable with `Config.min_relevance`: either
    the meaning matches (cosine; a model's cosines run lower across languages and higher between
    Chinese texts, by the calibrated gaps) or most of the question's rarer words occur in it (coverage,
    weighed as weaker evidence)."""
    gap = scale.cross_language_gap if other_language else scale.chinese_gap if chinese else 0.0
    return max(cosine + gap, scale.keyword_evidence * coverage)


def dense_share(terms: int, missed: float, weight: float, long: tuple[int, int] = LONG_QUESTION,
                shift: float = MISSED_TERMS_SHIFT) -> float:
    """The dense share of the fusion for a question of `terms` content terms whose best keyword
    match misses `missed` of its keyword weight; at least `weight` (bench/tune_fusion.py varies the rest)."""
    low, high = long
    length = min(1.0, max(0.0, (terms - low) / (high - low)))
    return weight + (1 - weight) * min(1.0, max(length, shift * missed))


def coverage(q: Query, tokens: set[str]) -> float:
    total = sum(q.weights.values())
    return sum(w for t, w in q.weights.items() if t in tokens) / total if total else 0.0


def _fuse(dense: dict[int, float], keyword: dict[int, float], weight: float) -> dict[int, float]:
    d = _normalise(dense)
    kw = _normalise(keyword)
    return {i: weight * d.get(i, 0.0) + (1 - weight) * kw.get(i, 0.0) for i in set(dense) | set(keyword)}


def _normalise(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    return {i: (s - lo) / span if span > 1e-9 else 1.0 for i, s in scores.items()}


class _Span(NamedTuple):
    doc_id: str
    start: int
    end: int
    shingles: set[str]


def _duplicate(a: _Span, b: _Span) -> bool:
    """Overlapping chunks of one document, or near-identical text in two documents."""
    if a.doc_id == b.doc_id:
        return a.start < b.end and b.start < a.end
    return bool(a.shingles and b.shingles) and len(a.shingles & b.shingles) / len(a.shingles | b.shingles) > 0.8


def _shingles(text: str, n: int = 4) -> set[str]:
    text = "".join(text.split())
    return {text[i : i + n] for i in range(max(len(text) - n + 1, 0))}
