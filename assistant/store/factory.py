"""The factory above both stores: `open_store` picks the index folder or PostgreSQL from the `store` setting;
`copy_library` copies a library from one store to another (`assistant migrate-store`)."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from .base import LibraryStore


def open_store(config: Config, folder: str | Path | None = None, *, serving: bool = False) -> LibraryStore:
    """The configured store: the index `folder` (default `config.index`) or the `store` URI.

    `serving` opens it for answering questions: an index folder must exist, and with PostgreSQL
    the queries go to `store_readonly` (a hot standby) when it is set.
    """
    if config.store == "sqlite":
        from .folder import DB_NAME, Store

        folder = Path(folder or config.index)
        if serving and not (folder / DB_NAME).is_file():
            raise FileNotFoundError(
                f"no index in {folder}/ — build one first with `assistant index` (or Assistant.build)")
        if not serving:
            folder.mkdir(parents=True, exist_ok=True)
            return Store(folder / DB_NAME)
        store = Store(folder / DB_NAME)
        store.vector_index()  # load (or rebuild) the FAISS file now, not in the first question
        return store
    from .postgres import PostgresStore

    if serving:
        return PostgresStore(config.store_readonly or config.store, serving=True)
    return PostgresStore(config.store)


def copy_library(source: LibraryStore, target: LibraryStore, progress=None) -> int:
    """Replace the library of `target` by a copy of `source`: every document, chunk, vector and file
    record, without embedding anything, in one transaction (readers of `target` see the old library
    until it commits). Returns the documents copied."""
    doc_ids = sorted(source.doc_ids())
    with target.indexing(), target.transaction():
        target.clear()
        hashes = source.embedding_hashes()
        for i in range(0, len(hashes), 1000):
            part = source.vectors(hashes[i : i + 1000])
            target.put_embeddings(list(part), list(part.values()))
        for doc_id in doc_ids:
            target.add_document(source.document(doc_id), *source.document_parts(doc_id))
            if progress:
                progress(1)
        notes = source.file_notes()
        for path, (sha, mtime, size, ids) in source.files().items():
            target.put_file(path, sha, mtime, size, ids, notes.get(path, []))
        for key in ("model", "sentence_model", "faiss"):
            if (value := source.get_meta(key)) is not None:
                target.set_meta(key, value)
    # The copied documents went into the default collection; then each into the source's collections.
    members = source.document_collections(doc_ids)
    for collection, name, *_ in source.collection_rows():
        target.put_collection(collection, name)
        target.change_collections([d for d in doc_ids if collection in members.get(d, ())], add=collection)
    target.change_collections([d for d in doc_ids if "default" not in members.get(d, ())], remove="default")
    return len(doc_ids)
