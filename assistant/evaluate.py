"""Measure the configured pipeline on a question set: retrieval, answers, citations and timing.

A dataset folder holds `docs.jsonl` (documents with `id`) and `queries.jsonl` (questions with
`relevant_doc_ids`, optional `graded_relevance`, `answerable`, `answer_groups`, `evidence`, and for
product questions a `product_title` that is put before the question, since such questions say
"this" and "it"). The documents are indexed into a temporary folder (or, given `cache`, into a
folder kept there for the next run, which then embeds nothing) with the same code as a user's
library, then every question is searched in each mode and asked once. `half` takes the "dev"
(even-numbered) or "test" (odd-numbered) questions: tune on one, report the other.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .answer.retrieve import MODES, Hit
from .config import Config
from .core import Assistant, index_library
from .ingest.indexing import Progress, no_progress

# --- retrieval metrics over a ranked list of distinct document ids ----------------------------------
def hit_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return float(any(d in relevant for d in ranked[:k]))


def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def mrr_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranked[:k]) if d in relevant), 0.0)


def ndcg_at(ranked: Sequence[str], gains: dict[str, float], k: int) -> float:
    """Normalised discounted cumulative gain with graded relevance (gain 2^g - 1)."""
    dcg = sum((2 ** gains.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def returned_documents(hits: Sequence[Hit]) -> list[str]:
    """The distinct documents a search returns, in order: each hit's, then those it lists as carrying the
    same text (a near-identical copy is folded into the hit, not dropped)."""
    return list(dict.fromkeys(d for h in hits for d in (h.doc_id, *h.same_text)))


def answer_is_correct(text: str, groups: list[list[str]]) -> bool:
    """Every group has at least one alternative in the text (case-insensitive), as RGB checks."""
    low = text.lower()
    return all(any(alt.lower() in low for alt in group) for group in groups)


def quote_supports(quote: str, start: int, doc_id: str, doc_text: str, evidence: list[dict]) -> bool:
    """The cited span overlaps a gold evidence span of the same document."""
    for ev in evidence:
        if ev.get("doc_id") != doc_id:
            continue
        if "start" in ev and "end" in ev:
            a, b = int(ev["start"]), int(ev["end"])
        else:
            text = (ev.get("text") or "").strip()
            a = doc_text.find(text) if text else -1
            if a < 0:
                if text and (quote in text or text in quote):
                    return True
                continue
            b = a + len(text)
        if start < b and a < start + len(quote):
            return True
    return False


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class DatasetError(ValueError):
    """A question set that `evaluate` cannot read; str() names the file, the line and the field."""


FORMAT = """A question set is a folder with two files, one JSON object a line:
  docs.jsonl     {"id": "d1", "text": "…", "title": "…"}  (id and text required; author, date, source optional)
  queries.jsonl  {"text": "the question", "relevant_doc_ids": ["d1"]}  (text required; optional: "answerable":
                 false for a question the documents do not answer, "graded_relevance": {"d1": 2},
                 "answer_groups": [["five weeks", "5 weeks"]] (each group must appear in the answer),
                 "evidence": [{"doc_id": "d1", "text": "…"} or {"doc_id": "d1", "start": 0, "end": 40}],
                 "product_title": "…")"""


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_span(ev: dict) -> bool:
    return all(isinstance(ev.get(k), int) and not isinstance(ev.get(k), bool) for k in ("start", "end"))


QUERY_FIELDS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "text": ("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip())),
    "relevant_doc_ids": ("a list of document ids (strings)", _is_str_list),
    "graded_relevance": ("an object of document id → number",
                         lambda v: isinstance(v, dict) and all(isinstance(g, (int, float)) for g in v.values())),
    "answerable": ("true or false", lambda v: isinstance(v, bool)),
    "answer_groups": ("a list of lists of strings", lambda v: isinstance(v, list) and all(_is_str_list(g) for g in v)),
    "evidence": ('a list of {"doc_id", "text"} or {"doc_id", "start", "end"} objects',
                 lambda v: isinstance(v, list) and all(isinstance(e, dict) and isinstance(e.get("doc_id"), str)
                                                       and (isinstance(e.get("text"), str) or _is_span(e)) for e in v)),
    "product_title": ("a string", lambda v: isinstance(v, str)),
}
DOC_FIELDS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "id": ("a non-empty string (queries name documents by it)", lambda v: isinstance(v, str) and bool(v)),
    # Empty is allowed: a document without text is skipped with a warning when the set is indexed, as
    # `assistant index` skips it (epqa_en has one), and a question naming it counts as a miss.
    "text": ("a string", lambda v: isinstance(v, str)),
}


def check_dataset(dataset: str | Path) -> None:
    """DatasetError naming the file, line and field of the first thing `evaluate` could not read: checked
    before the documents are indexed, which takes a while."""
    dataset = Path(dataset)
    for name, fields, required in (("docs.jsonl", DOC_FIELDS, ("id", "text")), ("queries.jsonl", QUERY_FIELDS, ("text",))):
        path = dataset / name
        if not path.is_file():
            raise DatasetError(f"{path}: no such file\n{FORMAT}")
        lines = 0
        try:
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    lines += 1
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DatasetError(f"{path}, line {n}: not JSON ({exc.msg})\n{FORMAT}") from None
                    if not isinstance(record, dict):
                        raise DatasetError(f"{path}, line {n}: a JSON object {{…}} was expected\n{FORMAT}")
                    for field_name, (what, valid) in fields.items():
                        if field_name not in record:
                            if field_name in required:
                                raise DatasetError(f"{path}, line {n}: the field {field_name!r} is missing; it is "
                                                   f"{what}\n{FORMAT}")
                        elif not valid(record[field_name]):
                            raise DatasetError(f"{path}, line {n}: the field {field_name!r} must be {what}, not "
                                               f"{json.dumps(record[field_name], ensure_ascii=False)[:80]}\n{FORMAT}")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 text ({exc.reason})") from None
        if not lines:
            raise DatasetError(f"{path}: empty\n{FORMAT}")


HALVES = {"dev": slice(0, None, 2), "test": slice(1, None, 2)}


def evaluate(dataset: str | Path, config: Config | None = None, k: int = 5, *, progress: Progress = no_progress,
             limit: int | None = None, half: str | None = None, cache: str | Path | None = None) -> dict:
    """The report for one dataset folder; see the module docstring for the format."""
    config = config or Config()
    dataset = Path(dataset)
    check_dataset(dataset)
    queries = read_jsonl(dataset / "queries.jsonl")[HALVES[half] if half else slice(None)][:limit]
    with _folder(cache, dataset.name) as folder:
        started = time.perf_counter()
        clock = _StageClock(progress)
        report = index_library([dataset / "docs.jsonl"], folder, config, progress=clock)
        build_seconds = time.perf_counter() - started
        bot = Assistant.open(folder, config)
        try:
            result = _run(bot, queries, k, progress)
        finally:
            bot.close()
    result["timing"].update({
        "index_seconds": round(build_seconds, 2),
        "passages": report.chunks,
        "passages_embedded": report.chunks_embedded,
        "embedding_seconds": round(clock.seconds, 2),
        "passages_per_second": (round(report.chunks_embedded / clock.seconds, 1)
                                if report.chunks_embedded and clock.seconds else None),
    })
    result["dataset"] = dataset.name + (f" ({half})" if half else "")
    result["questions"] = len(queries)
    return result


class _StageClock:
    """A progress callback that also adds up the time inside the indexing stages (reading, embedding):
    passages/s over the whole build counted the imports and model loading, 0.1/s for a tiny set."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.seconds = 0.0

    def __call__(self, label: str, total: int) -> Callable[[int], None]:
        advance = self.progress(label, total)
        last = time.perf_counter()

        def step(n: int) -> None:
            nonlocal last
            advance(n)
            now = time.perf_counter()
            self.seconds += now - last
            last = now

        return step


