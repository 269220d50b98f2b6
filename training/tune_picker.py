"""Choose how the reader and `Scoring` share the answer stage, on training/pipeline_set.py's sets (the
reader's validation articles run through the whole pipeline), never on ../shared/eval.

    .venv/bin/python training/tune_picker.py training/pipeline/drcd_zh training/pipeline/hetpqa_en ... [--shortlist 10]

Each question is asked once with today's picker (`ScoredPicker`), recording what the pipeline declined
before any picker (relevance floor, names and attributes), what `Scoring` chose or declined, and the
reader's logit of `Scoring`'s shortlist; rows are cached per reader weights. Then pickers are compared
in a second: Scoring alone; the reader alone (its own order, its threshold); Scoring's quotes with the
reader as a gate (answer.ReaderPicker), with and without Scoring's floor and the rules before it.
(Ordering by Scoring's score + 0.1 x the logit gained 0.009 first quotes on the sets' test half and lost
English questions' first quotes over the bundled Chinese article: Scoring orders.) Printed: answerable answered, first quote
holds the evidence (of the answerable questions answered, as `assistant eval` counts it), unanswerable declined.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from tuning import CACHE, cached_rows  # noqa: E402

from assistant import load_config  # noqa: E402
from assistant.answer.compose import SCORING, ScoredPicker, candidates  # noqa: E402
from assistant.evaluate import HALVES, quote_supports  # noqa: E402
from assistant.models.reader import ARTIFACT, shipped  # noqa: E402
from assistant.text import detect_lang  # noqa: E402

SHORTLIST = 10  # the rows keep the reader's logits of Scoring's 10 best; a picker may read fewer
# What a near-topic question declined may cost: this share of answerable questions declined with it (3 in
# 100). A near-topic question answered with unrelated quotes is the worst this product does; an answerable
# one declined shows its related passages, which hold the answer.
ANSWER_PRICE = 0.03
MAX_SHORTLIST = 4  # the most a question may cost: the lower layers run on the question and these (docs/reader.md)


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
    bot.responder.picker = recorder
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


def gate(threshold: float, k: int = SHORTLIST, scored_floor: bool = True, rules: bool = True):
    """Scoring's quotes (its own order), declined by the pipeline's rules (when `rules`), Scoring's floor
    (when `scored_floor`) and the reader's `threshold` on the best logit of Scoring's `k` best: what
    answer.ReaderPicker does."""
    def decide(row):
        if not row["picked"] and (rules or "logit" not in row):
            return True, False
        declined = (row["declined"] and scored_floor) or max(row["logit"][:k]) < threshold
        first = row["scored_supports"] if row["picked"] and not row["declined"] else row["supports"][0]
        return declined, first
    return decide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--half", choices=sorted(HALVES), default=None)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the sets' indexes are kept")
    parser.add_argument("--write", action="store_true", help="write the chosen numbers into reader.json")
    args = parser.parse_args()
    config = load_config()
    spec = shipped().spec
    every = []
    for dataset in args.sets:
        found = cached_rows(f"picker-{spec.weights_sha256[:12]}-{SHORTLIST}", dataset, config, args.cache, args.half, rows)
        every += found
        print(f"{dataset.name}: {len(found)} questions", flush=True)
    best = [max(r["logit"]) for r in every if r.get("logit")]
    thresholds = sorted({round(float(t), 2) for t in np.percentile(best, np.arange(0, 50, 2.5))})
    print(f"\nall sets, {len(every)} questions; reader threshold shipped {spec.threshold}")
    line = "{:<50} answered {answered:.3f}  first {first:.3f}  declined {declined:.3f}"
    today = simulate(every, scoring)
    print(line.format("scoring (today)", **today))
    for k in (SHORTLIST, 5, 3):
        for t in [spec.threshold] + thresholds[::2]:
            print(line.format(f"reader alone of {k}, threshold {t}", **simulate(every, reader(t, k))))
    options = []
    for k in (SHORTLIST, 5, 4, 3, 2):
        for floor in (True, False):
            for t in [-99.0] + thresholds:
                figures = simulate(every, gate(t, k, scored_floor=floor))
                options.append(((k, floor, t), figures))
                print(line.format(f"{k} best read, Scoring's floor {floor:d}, gate {t}", **figures))
        for t in thresholds[::2]:
            print(line.format(f"{k} best read, gate without the rules {t}",
                              **simulate(every, gate(t, k, scored_floor=False, rules=False))))
    # The choice: at most ANSWER_PRICE fewer answerable questions answered than today, first quotes at least
    # as good, at most MAX_SHORTLIST sentences read (the reader's cost a question); the most declined +
    # first right; among equals the smallest shortlist and the highest threshold.
    fit = [(o, f) for o, f in options if o[0] <= MAX_SHORTLIST
           and f["answered"] >= today["answered"] - ANSWER_PRICE and f["first"] >= today["first"]]
    (k, floor, t), figures = max(fit, key=lambda of: (round(of[1]["declined"] + of[1]["first"], 3), -of[0][0],
                                                       of[0][2]))
    print(f"\nchosen: shortlist {k}, scoring floor {floor}, threshold {t}: {figures}")
    if args.write:
        tuned = {"sets": [d.name for d in args.sets], "half": args.half, "questions": len(every),
                 "today": {k_: round(float(v), 4) for k_, v in today.items()},
                 "chosen": {k_: round(float(v), 4) for k_, v in figures.items()}}
        chosen = dataclasses.replace(spec, shortlist=k, scoring_floor=floor, threshold=t, tuned=tuned)
        (ARTIFACT / "reader.json").write_text(chosen.to_json() + "\n", encoding="utf-8")
        print(f"written to {ARTIFACT / 'reader.json'}")

if __name__ == "__main__":
    main()
