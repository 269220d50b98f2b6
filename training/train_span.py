"""Train the reader's span network: where, in a sentence that states the answer, the answer itself stands.

    .venv/bin/python training/train_span.py [--questions 12000] [--epochs 4] [--lr 3e-4] [--precision 0.8] [--dry-run]

It learns from the groups of training/reader_data.py (never from ../shared/eval): each DRCD or XQuAD question
(Chinese, English and across the two) with its gold sentence, which records where the answer stands in it,
and one of its hard negatives (a sentence of the same article that does not hold the answer), whose target is
"no answer here" (the candidate's first token), so that a quote that does not state the answer gets no mark.

The network (`reader.span_network`) is a copy of the shipped reader's top layers with a start/end logit a
token, fine-tuned by cross-entropy; it reads e5's lower states as the shipped reader computes them (its int8
graph), so the reader's own logits are left as they were. On the validation split it chooses
`min_confidence`: the least probability of a marked span at which at least `--precision` of the marks on gold
sentences hold the answer (character F1 >= 0.5 against it), and reports how often a hard negative is marked
at that confidence. Writes assistant/models/reader_weights/span.npz (fp16) and the `span` entry of
reader.json (docs/reader.md). About 10 minutes of features and 25 of training on 2 cores (AVX2).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from assistant.models.cache import sha256  # noqa: E402
from assistant.models.reader import (ARTIFACT, SPAN_TOKENS, Reader, best_span, span_network,  # noqa: E402
                                     trained_state)
from train_reader import stacked  # noqa: E402  (its neighbour in training/)

DATA = Path("training/data")
GOOD_F1 = 0.5  # a mark "holds the answer" when its character F1 against the answer reaches this
BATCH = 16
HEAD_LR = 1e-3


def pairs(path: Path, limit: int, seed: int) -> list[dict]:
    """Questions whose gold sentence records its answer, with one hard negative each, drawn at random (seeded)."""
    rng = random.Random(seed)
    out = []
    for line in path.open(encoding="utf-8"):
        g = json.loads(line)
        gold = next((c for c in g["candidates"] if c["label"] and c.get("answer")), None)
        if gold is None:
            continue
        negatives = [c for c in g["candidates"] if not c["label"]]
        out.append({"question": g["question"], "source": g["source"], "gold": gold,
                    "negative": rng.choice(negatives) if negatives else None})
    rng.shuffle(out)
    return out[:limit]


def features(reader: Reader, items: list[dict], label: str) -> list[dict]:
    """e5's lower states (fp16) of each question and candidate as the shipped reader computes them, each
    candidate's token places, and its target: the answer's first and last token, or (0, 0) for none."""
    rows, started = [], time.time()
    for n, item in enumerate(items):
        candidates = [item["gold"]] + ([item["negative"]] if item["negative"] else [])
        states, where = reader.lower_states(item["question"], [(c["text"], c["context"].split("\n")[0])
                                                               for c in candidates])
        q = states["q_states"][0, : int(states["q_mask"][0].sum())].astype(np.float16)
        for k, (c, w) in enumerate(zip(candidates, where)):
            target = (0, 0)
            if c["label"]:
                a, b = c["answer"]
                start = next((i for i, t in enumerate(w) if t and t[0] <= a < t[1]), None)
                end = next((i for i, t in enumerate(w) if t and t[0] < b <= t[1]), None)
                if start is None or end is None or end < start or end - start >= SPAN_TOKENS:
                    continue  # cut off with the candidate's end, or longer than a mark may be
                target = (start, end)
            rows.append({"q": q, "s": states["s_states"][k, : len(w)].astype(np.float16), "where": w,
                         "target": target, "answer": c.get("answer"), "source": item["source"]})
        if (n + 1) % 1000 == 0:
            print(f"  {label}: {n + 1}/{len(items)} questions, {time.time() - started:.0f} s", flush=True)
    return rows


def span_logits(torch, network, rows: list[dict]):
    q, q_mask = stacked(torch, [r["q"] for r in rows])
    s, s_mask = stacked(torch, [r["s"] for r in rows])
    return network(q, q_mask, s, s_mask)


def train(network, rows: list[dict], epochs: float, lr: float, seed: int) -> None:
    """Cross-entropy of the start and of the end over each candidate's sentence tokens and its first token."""
    import torch

    torch.manual_seed(seed)
    head = list(network.span.parameters())
    body = [p for p in network.parameters() if all(p is not h for h in head)]
    optimizer = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head, "lr": HEAD_LR}], weight_decay=0.01)
    rng = random.Random(seed)
    order = []
    while len(order) < epochs * len(rows):
        order += rng.sample(range(len(rows)), len(rows))
    order = order[: int(epochs * len(rows))]
    # Similar lengths in a batch (padding costs as much as text): sorted by length within runs of 50 batches.
    run = 50 * BATCH
    order = [i for k in range(0, len(order), run) for i in sorted(order[k : k + run], key=lambda i: len(rows[i]["s"]))]
    batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    rng.shuffle(batches)
    total, counted, started = 0.0, 0, time.time()
    network.train()
    for step, batch in enumerate(batches):
        chosen = [rows[i] for i in batch]
        logits = span_logits(torch, network, chosen)
        allowed = torch.zeros(logits.shape[:2], dtype=torch.bool)
        for n, r in enumerate(chosen):
            allowed[n, 0] = True
            allowed[n, : len(r["where"])] |= torch.tensor([w is not None for w in r["where"]])
        logits = logits.masked_fill(~allowed[:, :, None], -1e4)
        targets = torch.tensor([r["target"] for r in chosen])
        loss = (torch.nn.functional.cross_entropy(logits[:, :, 0], targets[:, 0])
                + torch.nn.functional.cross_entropy(logits[:, :, 1], targets[:, 1]))
        scale = min(1.0, (step + 1) / 50) * max(0.05, 1 - step / len(batches))
        for group, base in zip(optimizer.param_groups, (lr, HEAD_LR)):
            group["lr"] = base * scale
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        total, counted = total + float(loss.detach()), counted + 1
        if (step + 1) % 200 == 0 or step + 1 == len(batches):
            print(f"  step {step + 1}/{len(batches)}: loss {total / counted:.3f}, {time.time() - started:.0f} s", flush=True)
            total, counted = 0.0, 0
    network.eval()