@contextmanager
def _folder(cache: str | Path | None, name: str) -> Iterator[str]:
    if cache is None:
        with tempfile.TemporaryDirectory(prefix="assistant-eval-") as folder:
            yield folder
    else:
        yield str(Path(cache) / name)


def _run(bot: Assistant, queries: list[dict], k: int, progress: Progress) -> dict:
    depth = max(10, k)
    scores: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
    search_ms, ask_ms = [], []
    answered = declined_ok = answered_ok = correct = correct_total = 0
    unanswerable = answerable = 0
    cited = valid = with_evidence = supported = first_supported = 0
    kept = generated = by_model = 0
    with_answers = marked = marked_right = 0  # the reader's emphasis in the first quote (Citation.emphasis)
    advance = progress("questions", len(queries))
    for q in queries:
        text = f"{q['product_title']}: {q['text']}" if q.get("product_title") else q["text"]
        relevant = set(q.get("relevant_doc_ids") or [])
        gains = {d: float(g) for d, g in (q.get("graded_relevance") or {}).items()} or {d: 1.0 for d in relevant}
        query = bot.retriever.prepare(text)
        for mode in MODES:
            t = time.perf_counter()
            hits = bot.retriever.search(query, k=3 * depth, mode=mode)
            if mode == "hybrid":
                search_ms.append(1000 * (time.perf_counter() - t))
            ranked = returned_documents(hits)
            if relevant:
                for name, value in (("hit@5", hit_at(ranked, relevant, k)), ("recall@5", recall_at(ranked, relevant, k)),
                                    ("mrr@10", mrr_at(ranked, relevant, 10)), ("ndcg@10", ndcg_at(ranked, gains, 10))):
                    scores[mode].setdefault(name, []).append(value)
        t = time.perf_counter()
        answer = bot.ask(text)
        ask_ms.append(1000 * (time.perf_counter() - t))
        if q.get("answerable", True):
            answerable += 1
            answered_ok += not answer.declined
            if q.get("answer_groups"):
                correct_total += 1
                correct += (not answer.declined) and answer_is_correct(answer.text, q["answer_groups"])
        else:
            unanswerable += 1
            declined_ok += answer.declined
        if answer.declined:
            advance(1)
            continue
        answered += 1
        by_model += answer.meta.get("generator") == "openai"
        generated += answer.meta.get("sentences_generated", 0)
        kept += answer.meta.get("sentences_kept", 0)
        docs = {c.doc_id: bot.document(c.doc_id) for c in answer.citations}
        if q.get("answer_groups") and q.get("answerable", True) and answer.citations:
            with_answers += 1
            first = answer.citations[0]
            if first.emphasis and docs[first.doc_id] is not None:
                marked += 1
                marked_right += answer_is_correct(docs[first.doc_id].text[slice(*first.emphasis)], q["answer_groups"])
        for c in answer.citations:
            cited += 1
            valid += docs[c.doc_id] is not None and docs[c.doc_id].text[c.start:c.end] == c.quote
        if q.get("evidence") and q.get("answerable", True):
            with_evidence += 1
            holds = [docs[c.doc_id] is not None and quote_supports(c.quote, c.start, c.doc_id, docs[c.doc_id].text,
                                                                   q["evidence"]) for c in answer.citations]
            supported += any(holds)
            first_supported += bool(holds) and holds[0]
        advance(1)

    def frac(a: float, b: float) -> float | None:
        return round(a / b, 4) if b else None

    retrieval = {m: {name: round(sum(v) / len(v), 4) for name, v in scores[m].items()} for m in MODES}
    answers = {
        "answered_when_answerable": frac(answered_ok, answerable),
        "declined_when_unanswerable": frac(declined_ok, unanswerable),
        "correct": frac(correct, correct_total),
        "answerable": answerable, "unanswerable": unanswerable,
    }
    if marked:
        answers["first_quote_marked"] = frac(marked, with_answers)
        answers["marks_holding_the_answer"] = frac(marked_right, marked)
    if generated:
        answers["generated_sentences_kept"] = frac(kept, generated)
        answers["generated_by_model"] = frac(by_model, answered)
    return {
        "retrieval": retrieval,
        "answers": answers,
        "citations": {"valid": frac(valid, cited), "supported": frac(supported, with_evidence),
                      "first_supported": frac(first_supported, with_evidence),
                      "citations": cited, "questions_with_evidence": with_evidence},
        "timing": {"search_ms_p50": round(percentile(search_ms, 50), 1),
                   "search_ms_p95": round(percentile(search_ms, 95), 1),
                   "ask_ms_p50": round(percentile(ask_ms, 50), 1), "ask_ms_p95": round(percentile(ask_ms, 95), 1)},
    }


