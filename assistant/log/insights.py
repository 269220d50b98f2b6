"""Insights: what the question log says, for the person who keeps the library.

The questions the library could not answer and the answers marked 👎, grouped by topic, each group
with the documents the library has closest to it (what to add, or what to fix); the documents cited
most and those never cited; questions per day with the declined and 👎 shares; CSV exports.

Grouping is average-linkage clustering of the questions in the sentence model (USE, `question_groups`),
merged while the mean cosine between two groups is at least GROUP_SIMILARITY. e5's vectors (stored with
each entry, still used to find a group's closest documents) put every short seller question at a cosine
of 0.75-0.95 with every other: at the old 0.84 one group held FBA storage fees, TikTok Shop, return
shipping, return rate and ACOS. Measured on 65 questions written for it on 13 subjects, Chinese and
English mixed (tests/fixtures/insights_questions.jsonl, `bench/grouping.py`): e5 at 0.84, purity 0.54
(inverse purity 0.55); USE at 0.50, purity 0.95 (inverse purity 0.57: a subject's Chinese and English
questions are often two groups, each of one subject). USE with e5 blended scored a little higher on
both (0.91 / 0.62) for a second model's vectors per question; not taken.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np

from ..store.index import Index, VectorCache
from .questions import Entry, QuestionLog, Vote, utcnow

GROUP_SIMILARITY = 0.50
# The most recent distinct problem questions grouped (the clustering is quadratic in them).
MAX_GROUPED = 1000
MAX_PROBLEMS = 5 * MAX_GROUPED  # the newest declined or 👎 questions read for grouping
PAGE = 2000  # entries read at a time
MAX_GROUPS = 50
EXAMPLES_PER_GROUP = 5
CLOSEST_DOCUMENTS = 3
TOP_CITED = 10
NEVER_CITED_SHOWN = 50
SORTS = ("largest", "newest")


def report(log: QuestionLog, index: Index, days: int = 30, sort: str = "largest",
           collection: str | None = None) -> dict:
    """The Insights of the last `days` days (UTC) from the question log and the index, as JSON-ready data:

    totals (questions, answered, declined, 👍, 👎, by surface and language, median seconds), log (this
    process's written / failed / dropped entries), daily (questions, declined and 👎 shares per day),
    groups (declined or 👎 questions by topic: count, languages, first and last time, examples with
    their feedback, the closest documents), most_cited and never_cited documents.
    `sort`: "largest" groups first (then newest), or "newest" first. `collection`: of the questions asked in
    that collection, with its documents only.
    """
    if sort not in SORTS:
        raise ValueError(f"sort is one of {SORTS}")
    days = max(1, int(days))
    until = utcnow()
    since = until - timedelta(days=days)
    by_answer: dict[str, list[Vote]] = defaultdict(list)
    for v in log.store.feedback(since):
        by_answer[v.answer_id].append(v)
    down = {a for a, vs in by_answer.items() if any(v.vote < 0 for v in vs)}
    tally = _Tally(by_answer, down, since, until)
    for page in pages(log.store, since, collection):
        tally.add(page)
    return {
        "days": days, "since": _iso(since), "until": _iso(until),
        "totals": tally.totals(),
        "log": log.counts(),
        "daily": tally.daily(),
        "groups": _groups(log, index, list(tally.problems), by_answer, down, sort, collection),
        **_citations(index, tally.cited, collection),
        "collection": collection,
    }


def pages(store, since, collection: str | None) -> Iterator[list[Entry]]:
    """The entries since then (asked in `collection`, when named), oldest first, PAGE at a time."""
    after = None
    while page := store.entries(since, after, PAGE):
        after = page[-1]
        yield [e for e in page if collection is None or e.collection == collection]


def _iso(at) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Tally:
    """What Insights shows of the entries, added up a page at a time: what it holds grows with the days, the
    documents cited and MAX_PROBLEMS, not with the number of questions (the log may hold a flood)."""

    def __init__(self, by_answer: dict[str, list[Vote]], down: set[str], since, until):
        self.by_answer, self.down = by_answer, down
        self.count = self.declined = self.up = self.votes_down = 0
        self.seconds: list[float] = []
        self.surfaces: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()
        self.days: dict[str, list[int]] = {}  # day: [questions, declined, 👎]
        day = since.date()
        while day <= until.date():
            self.days[day.isoformat()] = [0, 0, 0]
            day += timedelta(days=1)
        self.cited: Counter[str] = Counter()
        self.problems: deque[Entry] = deque(maxlen=MAX_PROBLEMS)  # the newest declined or 👎 questions

    def add(self, entries: list[Entry]) -> None:
        for e in entries:
            votes = self.by_answer.get(e.id, ())
            self.count += 1
            self.declined += e.declined
            self.up += sum(v.vote > 0 for v in votes)
            self.votes_down += sum(v.vote < 0 for v in votes)
            self.seconds.append(e.seconds)
            self.surfaces[e.surface] += 1
            self.languages[e.lang] += 1
            day = self.days.setdefault(e.asked_at.date().isoformat(), [0, 0, 0])
            day[0] += 1
            day[1] += e.declined
            day[2] += e.id in self.down
            self.cited.update({c["doc_id"] for c in e.citations})
            if e.declined or e.id in self.down:
                self.problems.append(e)

    def totals(self) -> dict:
        seconds = sorted(self.seconds)
        return {
            "questions": self.count,
            "answered": self.count - self.declined,
            "declined": self.declined,
            "up": self.up,
            "down": self.votes_down,
            "surfaces": dict(self.surfaces.most_common()),
            "languages": dict(self.languages.most_common()),
            "median_seconds": round(seconds[len(seconds) // 2], 3) if seconds else None,
        }

    def daily(self) -> list[dict]:
        return [{"day": day, "questions": n, "declined": declined, "down": disliked,
                 "declined_share": round(declined / n, 3) if n else 0.0,
                 "down_share": round(disliked / n, 3) if n else 0.0}
                for day, (n, declined, disliked) in self.days.items()]


# A question's subject is in its first words; USE's tokenizer costs ~10 ms per 200 characters on 2 cores.
GROUPED_CHARS = 80
QUESTION_VECTORS = VectorCache(4 * MAX_GROUPED)  # Insights read again embed only the new questions


def question_groups(embedder, questions: list[str], weights: list[int] | None = None) -> list[list[int]]:
    """The questions (indices) by subject: `group_vectors` of their vectors in `embedder` (the sentence model)."""
    if not questions:
        return []
    vectors = np.asarray(QUESTION_VECTORS.get(embedder, [q[:GROUPED_CHARS] for q in questions]), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return group_vectors(vectors, weights or [1] * len(questions))


def group_vectors(vectors: np.ndarray, weights: list[int], threshold: float = GROUP_SIMILARITY) -> list[list[int]]:
    """Average-linkage clusters of unit `vectors` (row indices), each row standing for `weights` questions:
    two groups merge while the mean cosine between their questions is at least `threshold`."""
    n = len(vectors)
    if n == 0:
        return []
    sim = (vectors @ vectors.T).astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    size = np.asarray(weights, dtype=np.float64)
    members = [[i] for i in range(n)]
    # Each row's most similar group, kept as groups merge: a search of the whole matrix per merge cost n³
    # (1,000 questions: seconds). A merged row is a weighted mean of two rows, never above either, so only
    # the rows whose best was one of the two merged need a new search.
    best = np.argmax(sim, axis=1)
    value = sim[np.arange(n), best]
    while n > 1:
        i = int(np.argmax(value))
        j = int(best[i])
        if value[i] < threshold:
            break
        # Lance-Williams: the mean similarity of the merged group to every other group.
        sim[i, :] = (size[i] * sim[i, :] + size[j] * sim[j, :]) / (size[i] + size[j])
        sim[:, i] = sim[i, :]
        sim[i, i] = sim[j, :] = sim[:, j] = -np.inf
        size[i] += size[j]
        members[i] += members[j]
        members[j] = []
        value[j] = -np.inf
        for k in np.flatnonzero(((best == i) | (best == j)) & (value > -np.inf)).tolist() + [i]:
            best[k] = int(np.argmax(sim[k]))
            value[k] = sim[k, best[k]]
    return [m for m in members if m]


def _groups(log: QuestionLog, index: Index, entries: list[Entry], by_answer: dict[str, list[Vote]], down: set[str],
            sort: str, collection: str | None = None) -> list[dict]:
    problems = [e for e in entries if e.declined or e.id in down]
    # The same words asked again are one point of the clustering, weighing as many questions.
    same: dict[str, list[Entry]] = {}
    for e in reversed(problems):  # newest first, so that the cap keeps the recent ones
        key = " ".join(e.question.casefold().split())
        if key in same or len(same) < MAX_GROUPED:
            same.setdefault(key, []).append(e)
    points = list(same.values())
    stored = log.store.vectors([p[0].id for p in points])  # e5's: a group's closest documents
    dim = index.embedder.dim
    clusters = [[points[i] for i in members] for members in
                question_groups(index.sentence_embedder, [p[0].question for p in points], [len(p) for p in points])]
    groups = []
    for cluster in clusters:
        items = sorted((e for p in cluster for e in p), key=lambda e: e.asked_at)
        groups.append((cluster, items))
    if sort == "newest":
        groups.sort(key=lambda g: g[1][-1].asked_at, reverse=True)
    else:
        groups.sort(key=lambda g: (len(g[1]), g[1][-1].asked_at), reverse=True)
    out = []
    for cluster, items in groups[:MAX_GROUPS]:
        ids = [p[0].id for p in cluster if p[0].id in stored and len(stored[p[0].id]) == dim]
        centre = np.mean([stored[i] for i in ids], axis=0) if ids else None
        examples = sorted(cluster, key=lambda p: (len(p), p[-1].asked_at), reverse=True)[:EXAMPLES_PER_GROUP]
        out.append({
            "count": len(items),
            "declined": sum(e.declined for e in items),
            "down": sum(e.id in down for e in items),
            "languages": dict(Counter(e.lang for e in items).most_common()),
            "first": _iso(items[0].asked_at),
            "last": _iso(items[-1].asked_at),
            "questions": [_example(p, by_answer) for p in examples],
            "closest": _closest(index, centre, collection) if centre is not None else [],
        })
    return out


def _example(same: list[Entry], by_answer: dict[str, list[Vote]]) -> dict:
    latest = same[0]
    feedback = [{"vote": v.vote, "reason": v.reason, "comment": v.comment}
                for e in same for v in by_answer.get(e.id, []) if v.vote < 0]
    return {"id": latest.id, "question": latest.question, "asked": len(same), "lang": latest.lang,
            "last": _iso(latest.asked_at), "declined": latest.declined, "reason": latest.reason, "feedback": feedback}


def _closest(index: Index, centre: np.ndarray, collection: str | None) -> list[dict]:
    centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
    store = index.store
    hits = store.dense_search(centre.astype(np.float32), 4 * CLOSEST_DOCUMENTS, collection)
    chunks = store.chunks([i for i, _ in hits])
    docs: dict[str, dict] = {}
    for chunk_id, score in hits:
        c = chunks.get(chunk_id)
        if c is not None and c.doc_id not in docs:
            docs[c.doc_id] = {"doc_id": c.doc_id, "title": c.title or c.doc_id, "similarity": round(float(score), 3)}
    return list(docs.values())[:CLOSEST_DOCUMENTS]


def _citations(index: Index, cited: Counter[str], collection: str | None) -> dict:
    most = []
    for doc_id, n in cited.most_common(TOP_CITED):
        doc = index.document(doc_id)
        most.append({"doc_id": doc_id, "title": doc.title if doc else "", "answers": n, "in_library": doc is not None})
    store = index.store
    held = (store.doc_ids() if collection is None
            else {d for d, cs in store.document_collections(store.doc_ids()).items() if collection in cs})
    never_total = len(held - set(cited))
    never, offset = [], 0
    while len(never) < NEVER_CITED_SHOWN and offset < never_total + len(cited):
        # newest first, as the Library view lists them; a document without a title goes by its file's name
        _, page = store.document_list("", offset, 200, collection)
        if not page:
            break
        never += [{"doc_id": d, "title": title or (Path(path).name if path else ""), "added": added or ""}
                  for d, title, _date, _source, path, _pages, _chunks, added, *_ in page if d not in cited]
        offset += len(page)
    return {"most_cited": most, "never_cited": {"total": never_total, "documents": never[:NEVER_CITED_SHOWN]}}


# --- CSV exports ------------------------------------------------------------------------------------
QUESTION_COLUMNS = ("id", "asked_at", "surface", "lang", "question", "outcome", "reason", "cited", "seconds", "up",
                    "down", "conversation_id", "ip", "user_agent", "collection")
FEEDBACK_COLUMNS = ("answer_id", "at", "vote", "reason", "comment", "question", "outcome", "asked_at")


def _cell(value: object) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet: a question must stay text.
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(columns: tuple[str, ...], pages: Iterable[list[tuple]]) -> Iterator[str]:
    """The CSV text, a page of rows at a time: an export of a large log is streamed, never held whole."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for rows in pages:
        writer.writerows([_cell(v) for v in row] for row in rows)
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    yield out.getvalue()


def questions_csv(log: QuestionLog, days: int = 30, collection: str | None = None) -> Iterator[str]:
    """Every logged question of the last `days` days (asked in `collection`, when named), oldest first, with its
    outcome and votes; the CSV text in pieces."""
    since = utcnow() - timedelta(days=max(1, int(days)))
    votes: dict[str, Counter] = defaultdict(Counter)
    for v in log.store.feedback(since):
        votes[v.answer_id][v.vote] += 1
    rows = ([(e.id, _iso(e.asked_at), e.surface, e.lang, e.question, "declined" if e.declined else "answered", e.reason,
              "; ".join(f"{c['doc_id']}:{c['start']}-{c['end']}" for c in e.citations), round(e.seconds, 3),
              votes[e.id][1], votes[e.id][-1], e.conversation_id or "", (e.client or {}).get("ip", ""),
              (e.client or {}).get("user_agent", ""), e.collection or "")
             for e in page] for page in pages(log.store, since, collection))
    return _csv(QUESTION_COLUMNS, rows)


def feedback_csv(log: QuestionLog, days: int = 30, collection: str | None = None) -> Iterator[str]:
    """Every vote on a question of the last `days` days (asked in `collection`, when named), with the question;
    the CSV text in pieces."""
    since = utcnow() - timedelta(days=max(1, int(days)))
    feedback = log.store.feedback(since)

    def rows() -> Iterator[list[tuple]]:
        for i in range(0, len(feedback), PAGE):
            part = feedback[i : i + PAGE]
            entries = log.store.entries_by_id(list({v.answer_id for v in part}))
            yield [(v.answer_id, _iso(v.at), "up" if v.vote > 0 else "down", v.reason, v.comment, e.question,
                    "declined" if e.declined else "answered", _iso(e.asked_at))
                   for v in part if (e := entries.get(v.answer_id)) and (collection is None or e.collection == collection)]

    return _csv(FEEDBACK_COLUMNS, rows())
