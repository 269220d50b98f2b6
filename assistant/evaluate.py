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

from .config import Config
from .core import Assistant, index_library
from .index import Progress, no_progress
from .retrieve import MODES, Hit

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


HALVES = {"dev": slice(0, None, 2), "test": slice(1, None, 2)}


def evaluate(dataset: str | Path, config: Config | None = None, k: int = 5, *, progress: Progress = no_progress,
             limit: int | None = None, half: str | None = None, cache: str | Path | None = None) -> dict:
    """The report for one dataset folder; see the module docstring for the format."""
    config = config or Config()
    dataset = Path(dataset)
    queries = read_jsonl(dataset / "queries.jsonl")[HALVES[half] if half else slice(None)][:limit]
    with _folder(cache, dataset.name) as folder:
        started = time.perf_counter()
        report = index_library([dataset / "docs.jsonl"], folder, config, progress=progress)
        build_seconds = time.perf_counter() - started
        bot = Assistant.open(folder, config)
        try:
            result = _run(bot, queries, k, progress)
        finally:
            bot.close()
    result["timing"].update({
        "index_seconds": round(build_seconds, 2),
        "passages": report.chunks,
        "passages_per_second": round(report.chunks / build_seconds, 1) if build_seconds else 0.0,
    })
    result["dataset"] = dataset.name + (f" ({half})" if half else "")
    result["questions"] = len(queries)
    return result


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
    if "generated_sentences_kept" in a:
        lines.append(f"generated  sentences kept after enforcement {pct(a['generated_sentences_kept'])}, "
                     f"answers written by the model {pct(a['generated_by_model'])} (the rest fell back)")
    lines += [f"citations  valid {pct(c['valid'])} of {c['citations']}, some quote holds the evidence "
              f"{pct(c['supported'])}, the first {pct(c['first_supported'])}, of {c['questions_with_evidence']} "
              "answered questions with evidence",
              f"timing     index {t['index_seconds']}s ({t['passages_per_second']} passages/s), "
              f"search p50/p95 {t['search_ms_p50']}/{t['search_ms_p95']} ms, "
              f"ask p50/p95 {t['ask_ms_p50']}/{t['ask_ms_p95']} ms"]
    return "\n".join(lines)