def format_report(result: dict) -> str:
    """A readable table of one `evaluate` result."""
    pct: Callable[[float | None], str] = lambda x: "  n/a" if x is None else f"{x:.3f}"
    lines = [f"{result['dataset']}: {result['questions']} questions, {result['timing']['passages']} passages",
             "", f"{'retrieval':<10}{'hit@5':>8}{'recall@5':>10}{'mrr@10':>8}{'ndcg@10':>9}"]
    for mode, m in result["retrieval"].items():
        lines.append(f"{mode:<10}{pct(m.get('hit@5')):>8}{pct(m.get('recall@5')):>10}"
                     f"{pct(m.get('mrr@10')):>8}{pct(m.get('ndcg@10')):>9}")
    a, c, t = result["answers"], result["citations"], result["timing"]
    lines += ["", f"answers    answered {pct(a['answered_when_answerable'])} of {a['answerable']} answerable, "
                  f"declined {pct(a['declined_when_unanswerable'])} of {a['unanswerable']} unanswerable, "
                  f"correct {pct(a['correct'])}"]
    if "first_quote_marked" in a:
        lines.append(f"emphasis   the answer marked in the first quote {pct(a['first_quote_marked'])} of answers, "
                     f"the mark holding a gold answer {pct(a['marks_holding_the_answer'])}")
    if "generated_sentences_kept" in a:
        lines.append(f"generated  sentences kept after enforcement {pct(a['generated_sentences_kept'])}, "
                     f"answers written by the model {pct(a['generated_by_model'])} (the rest fell back)")
    lines += [f"citations  valid {pct(c['valid'])} of {c['citations']}, some quote holds the evidence "
              f"{pct(c['supported'])}, the first {pct(c['first_supported'])}, of {c['questions_with_evidence']} "
              "answered questions with evidence",
              f"timing     index {t['index_seconds']}s ("
              + (f"{t['passages_embedded']} passages embedded in {t['embedding_seconds']}s, "
                 f"{t['passages_per_second']} passages/s" if t["passages_per_second"] else "nothing embedded")
              + "), "
              f"search p50/p95 {t['search_ms_p50']}/{t['search_ms_p95']} ms, "
              f"ask p50/p95 {t['ask_ms_p50']}/{t['ask_ms_p95']} ms"]
    return "\n".join(lines)
