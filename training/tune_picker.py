"""Choose how the reader and `Scoring` share the answer stage, on training/pipeline_set.py's sets (the
reader's validation articles run through the whole pipeline), never on ../shared/eval.

    .venv/bin/python training/tune_picker.py training/pipeline/drcd_zh training/pipeline/hetpqa_en ... [--shortlist 10]

Each question is asked once with today's picker (`ScoredPicker`), recording what the pipeline declined
before any picker (relevance floor, names and attributes), what `Scoring` chose or declined, and the
reader's logit of `Scoring`'s shortlist; rows are cached per reader weights. Then pickers are compared
in a second: Scoring alone; the reader alone (its own order, its threshold); Scoring's order with the
reader as a gate; Scoring's score plus w x the reader's logit. Printed: answerable answered, first quote
holds the evidence (of the answerable questions answered, as `assistant eval` counts it), unanswerable declined.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from tuning import arguments, cached_rows  # noqa: E402

from assistant import load_config  # noqa: E402
from assistant.answer import SCORING, ScoredPicker, candidates  # noqa: E402
from assistant.evaluate import quote_supports  # noqa: E402
from assistant.models.reader import shipped  # noqa: E402
from assistant.text import detect_lang  # noqa: E402

SHORTLIST = 10


@dataclass
class Recorder:
    """A picker that decides as `ScoredPicker` does and records what every other picker would need."""

    reader: object
    seen: dict | None = None

    def pick(self, question, query, lang, found, index, config):
        picked = ScoredPicker().pick(question, query, lang, found, index, config)
        shortlist = sorted(found, key=SCORING.score, reverse=True)[:SHORTLIST]
        logits = self.reader.scores(question, [(c.sentence, c.hit.title) for c in shortlist])
        self.seen = {"shortlist": shortlist, "logits": logits, "scored": picked.chosen[:1]}
        return picked


def rows(bot, questions: list[dict]) -> list[dict]:
    recorder = Recorder(shipped())
    bot.picker = recorder
    out = []
    for n, q in enumerate(questions):
        text = f"{q['product_title']}: {q['text']}" if q.get("product_title") else q["text"]
        recorder.seen = None
        answer = bot.ask(text)
        row = {"answerable": q.get("answerable", True), "declined": answer.declined, "picked": recorder.seen is not None}
        if recorder.seen is None and answer.contexts:
            # Declined before any picker (the relevance floor, or no passage names what is asked): the reader's
            # view of the same passages tells what those rules add.
            query = bot.retriever.prepare(text)
            relevant = [bot.retriever.widen(h, bot.config.context_chars) for h in answer.contexts[: bot.config.top_k]]
            found = candidates(text, query, relevant, bot.index)
            if found:
                recorder.pick(text, query, detect_lang(text), found, bot.index, bot.config)
        if recorder.seen:
            s = recorder.seen
            row["ruled"] = not row["picked"]  # declined by the rules before the picker

            def supports(c) -> bool:
                doc = bot.document(c.hit.doc_id)
                return bool(q.get("evidence")) and quote_supports(doc.text[c.start:c.end], c.start, c.hit.doc_id,
                                                                  doc.text, q["evidence"])

            row |= {"score": [SCORING.score(c) for c in s["shortlist"]], "logit": [float(x) for x in s["logits"]],
                    "supports": [supports(c) for c in s["shortlist"]],
                    "scored_supports": bool(s["scored"]) and supports(s["scored"][0])}
        out.append(row)
        if n % 50 == 0:
            print(f"  {n}/{len(questions)}", flush=True)
    return out


def simulate(rows: list[dict], decide) -> dict:
    """decide(row) -> (declined, first quote supports); the figures `assistant eval` reports."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    out = [decide(r) for r in answerable]
    return {"answered": np.mean([not d for d, _ in out]), "first": np.mean([f for d, f in out if not d] or [0.0]),
            "declined": np.mean([decide(r)[0] for r in unanswerable]) if unanswerable else float("nan")}


def scoring(row):
    return row["declined"], row.get("scored_supports", False)


def reader(threshold: float, k: int = SHORTLIST):
    """The reader alone over Scoring's `k` best: its best first, declined under `threshold`."""
    def decide(row):
        if not row["picked"]:
            return True, False
        logits = row["logit"][:k]
        best = int(np.argmax(logits))
        return logits[best] < threshold, row["supports"][best]
    return decide


def mixed(weight: float, threshold: float, k: int = SHORTLIST, scored_floor: bool = True, rules: bool = True):
    """Scoring's `k` best, ordered by score + weight x logit; declined by the pipeline's rules (when
    `rules`), Scoring's floor (when `scored_floor`) and the reader's threshold on their best logit."""
    def decide(row):
        if not row["picked"] and (rules or "logit" not in row):
            return True, False
        order = np.array(row["score"][:k]) + weight * np.array(row["logit"][:k])
        best = int(np.argmax(order))
        declined = (row["declined"] and scored_floor) or max(row["logit"][:k]) < threshold
        return declined, row["supports"][best]
    return decide


def main() -> None:
    args = arguments(__doc__)
    config = load_config()
    spec = shipped().spec
    every = []
    for folder in args.sets:
        dataset = Path(folder)
        found = cached_rows(f"picker-{spec.weights_sha256[:12]}-{SHORTLIST}", dataset, config, args.cache, args.half, rows)
        every += found
        print(f"{dataset.name}: {len(found)} questions", flush=True)
    best = [max(r["logit"]) for r in every if r["picked"]]
    thresholds = sorted({round(float(t), 1) for t in np.percentile(best, np.arange(0, 50, 5))})
    print(f"\nall sets, {len(every)} questions; reader threshold shipped {spec.threshold}")
    line = "{:<50} answered {answered:.3f}  first {first:.3f}  declined {declined:.3f}"
    print(line.format("scoring (today)", **simulate(every, scoring)))
    for k in (SHORTLIST, 5, 3):
        for t in [spec.threshold] + thresholds:
            print(line.format(f"reader alone of {k}, threshold {t}", **simulate(every, reader(t, k))))
    for k in (SHORTLIST, 5, 4, 3, 2):
        for w in (0.0, 0.02, 0.05, 0.1):
            for t in [-99.0, spec.threshold] + thresholds:
                print(line.format(f"{k} best: score + {w} x logit, gate {t}", **simulate(every, mixed(w, t, k))))
        for t in [spec.threshold] + thresholds:
            print(line.format(f"{k} best: score order, reader gate only {t}",
                              **simulate(every, mixed(0.0, t, k, scored_floor=False))))
            print(line.format(f"{k} best: score order, reader gate, no rules {t}",
                              **simulate(every, mixed(0.0, t, k, scored_floor=False, rules=False))))

if __name__ == "__main__":
    main()
