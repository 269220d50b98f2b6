"""The index folder: SQLite (files, documents, chunks with offsets, embeddings, keyword index) + FAISS.

The SQLite database is the source of truth of an index folder. Every change of the library is
applied in one transaction (`Store.transaction`), so an interrupted indexing run leaves the
previous state intact; after the commit the FAISS file beside it is written for the new
`generation`, derived from the vectors stored here. Embeddings are kept by content hash so that
unchanged text is never embedded twice. One of the two `base.LibraryStore`s (see postgres.py
for the other).
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..document import Chunk, Document
from .base import (COLLECTION_CHUNKS, COLLECTION_ROWS, FILE_NOTES, ROUTE_NEW_DOCUMENT, IndexBusy, StoredChunk,
                   document_filter, document_from_row, document_row, notes_json)
from .keyword import match_expression
from .migrations import migrate
from .vectors import VectorIndex

DB_NAME = "library.sqlite"
LOCK_NAME = ".indexing.lock"

class Store:
    """One index folder (`path` is its SQLite database); safe to share between threads (a lock
    serialises access)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.folder = self.path.parent
        self.location = f"{self.folder}/"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            migrate(self._db)
        # What an open transaction changed, for the FAISS file: (removed, added) chunk ids, or None
        # after clear() (the file is then built anew, also for a model of another dimension).
        self._changed: tuple[list[int], list[int]] | None = ([], [])
        self._faiss: VectorIndex | None = None
        self._faiss_generation = -1
        self._reload_lock = threading.Lock()
        # collection -> (version, its chunk ids, an exact index of their vectors); see `collection_index`.
        self._collection_vectors: dict[str, tuple[tuple[int, int], set[int], VectorIndex]] = {}

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing: any exception, Ctrl-C included, rolls the whole change back. A committed
        change is a new generation; its FAISS file is written after the commit."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._changed = ([], [])
            try:
                yield
                generation = self.generation + 1
                self.set_meta("generation", str(generation))
                # Memberships outlive a document deleted and added again in the transaction, not one gone at the end.
                self._db.execute("DELETE FROM collection_docs WHERE doc_id NOT IN (SELECT doc_id FROM documents)")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._write_vectors(generation, self._changed)

    @contextmanager
    def indexing(self) -> Iterator[None]:
        """One indexing run at a time per folder: an exclusive lock on a file in it, which the
        system releases when the process ends, however it ends."""
        with open(self.folder / LOCK_NAME, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexBusy(f"another `assistant index` is running on {self.location}; "
                                "wait for it to finish, then run this one again") from None
            yield

    def clear(self, keep_embeddings: bool = False) -> None:
        with self._lock:
            for table in ("file_docs", "files", "sentences", "chunks", "documents", "chunks_fts",
                          *(() if keep_embeddings else ("embeddings",))):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("DELETE FROM meta WHERE key NOT IN ('schema', 'generation')")
            self._changed = None

    def _rows(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _rows_in(self, sql: str, items: Iterable) -> list[tuple]:
        """`sql` with its `IN ({})` filled for every item, 500 at a time (SQLite's variable limit)."""
        items, rows = list(items), []
        for i in range(0, len(items), 500):
            part = items[i : i + 500]
            rows += self._rows(sql.format(",".join("?" * len(part))), part)
        return rows

    # --- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # --- files ------------------------------------------------------------------------------
    def files(self) -> dict[str, tuple[str, float, int, list[str]]]:
        """path -> (sha256, mtime, size, doc ids)."""
        docs: dict[str, list[str]] = {}
        for path, doc_id in self._rows("SELECT path, doc_id FROM file_docs ORDER BY rowid"):
            docs.setdefault(path, []).append(doc_id)
        return {p: (s, m, z, docs.get(p, [])) for p, s, m, z in self._rows("SELECT path, sha256, mtime, size FROM files")}

    def file_notes(self) -> dict[str, list[str]]:
        return {p: json.loads(n) for p, n in self._rows("SELECT path, notes FROM files WHERE notes IS NOT NULL")}

    def put_file(self, path: str, sha256: str, mtime: float, size: int, doc_ids: list[str],
                 notes: list[str] | None = None) -> None:
        with self._lock:
            self._db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                             "sha256 = excluded.sha256, mtime = excluded.mtime, size = excluded.size, "
                             "notes = coalesce(excluded.notes, files.notes)", (path, sha256, mtime, size, notes_json(notes)))
            self._db.execute("DELETE FROM file_docs WHERE path=?", (path,))
            self._db.executemany("INSERT OR IGNORE INTO file_docs VALUES (?, ?)", [(path, d) for d in doc_ids])

    def delete_file(self, path: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM files WHERE path=?", (path,))

    # --- documents ----------------------------------------------------------------------------
    def doc_ids(self) -> set[str]:
        return {r[0] for r in self._rows("SELECT doc_id FROM documents")}

    def orphan_doc_ids(self) -> list[str]:
        return [r[0] for r in self._rows(
            "SELECT doc_id FROM documents WHERE doc_id NOT IN (SELECT doc_id FROM file_docs)")]

    def document(self, doc_id: str) -> Document | None:
        rows = self._rows("SELECT * FROM documents WHERE doc_id=?", (doc_id,))
        return document_from_row(rows[0]) if rows else None

    def document_parts(self, doc_id: str) -> tuple[list[Chunk], list[str], list[str], list[str]]:
        text = self._rows("SELECT text FROM documents WHERE doc_id=?", (doc_id,))[0][0]
        rows = self._rows("SELECT c.seq, c.start, c.end, c.page, c.hash, f.tokens FROM chunks c "
                          "JOIN chunks_fts f ON f.rowid = c.id WHERE c.doc_id=? ORDER BY c.id", (doc_id,))
        chunks = [Chunk(doc_id, seq, a, b, text[a:b], page) for seq, a, b, page, _, _ in rows]
        sentences = [r[0] for r in self._rows("SELECT hash FROM sentences WHERE doc_id=? ORDER BY rowid", (doc_id,))]
        return chunks, [r[4] for r in rows], [r[5] for r in rows], sentences

    def add_document(self, doc: Document, chunks: list[Chunk], hashes: list[str], tokens: list[str],
                     sentence_hashes: list[str]) -> list[int]:
        """Insert a document with its chunks and the hashes of its sentences' vectors; returns the new
        chunk ids (stable int64 FAISS ids)."""
        with self._lock:
            self._db.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", document_row(doc))
            ids = []
            for c, h, toks in zip(chunks, hashes, tokens):
                cur = self._db.execute(
                    "INSERT INTO chunks (doc_id, seq, start, end, page, hash) VALUES (?, ?, ?, ?, ?, ?)",
                    (c.doc_id, c.seq, c.start, c.end, c.page, h),
                )
                ids.append(cur.lastrowid)
                self._db.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)", (cur.lastrowid, toks))
            self._db.executemany("INSERT INTO sentences VALUES (?, ?)", [(doc.doc_id, h) for h in sentence_hashes])
            self._db.execute(ROUTE_NEW_DOCUMENT.replace("%s", "?"), (doc.path, doc.source, doc.doc_id, doc.doc_id))
            if self._changed is not None:
                self._changed[1].extend(ids)
            return ids

    def delete_document(self, doc_id: str) -> list[int]:
        """Remove a document and its chunks; returns the removed chunk ids."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE doc_id=?", (doc_id,))]
            self._db.executemany("DELETE FROM chunks_fts WHERE rowid=?", [(i,) for i in ids])
            self._db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
            if self._changed is not None:
                self._changed[0].extend(ids)
            return ids

    def document_list(self, query: str, offset: int, limit: int,
                      collection: str | None = None) -> tuple[int, list[tuple]]:
        """(matches, rows) of the documents whose title holds `query`, newest first: doc_id, title, date,
        source, path, pages (JSON), chunk count, added_at, notes of a file holding it (JSON, or None)."""
        where, args = document_filter(query, collection, "LIKE", "?")
        total = self._rows(f"SELECT count(*) FROM documents d {where}", args)[0][0]
        rows = self._rows(
            "SELECT d.doc_id, d.title, d.date, d.source, d.path, d.pages, "
            f"(SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id), a.added_at, {FILE_NOTES} "
            f"FROM documents d LEFT JOIN document_added a USING (doc_id) {where} "
            "ORDER BY a.added_at IS NULL, a.added_at DESC, d.title LIMIT ? OFFSET ?", [*args, limit, offset])
        return total, rows

    def counts(self) -> dict[str, int]:
        return {t: self._rows(f"SELECT count(*) FROM {t}")[0][0] for t in ("files", "documents", "chunks")}

    # --- chunks -------------------------------------------------------------------------------
    def chunks(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        """The chunks with their text and document title, without reading whole documents."""
        ids = list(ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._rows(
            "SELECT c.id, c.doc_id, c.start, c.end, c.page, c.hash, d.title, substr(d.text, c.start + 1, c.end - c.start) "
            f"FROM chunks c JOIN documents d USING (doc_id) WHERE c.id IN ({marks})", ids)
        return {r[0]: StoredChunk(*r) for r in rows}

    # --- embeddings ---------------------------------------------------------------------------
    def missing_embeddings(self, hashes: Iterable[str]) -> set[str]:
        hashes = set(hashes)
        return hashes - {r[0] for r in self._rows_in("SELECT hash FROM embeddings WHERE hash IN ({})", hashes)}

    def put_embeddings(self, hashes: list[str], vectors: np.ndarray) -> None:
        """Committed at once, outside the library transaction: finished embedding work survives Ctrl-C."""
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?)",
                [(h, v.astype(np.float32).tobytes()) for h, v in zip(hashes, vectors)],
            )

    def vectors(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these content hashes (those that have one)."""
        return {h: np.frombuffer(v, dtype=np.float32)
                for h, v in self._rows_in("SELECT hash, vector FROM embeddings WHERE hash IN ({})", set(hashes))}

    def embedding_hashes(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT hash FROM embeddings ORDER BY hash")]

    def chunk_vectors(self, ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, vectors) of the given chunks, or of all chunks."""
        sql = "SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON e.hash = c.hash"
        if ids is None:
            rows = self._rows(sql + " ORDER BY c.id")
        else:
            ids = list(ids)
            rows = self._rows(sql + f" WHERE c.id IN ({','.join('?' * len(ids))})", ids) if ids else []
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows]))

    def drop_unused_embeddings(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM embeddings WHERE hash NOT IN (SELECT hash FROM chunks) "
                             "AND hash NOT IN (SELECT hash FROM sentences)")

    # --- dense search (FAISS) -----------------------------------------------------------------
    def dense_search(self, vector: np.ndarray, k: int, collection: str | None = None) -> list[tuple[int, float]]:
        if collection is not None:
            return self.collection_index(collection, len(vector)).search(vector, k)
        return self.vector_index(len(vector)).search(vector, k)

    def collection_index(self, collection: str, dim: int) -> VectorIndex:
        """An exact (flat) index of the collection's chunks, kept in memory and brought up to date with the
        chunks added and removed since (an indexing run's commit, a change of memberships). Measured against
        a filter on the library's index (bench/collections.py, docs/collections.md): 300 passages in 100k,
        0.035 ms against 0.48 ms for a flat index with an id selector, and an HNSW index with a selector
        found 27 of 50 (recall 0.10) where exact search finds all."""
        version = (self.generation, int(self.get_meta("memberships") or 0))
        cached = self._collection_vectors.get(collection)
        if cached is not None and cached[0] == version:
            return cached[2]
        with self._reload_lock:
            cached = self._collection_vectors.get(collection)
            ids = {r[0] for r in self._rows(COLLECTION_CHUNKS.replace("%s", "?"), (collection,))}
            if cached is None or cached[2].dim != dim:
                index, held = VectorIndex(dim), set()
            else:
                index, held = cached[2], cached[1]
            index.remove(sorted(held - ids))
            added, vectors = self.chunk_vectors(sorted(ids - held))
            if len(added) and vectors.shape[1] == dim:
                index.add(added, vectors)
            self._collection_vectors[collection] = (version, ids, index)
            return index

    def vector_index(self, dim: int | None = None) -> VectorIndex | None:
        """The FAISS index of the last committed generation, also one committed while this store is open.

        An indexing run commits the database first and then writes `vectors-<generation>.faiss`;
        until that file is there, the previous vectors keep serving (the retriever tolerates ids
        they still hold). The check is one SQLite read per search. The first call (`open_store`
        makes it when an index is opened for serving) rebuilds a file that is missing or does not
        match the database (the process died between the two writes) from the stored vectors and
        saves it again. None only for an empty library when `dim` is not given.
        """
        generation = self.generation
        if generation != self._faiss_generation:
            with self._reload_lock:
                if generation != self._faiss_generation:
                    kind = self.get_meta("faiss") or "flat"
                    loaded = VectorIndex.load(self.folder, generation, dim, kind)
                    if self._faiss is None and (loaded is None or len(loaded) != self.counts()["chunks"]):
                        loaded = self._rebuild(generation, kind, dim)
                    if loaded is not None:
                        self._faiss, self._faiss_generation = loaded, generation
        return self._faiss

    def _rebuild(self, generation: int, kind: str, dim: int | None) -> VectorIndex | None:
        ids, vecs = self.chunk_vectors()
        if not len(ids):
            if dim is None:
                return None
            vecs = np.zeros((0, dim), dtype=np.float32)
        index = VectorIndex.build(vecs.shape[1], kind, ids, vecs)
        try:
            index.save(self.folder, generation)
        except OSError:
            pass  # a read-only index folder still serves from the rebuilt in-memory copy
        return index

    def _write_vectors(self, generation: int, changed: tuple[list[int], list[int]] | None) -> None:
        kind = self.get_meta("faiss") or "flat"
        previous = VectorIndex.load(self.folder, generation - 1, None, kind) if changed is not None else None
        if previous is not None and previous.updatable:
            removed, added = changed
            previous.remove(removed)
            previous.add(*self.chunk_vectors(added))
            vectors = previous
        else:
            ids, vecs = self.chunk_vectors()
            if not len(ids):
                return  # an empty library: searches build an empty index of the query's dimension
            vectors = VectorIndex.build(vecs.shape[1], kind, ids, vecs)
        vectors.save(self.folder, generation)

    # --- keyword search (FTS5) ----------------------------------------------------------------
    def keyword_search(self, terms: list[str], limit: int, also: Collection[int] = (),
                       collection: str | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first: the best `limit`, and those of `also` that match. One query
        scores the matches once; a second one restricted to `also` cost more than the first. In a
        collection, the matches are its chunks' before the best are taken (the statistics stay the library's)."""
        match = "SELECT rowid, -bm25(chunks_fts) AS score FROM chunks_fts WHERE chunks_fts MATCH ?"
        args: list = [match_expression(terms)]
        if collection is not None:
            # The matches scored once (MATERIALIZED), then joined to the collection's chunks: FTS5 given a
            # `rowid IN (…)` of its own looked each rowid up in the full-text index (300 ms against 13 ms at 3k).
            match = (f"WITH f AS MATERIALIZED ({match}) SELECT f.rowid AS rowid, f.score AS score FROM f "
                     "JOIN chunks c ON c.id = f.rowid JOIN collection_docs m ON m.doc_id = c.doc_id "
                     "WHERE m.collection = ?")
            args.append(collection)
        if not also:
            order = " ORDER BY bm25(chunks_fts)" if collection is None else " ORDER BY score DESC"
            return self._rows(match + order + " LIMIT ?", [*args, limit])
        also = list(also)
        # SQLite computes a CTE used twice once.
        return self._rows(f"WITH m AS ({match}) "
                          "SELECT * FROM (SELECT * FROM m ORDER BY score DESC LIMIT ?) "
                          f"UNION SELECT * FROM m WHERE rowid IN ({','.join('?' * len(also))}) ORDER BY 2 DESC",
                          [*args, limit, *also])

    def chunk_tokens(self, ids: Iterable[int]) -> dict[int, str]:
        ids = list(ids)
        if not ids:
            return {}
        return dict(self._rows(f"SELECT rowid, tokens FROM chunks_fts WHERE rowid IN ({','.join('?' * len(ids))})",
                               ids))

    def document_frequency(self, terms: list[str]) -> dict[str, int]:
        if not terms:
            return {}
        return dict(self._rows(
            f"SELECT term, doc FROM chunks_vocab WHERE term IN ({','.join('?' * len(terms))})", terms))

    # --- collections (assistant.store.collections) --------------------------------------------------
    @contextmanager
    def _memberships(self) -> Iterator[None]:
        """A change of collections, committed at once as a new memberships version (searches in a
        collection see it on their next call); the library's generation and FAISS file stay."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.set_meta("memberships", str(int(self.get_meta("memberships") or 0) + 1))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def collection_rows(self) -> list[tuple[str, str, int, int]]:
        return self._rows(COLLECTION_ROWS)

    def collection_names(self) -> dict[str, str]:
        return dict(self._rows("SELECT id, name FROM collections"))

    def put_collection(self, collection: str, name: str) -> None:
        with self._memberships():
            self._db.execute("INSERT INTO collections VALUES (?, ?, strftime('%Y-%m-%d %H:%M:%f', 'now')) "
                             "ON CONFLICT (id) DO UPDATE SET name = excluded.name", (collection, name))

    def drop_collection(self, collection: str) -> bool:
        with self._memberships():
            if self._rows("SELECT 1 FROM collection_docs WHERE collection = ? LIMIT 1", (collection,)):
                return False
            self._db.execute("DELETE FROM collections WHERE id = ?", (collection,))
        self._collection_vectors.pop(collection, None)
        return True

    def document_collections(self, doc_ids: Iterable[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for doc_id, collection in self._rows_in(
                "SELECT doc_id, collection FROM collection_docs WHERE doc_id IN ({}) ORDER BY collection", doc_ids):
            found.setdefault(doc_id, []).append(collection)
        return found

    def change_collections(self, doc_ids: list[str], add: str | None = None, remove: str | None = None) -> None:
        with self._memberships():
            if add is not None:
                self._db.executemany("INSERT OR IGNORE INTO collection_docs VALUES (?, ?)", [(add, d) for d in doc_ids])
            if remove is not None:
                self._db.executemany("DELETE FROM collection_docs WHERE collection = ? AND doc_id = ?",
                                     [(remove, d) for d in doc_ids])

    def route(self, keys: list[str], collection: str) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO collection_routes VALUES (?, ?)",
                                 [(k, collection) for k in keys])
