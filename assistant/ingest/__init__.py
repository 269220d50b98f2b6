"""Ingest: files and links in, documents and chunks in the store out.

In: paths of the library, uploaded bytes, links, jobs from the queue. Out: `Document`s (`load`, one reader
per format, every limit on what a file may cost), their chunks (`chunk`) and vectors, written through the
store seam by one indexing run at a time (`indexing.update_index`), and the outcome of each file
(`library`: the Library view's add / remove; `jobs` and `worker`: the same through a PostgreSQL queue).
`fetch` brings a link's page within its bounds; `clean` turns saved web pages into text.

May import: `store`, `models`, `document`, `text`, `config`. Never `answer`, `log`, `core`, `web`.
"""
