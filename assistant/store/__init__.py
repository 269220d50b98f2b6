"""Store: where a library lives, behind one seam.

In: documents, chunks, vectors, collections and meta from ingest; searches from answering. Out: documents,
passages (dense and keyword scores), vectors by content hash. `base.LibraryStore` is the seam (a Protocol);
`folder.Store` (SQLite + a FAISS file, `vectors`, with `migrations`) and `postgres.PostgresStore`
(PostgreSQL + pgvector) implement it; `factory.open_store`, above both, picks one from the `store` setting.
`keyword` is the tokeniser both index and query with; `collections` the named parts of a library and the
tokens that grant them; `index.Index` the opened index (the store and the models that made its vectors).

May import: `models`, `document`, `text`, `config`. Never `ingest`, `answer`, `log`, `core`, `web`.
"""
