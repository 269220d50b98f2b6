"""Where an index lives: the seam between the pipeline and its two stores.

`LibraryStore` is everything indexing, retrieval and answering ask of a store. Two classes
implement it: `folder.Store`, an index folder (SQLite + a FAISS file, the default, for one
machine), and `postgres.PostgresStore`, a PostgreSQL database with pgvector that any number of
servers share. `factory.open_store`, above both, picks one from the `store` setting ("sqlite" or a
postgresql:// URI); this module imports neither.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..document import Document

if TYPE_CHECKING:
    from ..document import Chunk


class IndexBusy(RuntimeError):
    """Another indexing run holds the library."""


# --- rows both stores share -----------------------------------------------------------------
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


def document_row(doc: Document) -> tuple:
    """A document as a row of the `documents` table (the same columns in both stores)."""
    return (doc.doc_id, doc.title, doc.author, doc.date, doc.source, doc.path, doc.lang, doc.text,
            json.dumps(doc.pages) if doc.pages else None, json.dumps(doc.meta, ensure_ascii=False))


# Collections (assistant.store.collections), in both stores' SQL (%s is SQLite's ?). A document added in no
# collection yet goes into the one its file (path) or link (source) was uploaded into, else the default.
ROUTE_NEW_DOCUMENT = ("INSERT INTO collection_docs SELECT coalesce((SELECT collection FROM collection_routes "
                      "WHERE key IN (%s, %s) LIMIT 1), 'default'), %s "
                      "WHERE NOT EXISTS (SELECT 1 FROM collection_docs WHERE doc_id = %s)")
COLLECTION_CHUNKS = "SELECT c.id FROM chunks c JOIN collection_docs m ON m.doc_id = c.doc_id WHERE m.collection = %s"
COLLECTION_ROWS = ("SELECT k.id, k.name, "
                   "(SELECT count(*) FROM collection_docs m JOIN documents d ON d.doc_id = m.doc_id "
                   "WHERE m.collection = k.id), "
                   "(SELECT count(*) FROM collection_docs m JOIN chunks c ON c.doc_id = m.doc_id "
                   "WHERE m.collection = k.id) "
                   "FROM collections k ORDER BY k.id <> 'default', k.created_at, k.id")


def like_pattern(query: str) -> str:
    """A LIKE pattern matching titles that hold `query` literally (its % and _ escaped with \\)."""
    return "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# A document list's column of what a limit cut from a file holding the document (the first one with notes).
FILE_NOTES = ("(SELECT f.notes FROM file_docs fd JOIN files f ON f.path = fd.path "
              "WHERE fd.doc_id = d.doc_id AND f.notes IS NOT NULL AND f.notes <> '[]' LIMIT 1)")
# Notes kept per file, and characters of each: a reader's warnings are few, a .jsonl's skipped lines may not be.
MAX_NOTES, NOTE_CHARS = 20, 500


def notes_json(notes: list[str] | None) -> str | None:
    if notes is None:
        return None
    kept = [n[:NOTE_CHARS] for n in notes[:MAX_NOTES]]
    if len(notes) > MAX_NOTES:
        kept.append(f"… and {len(notes) - MAX_NOTES} more")
    return json.dumps(kept, ensure_ascii=False)


def document_filter(query: str, collection: str | None, like: str, mark: str) -> tuple[str, list]:
    """(WHERE clause, its arguments) of a document list: titles holding `query` (`like`: LIKE or ILIKE), in
    `collection` when named; `mark` is the store's placeholder."""
    conditions, args = [], []
    if query:
        conditions.append(f"d.title {like} {mark} ESCAPE '\\'")
        args.append(like_pattern(query))
    if collection is not None:
        conditions.append(f"d.doc_id IN (SELECT doc_id FROM collection_docs WHERE collection = {mark})")
        args.append(collection)
    return ("WHERE " + " AND ".join(conditions) if conditions else ""), args


def document_from_row(row: tuple) -> Document:
    d, title, author, date, source, path, lang, text, pages, meta = row
    return Document(d, text, title or "", author or "", date or "", source or "", path or "", lang or "",
                    json.loads(pages) if pages else None, json.loads(meta) if meta else {})


