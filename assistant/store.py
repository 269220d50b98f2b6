"""SQLite store of the library: files, documents, chunks with offsets, embeddings and keyword index.

It is the source of truth of an index folder. Every change of the library is applied in one
transaction (`Store.transaction`), so an interrupted indexing run leaves the previous state
intact; the FAISS file beside it is derived from the vectors stored here and stamped with the
`generation` it was built from. Embeddings are kept by content hash so that unchanged text is
never embedded twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .chunk import Chunk
from .load import Document
from .migrations import migrate

@dataclass(frozen=True)
class StoredChunk:
    id: int
    doc_id: str
    start: int
    end: int
    page: int | None
    hash: str
    title: str  # of its document
    text: str  # == document text[start:end]


class Store:
    """One SQLite database; safe to share between threads (a lock serialises access)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            migrate(self._db)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing: any exception, Ctrl-C included, rolls the whole change back."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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
        return {p: (s, m, z, docs.get(p, [])) for p, s, m, z in self._rows("SELECT * FROM files")}

    def put_file(self, path: str, sha256: str, mtime: float, size: int, doc_ids: list[str]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", (path, sha256, mtime, size))
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
        if not rows:
            return None
        d, title, author, date, source, path, lang, text, pages, meta = rows[0]
        return Document(d, text, title or "", author or "", date or "", source or "", path or "", lang or "",
                        json.loads(pages) if pages else None, json.loads(meta) if meta else {})

    def add_document(self, doc: Document, chunks: list[Chunk], hashes: list[str], tokens: list[str],
                     sentence_hashes: list[str]) -> list[int]:
        """Insert a document with its chunks and the hashes of its sentences' vectors; returns the new
        chunk ids (stable int64 FAISS ids)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (doc.doc_id, doc.title, doc.author, doc.date, doc.source, doc.path, doc.lang, doc.text,
                 json.dumps(doc.pages) if doc.pages else None, json.dumps(doc.meta, ensure_ascii=False)),
            )
            ids = []
            for c, h, toks in zip(chunks, hashes, tokens):
                cur = self._db.execute(
                    "INSERT INTO chunks (doc_id, seq, start, end, page, hash) VALUES (?, ?, ?, ?, ?, ?)",
                    (c.doc_id, c.seq, c.start, c.end, c.page, h),
                )
                ids.append(cur.lastrowid)
                self._db.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)", (cur.lastrowid, toks))
            self._db.executemany("INSERT INTO sentences VALUES (?, ?)", [(doc.doc_id, h) for h in sentence_hashes])
            return ids

    def delete_document(self, doc_id: str) -> list[int]:
        """Remove a document and its chunks; returns the removed chunk ids."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE doc_id=?", (doc_id,))]
            self._db.executemany("DELETE FROM chunks_fts WHERE rowid=?", [(i,) for i in ids])
            self._db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
            return ids

    def document_list(self, query: str, offset: int, limit: int) -> tuple[int, list[tuple]]:
        """(matches, rows) of the documents whose title holds `query`, newest first: doc_id, title, date,
        source, path, pages (JSON), chunk count, added_at."""
        where, args = ("WHERE d.title LIKE ? ESCAPE '\\'", ["%" + query.replace("\\", "\\\\").replace("%", "\\%")
                                                               .replace("_", "\\_") + "%"]) if query else ("", [])
        total = self._rows(f"SELECT count(*) FROM documents d {where}", args)[0][0]
        rows = self._rows(
            "SELECT d.doc_id, d.title, d.date, d.source, d.path, d.pages, "
            "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id), a.added_at "
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

    # --- keyword search -----------------------------------------------------------------------
    def keyword_search(self, match: str, limit: int, within: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first; `within` restricts scoring to those chunks."""
        sql = "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?"
        args: list = [match]
        if within is not None:
            within = list(within)
            if not within:
                return []
            sql += f" AND rowid IN ({','.join('?' * len(within))})"
            args += within
        return self._rows(sql + " ORDER BY bm25(chunks_fts) LIMIT ?", [*args, limit])

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
