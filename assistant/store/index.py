"""A built index opened for reading: the store (`factory.open_store`) with the models that made its vectors.

`Index` is what retrieval and answering read: documents, passages' and sentences' vectors, the question
embedded once per model. `Models` names an index's two models; `chunk_hash` is the key a text's vector is
stored under; `VectorCache` keeps recent texts' vectors in memory.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import Config
from ..document import Document
from ..models.embed import Embedder, get_embedder
from ..text import sentence_spans
from .base import LibraryStore
from .factory import open_store

log = logging.getLogger("assistant.store.index")


class Question(Protocol):
    """What the index needs of a question prepared for searching (`answer.retrieve.Query` is one): its text,
    its vector in the passage model, and a place to keep its vector in the sentence model once made. A
    protocol, so that the index does not import the retrieval built on it."""

    text: str
    vector: np.ndarray
    sentence_vector: np.ndarray | None


@dataclass(frozen=True)
class Models:
    """The embedding models of an index. `passages` (the configured `model`) ranks passages for
    retrieval; `sentences` (`sentence_model`) scores, at question time, the sentences an answer may
    quote and checks generated claims: that is dozens of sentences per question, which e5 would take
    seconds to embed on 2 cores, so the cheaper USE does it (measured in the README)."""

    passages: str
    sentences: str

    @classmethod
    def of(cls, store: LibraryStore, config: Config) -> Models:
        """The models the index was built with, else (a new index) the configured ones. An index keeps
        its models when the configuration changes, a release with a new default included: its vectors
        only make sense with the models that made them. `--rebuild` switches."""
        return cls(store.get_meta("model") or config.model, store.get_meta("sentence_model") or config.sentence_model)

    def differ(self, config: Config) -> str:
        """A note on how to switch, when these are not the configured models; else ''."""
        if (self.passages, self.sentences) == (config.model, config.sentence_model):
            return ""
        return (f"it was built with the models {self.passages!r} / {self.sentences!r} and keeps them; "
                f"`assistant index --rebuild` moves it to the configured {config.model!r} / {config.sentence_model!r}")


class Index:
    """A built index opened for reading: the folder (default `config.index`) or, when `config.store` is
    a PostgreSQL URI, the database. Thread-safe for concurrent searches; every search sees the last
    committed indexing run, also one committed by another process while this Index is open."""

    def __init__(self, folder: str | Path | None = None, config: Config | None = None):
        self.config = config or Config()
        self.folder = Path(folder or self.config.index)  # the folder store's; with PostgreSQL, unused
        self.store = open_store(self.config, folder, serving=True)
        self.models = Models.of(self.store, self.config)
        if note := self.models.differ(self.config):
            log.warning("%s: %s", self.store.location, note)
        self.embedder = get_embedder(self.models.passages)
        self.sentence_embedder = get_embedder(self.models.sentences)

    def document(self, doc_id: str) -> Document | None:
        return self.store.document(doc_id)

    def question_in_sentence_model(self, query: Question) -> np.ndarray:
        """The question's vector in the sentence model, embedded once per question."""
        if query.sentence_vector is None:
            query.sentence_vector = (query.vector if self.models.sentences == self.models.passages
                                     else self.sentence_embedder.encode_query([query.text])[0])
        return query.sentence_vector

    def sentence_similarity(self, query: Question, sentences: list[str]) -> np.ndarray:
        """Cosine of each sentence with the question in the sentence model. The sentences' vectors were
        stored at indexing time; one is embedded here only when missing (an index made before they were
        stored, a span that is not a whole sentence)."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        hashes = [chunk_hash(self.models.sentences, s) for s in sentences]
        stored = self.store.vectors(hashes)
        missing = list(dict.fromkeys(s for s, h in zip(sentences, hashes) if h not in stored))
        fresh = dict(zip(missing, self.sentence_embedder.encode(missing)))
        vectors = np.stack([stored[h] if h in stored else fresh[s] for s, h in zip(sentences, hashes)])
        return vectors @ self.question_in_sentence_model(query)

    def best_sentence_similarity(self, query: Question, texts: list[str]) -> list[float]:
        """For each text, the best cosine of its sentences with the question in the sentence model, from
        the vectors stored at indexing time only (a sentence without one is passed over): cheap enough
        for every candidate of a search."""
        hashes = [[chunk_hash(self.models.sentences, t[a:b]) for a, b in sentence_spans(t)] for t in texts]
        stored = self.store.vectors({h for hs in hashes for h in hs})
        if not stored:
            return [0.0] * len(texts)
        question = self.question_in_sentence_model(query)
        found = [[stored[h] for h in hs if h in stored] for hs in hashes]
        return [float(np.max(np.stack(vs) @ question)) if vs else 0.0 for vs in found]

    def passage_similarity(self, question_vector: np.ndarray, sentences: list[str]) -> np.ndarray:
        """Cosine of each sentence with the question in the passage model (`question_vector` is its).

        The passage model reads across languages far better than the sentence model, so it orders the
        few best sentences of an answer quoted in another language than the question. Storing these
        vectors at indexing time would double its cost; they are embedded on first use, in one call, and
        kept in memory (`PASSAGE_VECTORS`), so a sentence is embedded once per process.
        """
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        return PASSAGE_VECTORS.get(self.embedder, sentences) @ question_vector

    def close(self) -> None:
        self.store.close()


class VectorCache:
    """The last `size` texts' vectors per model, least recently used out first; thread-safe."""

    def __init__(self, size: int):
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, embedder: Embedder, texts: list[str]) -> np.ndarray:
        keys = [(embedder.name, t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(t for k, t in zip(keys, texts) if k not in self._vectors))
        fresh = dict(zip(missing, embedder.encode(missing))) if missing else {}
        with self._lock:
            out = []
            for key, text in zip(keys, texts):
                vector = fresh[text] if text in fresh else self._vectors[key]
                self._vectors[key] = vector
                self._vectors.move_to_end(key)
                out.append(vector)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return np.stack(out)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


PASSAGE_VECTORS = VectorCache(8192)  # 384 floats a sentence: ~12 MB


def chunk_hash(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\n{text}".encode()).hexdigest()