class LibraryStore(Protocol):
    """Files, documents, chunks with offsets, embeddings by content hash, keyword and dense search.

    Changes of the library are applied in `transaction()` (all or nothing; each committed one is
    a new `generation`); `put_embeddings` commits at once, so finished embedding work survives an
    interrupted run. Readers see each committed transaction on their next call.
    """

    location: str  # for messages: the folder or the URI without its password

    def close(self) -> None: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def indexing(self) -> AbstractContextManager[None]:
        """Held for a whole indexing run; raises IndexBusy at once when another run holds it."""
    def clear(self, keep_embeddings: bool = False) -> None:
        """Empty the library in the open `transaction()`, embeddings too unless `keep_embeddings`."""

    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    @property
    def generation(self) -> int: ...

    def files(self) -> dict[str, tuple[str, float, int, list[str]]]: ...
    def file_notes(self) -> dict[str, list[str]]:
        """path -> what a limit cut from the file when it was last read (its reader's warnings), for files with any."""
    def put_file(self, path: str, sha256: str, mtime: float, size: int, doc_ids: list[str],
                 notes: list[str] | None = None) -> None:
        """`notes`: what a limit cut from it ([] for nothing); None keeps those it has (a file not read again)."""
    def delete_file(self, path: str) -> None: ...

    def doc_ids(self) -> set[str]: ...
    def orphan_doc_ids(self) -> list[str]: ...
    def document(self, doc_id: str) -> Document | None: ...
    def document_parts(self, doc_id: str) -> tuple[list[Chunk], list[str], list[str], list[str]]:
        """(chunks, their hashes, their keyword tokens, the hashes of the document's sentences)."""
    def add_document(self, doc: Document, chunks: list[Chunk], hashes: list[str], tokens: list[str],
                     sentence_hashes: list[str]) -> list[int]: ...
    def delete_document(self, doc_id: str) -> list[int]: ...
    def document_list(self, query: str, offset: int, limit: int,
                      collection: str | None = None) -> tuple[int, list[tuple]]:
        """(matches, rows) of the documents whose title holds `query` (in `collection`, else in the
        library), newest first (the library view)."""
    def counts(self) -> dict[str, int]: ...
    def chunks(self, ids: Iterable[int]) -> dict[int, StoredChunk]: ...

    def missing_embeddings(self, hashes: Iterable[str]) -> set[str]: ...
    def put_embeddings(self, hashes: list[str], vectors: np.ndarray | list[np.ndarray]) -> None: ...
    def vectors(self, hashes: Iterable[str]) -> dict[str, np.ndarray]: ...
    def embedding_hashes(self) -> list[str]: ...
    def chunk_vectors(self, ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]: ...
    def drop_unused_embeddings(self) -> None: ...

    def dense_search(self, vector: np.ndarray, k: int, collection: str | None = None) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the k nearest chunks (of the collection's, when named: scoped in the
        search, so a small collection in a large library still gets its k nearest)."""
    def keyword_search(self, terms: list[str], limit: int, also: Collection[int] = (),
                       collection: str | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the `limit` best chunks matching any term (in `collection`, when named),
        and of each chunk of `also` that matches any (a hybrid search's dense candidates), best first."""
    def chunk_tokens(self, ids: Iterable[int]) -> dict[int, str]: ...
    def document_frequency(self, terms: list[str]) -> dict[str, int]: ...

    # Collections: each change is committed at once (not in `transaction()`).
    def collection_rows(self) -> list[tuple[str, str, int, int]]:
        """(id, name, documents, chunks) of every collection, the default first, then by creation."""
    def collection_names(self) -> dict[str, str]:
        """id -> name of every collection, without counting anything (asked on every question in one)."""
    def put_collection(self, collection: str, name: str) -> None:
        """Create a collection, or rename it."""
    def drop_collection(self, collection: str) -> bool:
        """Delete a collection that holds no document; False (and nothing done) when it holds one."""
    def document_collections(self, doc_ids: Iterable[str]) -> dict[str, list[str]]: ...
    def change_collections(self, doc_ids: list[str], add: str | None = None, remove: str | None = None) -> None: ...
    def route(self, keys: list[str], collection: str) -> None:
        """New documents of these files (paths) or links (URLs) go into `collection` when indexed."""


def redact(uri: str) -> str:
    """A URI without its password, for messages and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
