"""FAISS vector index keyed by stable int64 chunk ids, saved as a file stamped with a generation.

"flat" is exact inner-product search (cosine on normalised vectors) and is updated in place;
"ivf" and "hnsw" trade exactness for speed on large libraries and are rebuilt from the store's
vectors when the library changes. Files are written to a temporary name and renamed, so a
reader never sees a half-written index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

KINDS = ("flat", "ivf", "hnsw")
_IVF_MIN_VECTORS = 10_000  # below this an IVF index cannot be trained well; exact search is fast anyway
_IVF_TRAIN_PER_LIST = 64  # k-means on a sample: training on every vector of a large library takes hours

# One query at a time is searched, and concurrent requests bring their own threads: OpenMP's
# hand-off costs more than it gains for a single query (measured 2x slower at 100k vectors on
# 2 busy cores), so searches run single-threaded; builds below use every core.
faiss.omp_set_num_threads(1)


class VectorIndex:
    def __init__(self, dim: int, kind: str = "flat", index: faiss.Index | None = None):
        if kind not in KINDS:
            raise ValueError(f"faiss kind {kind!r} is not one of {KINDS}")
        self.dim, self.kind = dim, kind
        self._index = index if index is not None else _empty(dim)

    @classmethod
    def build(cls, dim: int, kind: str, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
        if kind == "flat" or len(ids) < _IVF_MIN_VECTORS and kind == "ivf":
            base = faiss.IndexFlatIP(dim)
        elif kind == "ivf":
            nlist = int(np.sqrt(len(ids)))
            base = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(0).choice(len(ids), min(len(ids), _IVF_TRAIN_PER_LIST * nlist), replace=False)
            with _all_cores():
                base.train(vectors[np.sort(sample)])
            base.nprobe = max(16, nlist // 32)
        else:
            base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efSearch = 128
        index = faiss.IndexIDMap2(base)
        if len(ids):
            with _all_cores():
                index.add_with_ids(vectors, ids)
        return cls(dim, kind, index)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def updatable(self) -> bool:
        return self.kind == "flat"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def remove(self, ids: list[int]) -> None:
        if ids:
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the k nearest chunks."""
        if len(self) == 0:
            return []
        scores, ids = self._index.search(query.reshape(1, -1).astype(np.float32), min(k, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def save(self, folder: Path, generation: int) -> Path:
        path = folder / f"vectors-{generation}.faiss"
        tmp = folder / f".vectors-{generation}.faiss.tmp"
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, path)
        # Only older generations go: a server that rebuilds this one while an indexing run commits the
        # next must not delete the newer file the run just wrote.
        for old in folder.glob("vectors-*.faiss"):
            number = old.stem.rsplit("-", 1)[1]
            if number.isdigit() and int(number) < generation:
                old.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, folder: Path, generation: int, dim: int | None, kind: str) -> VectorIndex | None:
        """The saved index of exactly this generation (and `dim`, unless None), or None when it is
        missing or stale."""
        path = folder / f"vectors-{generation}.faiss"
        if not path.is_file():
            return None
        index = faiss.read_index(str(path))
        return cls(index.d, kind, index) if dim in (None, index.d) else None


@contextmanager
def _all_cores() -> Iterator[None]:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


def _empty(dim: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