def char_f1(marked: tuple[int, int], answer: list[int]) -> float:
    common = max(0, min(marked[1], answer[1]) - max(marked[0], answer[0]))
    if not common:
        return 0.0
    precision, recall = common / (marked[1] - marked[0]), common / (answer[1] - answer[0])
    return 2 * precision * recall / (precision + recall)


def evaluate(network, rows: list[dict]) -> list[tuple[float, bool, float, str]]:
    """(probability of the marked span, gold sentence?, its character F1 against the answer, source) a candidate."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(rows), 64):
            chunk = rows[i : i + 64]
            for r, logits in zip(chunk, span_logits(torch, network, chunk).numpy()):
                found = best_span(logits, r["where"])
                if found is not None:
                    a, b, p = found
                    out.append((p, bool(r["answer"]), char_f1((a, b), r["answer"]) if r["answer"] else 0.0, r["source"]))
    return out


def choose(results: list[tuple[float, bool, float, str]], precision: float) -> float:
    """The least confidence at which marks on gold sentences hold the answer at `precision` or better."""
    gold = sorted(((p, f) for p, g, f, _ in results if g), reverse=True)
    best, good = 1.0, 0
    for n, (p, f) in enumerate(gold, 1):
        good += f >= GOOD_F1
        if good / n >= precision:
            best = p
    return best


def figures(results: list[tuple[float, bool, float, str]], least: float) -> dict:
    gold = [(p, f) for p, g, f, _ in results if g]
    marked = [f for p, f in gold if p >= least]
    negatives = [p for p, g, _, _ in results if not g]
    return {
        "gold sentences": len(gold),
        "marked": round(len(marked) / max(1, len(gold)), 3),
        "marks holding the answer (F1 >= 0.5)": round(sum(f >= GOOD_F1 for f in marked) / max(1, len(marked)), 3),
        "marks exactly the answer": round(sum(f == 1.0 for f in marked) / max(1, len(marked)), 3),
        "hard negatives": len(negatives),
        "hard negatives marked": round(sum(p >= least for p in negatives) / max(1, len(negatives)), 3),
        "exact, best span of every gold sentence": round(sum(f == 1.0 for _, f in gold) / max(1, len(gold)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--questions", type=int, default=12000, help="training questions (validation: at most 1000)")
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--lr", type=float, default=3e-4, help="the layers' (the span head's: 1e-3)")
    parser.add_argument("--precision", type=float, default=0.8, help="share of marks that must hold the answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = parser.parse_args()
    for split in ("train", "val"):
        if not (args.data / f"{split}.jsonl").is_file():
            parser.error(f"{args.data / split}.jsonl: missing; run training/reader_data.py first")
    started, cpu = time.time(), time.process_time()
    reader = Reader()
    train_rows = features(reader, pairs(args.data / "train.jsonl", args.questions, args.seed), "train")
    val_rows = features(reader, pairs(args.data / "val.jsonl", 1000, args.seed), "val")
    print(f"features: {len(train_rows)} training and {len(val_rows)} validation candidates, "
          f"{time.time() - started:.0f} s", flush=True)
    network = span_network(reader.e5, reader.spec.lower, dict(np.load(ARTIFACT / "weights.npz")))
    train(network, train_rows, args.epochs, args.lr, args.seed)
    results = evaluate(network, val_rows)
    least = choose(results, args.precision)
    report = {"min_confidence": round(least, 4), "validation": figures(results, least),
              "validation by source": {source: figures([r for r in results if r[3] == source], least)
                                       for source in sorted({r[3] for r in results})},
              "cost": {"CPU-minutes": round((time.process_time() - cpu) / 60, 1),
                       "wall minutes": round((time.time() - started) / 60, 1)}}
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.dry_run:
        return
    path = ARTIFACT / "span.npz"
    np.savez(path, **trained_state(network))
    spec_file = ARTIFACT / "reader.json"
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    spec["span"] = {"sha256": sha256(path), **report,
                    "trained": {"questions": args.questions, "epochs": args.epochs, "lr": args.lr,
                                "training candidates": len(train_rows), "precision asked": args.precision}}
    spec_file.write_text(json.dumps(spec, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path} and the span entry of {spec_file}")


if __name__ == "__main__":
    main()
