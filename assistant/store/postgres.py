"""PostgreSQL + pgvector: one library that any number of assistant servers share.

Everything an index holds lives in the database: files, documents, chunks with offsets and
their vectors (pgvector), embeddings by content hash, the keyword index and its statistics, the
model identity (`meta`). A server keeps nothing of the library in memory, so every query sees the
last committed indexing run, whichever process or machine made it.

Keyword search is BM25 computed in SQL over a postings table, with SQLite FTS5's formula and
constants (k1 = 1.2, b = 0.75, idf = ln((N - n + 0.5) / (n + 0.5)) floored at 1e-6) over the
same tokens FTS5 indexes: the stored jieba tokens as FTS5's unicode61 tokenizer splits them
(`fts_tokens`). So both stores score alike and the fusion, floors and thresholds tuned on the
folder store carry over. A query term that FTS5 splits (8.1%, e-commerce) is a phrase there; here
it is matched as its parts at consecutive positions, as FTS5 does.

Dense search is exact (a scan) below HNSW_MIN_CHUNKS chunks and an HNSW index past it (see
README: measured). Indexing runs take an advisory lock, so one runs at a time, and apply their
change in one transaction: a run killed at any point leaves the previous library serving.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from ..document import Chunk, Document
from .base import (COLLECTION_CHUNKS, COLLECTION_ROWS, FILE_NOTES, ROUTE_NEW_DOCUMENT, IndexBusy, StoredChunk,
                   document_filter, document_from_row, document_row, notes_json, redact)

BM25_K1, BM25_B = 1.2, 0.75  # SQLite FTS5's bm25() defaults
# Below this many chunks an exact scan is exact and cheap next to embedding the question (measured
# with bench/stores.py: ~1.1 µs a chunk, so ~20 ms here, 110 ms at 100k); past it the scan grows
# linearly while an HNSW index (built in the indexing transaction, then kept up to date by
# PostgreSQL) answers in ~10-15 ms (README, "Many servers, one library").
HNSW_MIN_CHUNKS = 20_000
# pgvector's default graph (m = 16, ef_construction = 64: 13 s to build at 20k chunks here, a third
# of m = 32 / 128) searched wider: on hard clustered synthetic vectors recall@10 was 0.43 at the
# default ef_search of 40, 0.89 at 200, 0.97 at 400 (10 ms at 20k chunks). It also caps the rows
# returned, and the retriever asks for 50-200.
HNSW_EF_SEARCH = 400
INDEXING_LOCK = 0x5E11E7A551  # pg_advisory_lock key of indexing runs ("seller assist")
MIGRATION_LOCK = INDEXING_LOCK + 1
POOL_SIZE = 8  # connections of one serving process (the web server answers a few questions at a time)

_FTS_TOKEN = re.compile(r"[^\W_]+")


def fts_tokens(text: str) -> list[str]:
    """The tokens SQLite FTS5's default unicode61 tokenizer makes of `text`: runs of letters and
    digits, case-folded, Latin diacritics removed."""
    return [_fold(t) for t in _FTS_TOKEN.findall(text.lower())]


def _fold(token: str) -> str:
    if token.isascii():
        return token
    return "".join(c for c in unicodedata.normalize("NFD", token) if not unicodedata.combining(c))


MIGRATIONS: list[str] = [
    # 1: the schema. chunks.embedding duplicates the vector of embeddings(hash): embeddings holds
    # the vectors of every model by content hash (reuse across runs, sentence vectors), the chunk's
    # copy is what pgvector scans or indexes.
    """
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE files (path text PRIMARY KEY, sha256 text NOT NULL, mtime double precision NOT NULL,
                        size bigint NOT NULL);
    CREATE TABLE file_docs (path text NOT NULL REFERENCES files ON DELETE CASCADE, doc_id text NOT NULL,
                            seq int NOT NULL, PRIMARY KEY (path, doc_id));
    CREATE TABLE documents (doc_id text PRIMARY KEY, title text, author text, date text, source text, path text,
                            lang text, text text NOT NULL, pages text, meta text);
    CREATE TABLE embeddings (hash text PRIMARY KEY, vector vector NOT NULL);
    CREATE TABLE chunks (id bigserial PRIMARY KEY, doc_id text NOT NULL REFERENCES documents ON DELETE CASCADE,
                         seq int NOT NULL, start int NOT NULL, "end" int NOT NULL, page int, hash text NOT NULL,
                         tokens text NOT NULL, ntokens int NOT NULL, embedding vector NOT NULL);
    CREATE INDEX chunks_doc ON chunks (doc_id);
    CREATE INDEX chunks_hash ON chunks (hash);
    CREATE TABLE postings (term text NOT NULL, chunk_id bigint NOT NULL REFERENCES chunks ON DELETE CASCADE,
                           tf int NOT NULL, dl int NOT NULL, pos int[] NOT NULL, PRIMARY KEY (term, chunk_id));
    CREATE INDEX postings_chunk ON postings (chunk_id);
    CREATE TABLE terms (term text PRIMARY KEY, df int NOT NULL);
    CREATE TABLE sentences (doc_id text NOT NULL REFERENCES documents ON DELETE CASCADE, seq int NOT NULL,
                            hash text NOT NULL);
    CREATE INDEX sentences_doc ON sentences (doc_id);
    CREATE INDEX sentences_hash ON sentences (hash)
    """,
    # 2: when each document was (last) added, for the library view (SQLite's m003).
    """
    CREATE TABLE document_added (doc_id text PRIMARY KEY REFERENCES documents ON DELETE CASCADE,
                                 added_at timestamptz NOT NULL DEFAULT now())
    """,
    # 3: the question log, feedback and conversations (assistant.log.questions; SQLite's m004), written by
    # every serving process on the primary.
    """
    CREATE TABLE questions (id text PRIMARY KEY, asked_at timestamptz NOT NULL, surface text NOT NULL,
                            question text NOT NULL, lang text NOT NULL, declined boolean NOT NULL, reason text,
                            citations text NOT NULL, seconds double precision NOT NULL, conversation_id text,
                            vector bytea, client text);
    CREATE INDEX questions_asked ON questions (asked_at);
    CREATE TABLE feedback (answer_id text NOT NULL REFERENCES questions ON DELETE CASCADE, client_id text NOT NULL,
                           vote smallint NOT NULL, reason text, comment text, at timestamptz NOT NULL,
                           PRIMARY KEY (answer_id, client_id));
    CREATE TABLE conversation_turns (conversation_id text NOT NULL, seq bigint NOT NULL, at timestamptz NOT NULL,
                                     question text NOT NULL, answer text NOT NULL,
                                     PRIMARY KEY (conversation_id, seq))
    """,
    # 4: library changes queued for `assistant worker` processes (assistant.ingest.jobs, assistant.ingest.worker): an
    # upload's files wait in job_files until a worker has applied them.
    """
    CREATE TABLE jobs (id text PRIMARY KEY, kind text NOT NULL, arg jsonb NOT NULL,
                       state text NOT NULL DEFAULT 'queued',
                       stage text NOT NULL DEFAULT '', done int NOT NULL DEFAULT 0, total int NOT NULL DEFAULT 0,
                       files jsonb NOT NULL DEFAULT '[]', removed jsonb NOT NULL DEFAULT '[]',
                       error text NOT NULL DEFAULT '', worker text, lease_until timestamptz,
                       attempts int NOT NULL DEFAULT 0, created timestamptz NOT NULL DEFAULT now(),
                       finished timestamptz);
    CREATE INDEX jobs_waiting ON jobs (created) WHERE state IN ('queued', 'running');
    CREATE TABLE job_files (job_id text NOT NULL REFERENCES jobs ON DELETE CASCADE, seq int NOT NULL,
                            name text NOT NULL, data bytea NOT NULL, PRIMARY KEY (job_id, seq))
    """,
    # 5: collections (assistant.store.collections; SQLite's m005): memberships outlive a document deleted and added
    # again in one transaction, those of documents gone at the commit are dropped then (_finish); every
    # document of an older library goes into the default collection; the question log records the collection.
    """
    CREATE TABLE collections (id text PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE collection_docs (collection text NOT NULL REFERENCES collections ON DELETE CASCADE,
                                  doc_id text NOT NULL, PRIMARY KEY (collection, doc_id));
    CREATE INDEX collection_docs_doc ON collection_docs (doc_id);
    CREATE TABLE collection_routes (key text PRIMARY KEY,
                                    collection text NOT NULL REFERENCES collections ON DELETE CASCADE);
    INSERT INTO collections (id, name) VALUES ('default', 'Default');
    INSERT INTO collection_docs SELECT 'default', doc_id FROM documents;
    ALTER TABLE questions ADD COLUMN collection text
    """,
    # 6: what a limit cut from each file when it was last read (SQLite's m006), for the library view's rows.
    """
    ALTER TABLE files ADD COLUMN notes text
    """,
]
_STATS = ("files", "documents", "chunks", "tokens")  # kept in meta by each indexing run


class PostgresStore:
    """A library in PostgreSQL. Opened for indexing (`serving=False`) it uses one connection and
    brings the schema up to date; opened for serving it uses a pool of connections and only reads."""

    def __init__(self, uri: str, *, serving: bool = False):
        self.location = redact(uri)
        self.serving = serving
        self._affected: set[str] = set()  # terms whose document frequency an open transaction changes
        self._collection_sizes: dict[str, tuple[tuple, int]] = {}  # collection -> (version, chunks)
        try:
            if serving:
                self._pool = ConnectionPool(uri, min_size=1, max_size=POOL_SIZE, open=False, configure=_configure,
                                            kwargs={"autocommit": True, "application_name": "assistant"})
                self._pool.open(wait=True, timeout=15)
            else:
                self._conn = psycopg.connect(uri, autocommit=True, application_name="assistant index")
                self._lock = threading.RLock()
                _migrate(self._conn)
                _configure(self._conn)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise ConnectionError(f"cannot reach PostgreSQL at {self.location} ({reason}); check that the server "
                                  "runs and the `store` URI (ASSISTANT_STORE, --store)") from exc
        if serving:
            self._check_schema()

    def _check_schema(self) -> None:
        try:
            applied = self._rows("SELECT count(*) FROM _migrations")[0][0]
        except psycopg.errors.UndefinedTable:
            self.close()
            raise FileNotFoundError(f"no library in {self.location} — build one first with `assistant index --store "
                                    "URI`, or copy an index folder with `assistant copy-index --store URI`") from None
        if applied < len(MIGRATIONS):
            self.close()
            raise ValueError(f"the library in {self.location} has an older schema; run `assistant index --store URI`"
                             " once (on the primary) to upgrade it")

    def close(self) -> None:
        if self.serving:
            self._pool.close()
        else:
            self._conn.close()

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor]:
        if self.serving:
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield cur
        else:
            with self._lock, self._conn.cursor() as cur:
                yield cur

    def _rows(self, sql: str, args: tuple | list | dict = ()) -> list[tuple]:
        with self._cursor() as cur:
            cur.execute(sql, args, binary=True)  # binary: parsing vectors from text costs ~0.5 ms each
            return cur.fetchall() if cur.description else []

    # --- runs and transactions ------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; before the commit the keyword statistics, the counts, the dense index and
        the generation are brought up to date, so readers see the new library at once, whole."""
        with self._lock, self._conn.transaction():
            self._affected = set()
            yield
            self._finish()

    def _finish(self) -> None:
        self._rows("DELETE FROM collection_docs m WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.doc_id = m.doc_id)")
        terms = sorted(self._affected)
        self._rows("DELETE FROM terms WHERE term = ANY(%s)", (terms,))
        self._rows("INSERT INTO terms SELECT term, count(*) FROM postings WHERE term = ANY(%s) GROUP BY term", (terms,))
        (files,), = self._rows("SELECT count(*) FROM files")
        (documents,), = self._rows("SELECT count(*) FROM documents")
        (chunks, tokens), = self._rows("SELECT count(*), coalesce(sum(ntokens), 0) FROM chunks")
        for key, value in zip(_STATS, (files, documents, chunks, tokens)):
            self.set_meta(key, str(value))
        (hnsw,), = self._rows("SELECT to_regclass('chunks_hnsw') IS NOT NULL")
        if chunks >= HNSW_MIN_CHUNKS and not hnsw:
            (dim,), = self._rows("SELECT vector_dims(embedding) FROM chunks LIMIT 1")
            self._rows("SET LOCAL maintenance_work_mem = '1GB'")
            self._rows(f"CREATE INDEX chunks_hnsw ON chunks USING hnsw ((embedding::vector({int(dim)})) vector_ip_ops)")
        elif chunks < HNSW_MIN_CHUNKS and hnsw:
            self._rows("DROP INDEX chunks_hnsw")
        self.set_meta("generation", str(self.generation + 1))

    def wait_for_indexing(self) -> None:
        """Inside a transaction: wait until no indexing run (and no other worker's transaction) holds the
        library, and hold it until the commit. Workers apply documents while `assistant index` may run, and
        two writers would collide on the keyword statistics (terms) and on document ids."""
        self._rows("SELECT pg_advisory_xact_lock(%s)", (INDEXING_LOCK,))

    @contextmanager
    def indexing(self) -> Iterator[None]:
        """One indexing run at a time per database: a session advisory lock, which PostgreSQL releases
        when the run's connection ends, however the run ends."""
        if not self._rows("SELECT pg_try_advisory_lock(%s)", (INDEXING_LOCK,))[0][0]:
            holder = self._rows("SELECT a.pid, a.client_addr, a.backend_start FROM pg_locks l JOIN pg_stat_activity a "
                                "USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s",
                                (INDEXING_LOCK & 0xFFFFFFFF,))
            who = f" (server process {holder[0][0]}, since {holder[0][2]:%Y-%m-%d %H:%M:%S})" if holder else ""
            raise IndexBusy(f"another `assistant index` is running on {self.location}{who}; wait for it to finish, "
                            "then run this one again")
        try:
            yield
        finally:
            if not self._conn.closed:
                self._rows("SELECT pg_advisory_unlock(%s)", (INDEXING_LOCK,))

    def clear(self, keep_embeddings: bool = False) -> None:
        # DELETE, not TRUNCATE: servers keep reading the old rows until the transaction commits.
        for table in ("file_docs", "files", "sentences", "postings", "chunks", "document_added", "documents", "terms",
                      *(() if keep_embeddings else ("embeddings",))):
            self._rows(f"DELETE FROM {table}")
        self._rows("DELETE FROM meta WHERE key NOT IN ('generation')")

    # --- meta -----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._rows("INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   (key, value))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # --- files ----------------------------------------------------------------------------------
    def files(self) -> dict[str, tuple[str, float, int, list[str]]]:
        docs: dict[str, list[str]] = {}
        for path, doc_id in self._rows("SELECT path, doc_id FROM file_docs ORDER BY path, seq"):
            docs.setdefault(path, []).append(doc_id)
        return {p: (s, m, z, docs.get(p, [])) for p, s, m, z in self._rows("SELECT path, sha256, mtime, size FROM files")}

    def file_notes(self) -> dict[str, list[str]]:
        return {p: json.loads(n) for p, n in self._rows("SELECT path, notes FROM files WHERE notes IS NOT NULL")}

    def put_file(self, path: str, sha256: str, mtime: float, size: int, doc_ids: list[str],
                 notes: list[str] | None = None) -> None:
        with self._cursor() as cur:
            cur.execute("INSERT INTO files VALUES (%s, %s, %s, %s, %s) ON CONFLICT (path) DO UPDATE SET "
                        "sha256 = excluded.sha256, mtime = excluded.mtime, size = excluded.size, "
                        "notes = coalesce(excluded.notes, files.notes)",
                        (path, sha256, mtime, size, notes_json(notes)))
            cur.execute("DELETE FROM file_docs WHERE path = %s", (path,))
            cur.executemany("INSERT INTO file_docs VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            [(path, d, i) for i, d in enumerate(doc_ids)])

    def delete_file(self, path: str) -> None:
        self._rows("DELETE FROM files WHERE path = %s", (path,))

    # --- documents ------------------------------------------------------------------------------
    def doc_ids(self) -> set[str]:
        return {r[0] for r in self._rows("SELECT doc_id FROM documents")}

    def orphan_doc_ids(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT doc_id FROM documents d WHERE NOT EXISTS "
                                         "(SELECT 1 FROM file_docs f WHERE f.doc_id = d.doc_id)")]

    def document(self, doc_id: str) -> Document | None:
        rows = self._rows("SELECT * FROM documents WHERE doc_id = %s", (doc_id,))
        return document_from_row(rows[0]) if rows else None

    def document_parts(self, doc_id: str) -> tuple[list[Chunk], list[str], list[str], list[str]]:
        (text,), = self._rows("SELECT text FROM documents WHERE doc_id = %s", (doc_id,))
        rows = self._rows('SELECT seq, start, "end", page, hash, tokens FROM chunks WHERE doc_id = %s ORDER BY id',
                          (doc_id,))
        chunks = [Chunk(doc_id, seq, a, b, text[a:b], page) for seq, a, b, page, _, _ in rows]
        sentences = [r[0] for r in self._rows("SELECT hash FROM sentences WHERE doc_id = %s ORDER BY seq", (doc_id,))]
        return chunks, [r[4] for r in rows], [r[5] for r in rows], sentences

    def add_document(self, doc: Document, chunks: list[Chunk], hashes: list[str], tokens: list[str],
                     sentence_hashes: list[str]) -> list[int]:
        """Insert a document, its chunks (with their vectors, from embeddings) and their postings."""
        with self._cursor() as cur:
            cur.execute("INSERT INTO documents VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", document_row(doc))
            cur.execute("INSERT INTO document_added (doc_id) VALUES (%s)", (doc.doc_id,))
            cur.execute("SELECT nextval('chunks_id_seq') FROM generate_series(1, %s)", (len(chunks),))
            ids = [r[0] for r in cur.fetchall()]
            split = [fts_tokens(t) for t in tokens]
            cur.execute(
                'INSERT INTO chunks (id, doc_id, seq, start, "end", page, hash, tokens, ntokens, embedding) '
                "SELECT c.id, %s, c.seq, c.a, c.b, c.page, c.hash, c.tokens, c.n, e.vector FROM unnest("
                "%s::bigint[], %s::int[], %s::int[], %s::int[], %s::int[], %s::text[], %s::text[], %s::int[]) "
                "AS c(id, seq, a, b, page, hash, tokens, n) LEFT JOIN embeddings e ON e.hash = c.hash",
                (doc.doc_id, ids, [c.seq for c in chunks], [c.start for c in chunks], [c.end for c in chunks],
                 [c.page for c in chunks], hashes, tokens, [len(s) for s in split]))
            with cur.copy("COPY postings (term, chunk_id, tf, dl, pos) FROM STDIN") as copy:
                for chunk_id, words in zip(ids, split):
                    positions: dict[str, list[int]] = {}
                    for i, w in enumerate(words):
                        positions.setdefault(w, []).append(i)
                    for term, pos in positions.items():
                        copy.write_row((term, chunk_id, len(pos), len(words), pos))
                    self._affected.update(positions)
            cur.executemany("INSERT INTO sentences VALUES (%s, %s, %s)",
                            [(doc.doc_id, i, h) for i, h in enumerate(sentence_hashes)])
            cur.execute(ROUTE_NEW_DOCUMENT, (doc.path, doc.source, doc.doc_id, doc.doc_id))
        return ids

    def delete_document(self, doc_id: str) -> list[int]:
        ids = [r[0] for r in self._rows("SELECT id FROM chunks WHERE doc_id = %s", (doc_id,))]
        self._affected.update(r[0] for r in self._rows("SELECT DISTINCT term FROM postings WHERE chunk_id = ANY(%s)",
                                                       (ids,)))
        self._rows("DELETE FROM documents WHERE doc_id = %s", (doc_id,))  # chunks, postings, sentences cascade
        return ids

    def document_list(self, query: str, offset: int, limit: int,
                      collection: str | None = None) -> tuple[int, list[tuple]]:
        where, args = document_filter(query, collection, "ILIKE", "%s")  # ILIKE: SQLite's LIKE ignores ASCII case too
        (total,), = self._rows(f"SELECT count(*) FROM documents d {where}", args)
        rows = self._rows(
            "SELECT d.doc_id, d.title, d.date, d.source, d.path, d.pages, "
            "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id), "
            "to_char(a.added_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), "
            f"{FILE_NOTES} "
            f"FROM documents d LEFT JOIN document_added a USING (doc_id) {where} "
            "ORDER BY a.added_at IS NULL, a.added_at DESC, d.title LIMIT %s OFFSET %s", [*args, limit, offset])
        return total, rows

    def counts(self) -> dict[str, int]:
        """As of the last committed indexing run (kept in meta: counting a million rows per question is slow)."""
        values = dict(self._rows("SELECT key, value FROM meta WHERE key IN ('files', 'documents', 'chunks')"))
        return {k: int(values.get(k, 0)) for k in ("files", "documents", "chunks")}

    def chunks(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        rows = self._rows('SELECT c.id, c.doc_id, c.start, c."end", c.page, c.hash, d.title, '
                          'substr(d.text, c.start + 1, c."end" - c.start) '
                          "FROM chunks c JOIN documents d USING (doc_id) WHERE c.id = ANY(%s)", (list(ids),))
        return {r[0]: StoredChunk(*r) for r in rows}

    # --- embeddings -----------------------------------------------------------------------------
    def missing_embeddings(self, hashes: Iterable[str]) -> set[str]:
        hashes = set(hashes)
        return hashes - {r[0] for r in self._rows("SELECT hash FROM embeddings WHERE hash = ANY(%s)", (list(hashes),))}

    def put_embeddings(self, hashes: list[str], vectors: np.ndarray) -> None:
        """Committed at once (autocommit), outside the library transaction: finished embedding work
        survives an interrupted run."""
        with self._cursor() as cur:
            cur.executemany("INSERT INTO embeddings VALUES (%s, %s) "
                            "ON CONFLICT (hash) DO UPDATE SET vector = excluded.vector",
                            [(h, np.asarray(v, dtype=np.float32)) for h, v in zip(hashes, vectors)])

    def vectors(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        return dict(self._rows("SELECT hash, vector FROM embeddings WHERE hash = ANY(%s)", (list(set(hashes)),)))

    def embedding_hashes(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT hash FROM embeddings ORDER BY hash")]

    def chunk_vectors(self, ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        if ids is None:
            rows = self._rows("SELECT id, embedding FROM chunks ORDER BY id")
        else:
            rows = self._rows("SELECT id, embedding FROM chunks WHERE id = ANY(%s)", (list(ids),))
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.array([r[0] for r in rows], dtype=np.int64), np.vstack([r[1] for r in rows]).astype(np.float32)

    def drop_unused_embeddings(self) -> None:
        self._rows("DELETE FROM embeddings e WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.hash = e.hash) "
                   "AND NOT EXISTS (SELECT 1 FROM sentences s WHERE s.hash = e.hash)")

    # --- search ---------------------------------------------------------------------------------
    def dense_search(self, vector: np.ndarray, k: int, collection: str | None = None) -> list[tuple[int, float]]:
        # The cast to the query's dimension is the expression the HNSW index is built on (the column
        # itself is untyped: a library may be rebuilt with a model of another dimension).
        dim = int(len(vector))
        distance = f"embedding::vector({dim}) <#> %(q)s::vector({dim})"
        args = {"q": np.asarray(vector, dtype=np.float32), "k": k, "c": collection}
        if collection is None:
            sql = f"SELECT id, -({distance}) FROM chunks ORDER BY {distance} LIMIT %(k)s"
        elif self._collection_chunks(collection) >= HNSW_MIN_CHUNKS:
            # The HNSW index with the collection's WHERE: pgvector's iterative scan (_configure) goes on
            # through the graph until k of its chunks are found.
            sql = (f"SELECT id, -({distance}) FROM chunks WHERE doc_id IN "
                   f"(SELECT doc_id FROM collection_docs WHERE collection = %(c)s) ORDER BY {distance} LIMIT %(k)s")
        else:
            # A smaller collection is scanned exactly: not the indexed expression, so the HNSW index (whose
            # iterative scan gives up after hnsw.max_scan_tuples) is not used.
            exact = f"c.embedding <#> %(q)s::vector({dim})"
            sql = (f"SELECT c.id, -({exact}) FROM chunks c JOIN collection_docs m ON m.doc_id = c.doc_id "
                   f"WHERE m.collection = %(c)s ORDER BY {exact} LIMIT %(k)s")
        return [(int(i), float(s)) for i, s in self._rows(sql, args)]

    def _collection_chunks(self, collection: str) -> int:
        """How many chunks the collection holds, counted once per library generation and memberships version."""
        version = tuple(self._rows("SELECT key, value FROM meta WHERE key IN ('generation', 'memberships') ORDER BY key"))
        cached = self._collection_sizes.get(collection)
        if cached is None or cached[0] != version:
            (count,), = self._rows(f"SELECT count(*) FROM ({COLLECTION_CHUNKS}) c", (collection,))
            cached = self._collection_sizes[collection] = (version, count)
        return cached[1]

    def keyword_search(self, terms: list[str], limit: int, also: Collection[int] = (),
                       collection: str | None = None) -> list[tuple[int, float]]:
        """FTS5's bm25() in SQL (see the module docstring): the best `limit`, and those of `also` that match; in a
        collection, of its chunks (scored with the library's statistics, as the folder store does)."""
        selects, args = [], []
        for t, term in enumerate(terms):
            parts = fts_tokens(term)
            if len(parts) == 1:
                selects.append("SELECT %s AS t, chunk_id, tf, dl, (SELECT df FROM terms WHERE term = %s) AS nhit "
                               "FROM postings WHERE term = %s")
                args += [t, parts[0], parts[0]]
            elif parts:  # a phrase: the first part's positions followed by the others'
                joins = " ".join(f"JOIN postings p{j} ON p{j}.chunk_id = p0.chunk_id AND p{j}.term = %s"
                                 for j in range(1, len(parts)))
                follows = " AND ".join(f"x + {j} = ANY(p{j}.pos)" for j in range(1, len(parts)))
                selects.append(f"SELECT t, chunk_id, tf, dl, count(*) OVER () AS nhit FROM "
                               f"(SELECT %s AS t, p0.chunk_id, p0.dl, "
                               f"(SELECT count(*) FROM unnest(p0.pos) x WHERE {follows}) AS tf "
                               f"FROM postings p0 {joins} WHERE p0.term = %s) phrase WHERE tf > 0")
                args += [t, *parts[1:], parts[0]]
        if not selects:
            return []
        stats = ("(SELECT value::float8 FROM meta WHERE key = 'chunks')",
                 "(SELECT value::float8 FROM meta WHERE key = 'tokens')")
        sql = (f"WITH hits AS ({' UNION ALL '.join(selects)}), stats AS (SELECT {stats[0]} AS n, "
               f"{stats[1]} / greatest({stats[0]}, 1) AS avgdl) "
               f"SELECT chunk_id, sum(greatest(ln((n - nhit + 0.5) / (nhit + 0.5)), 1e-6) * tf * {BM25_K1 + 1}::float8 "
               f"/ (tf + {BM25_K1}::float8 * (1 - {BM25_B}::float8 + {BM25_B}::float8 * dl / avgdl))) AS score "
               f"FROM hits, stats {'' if collection is None else f'WHERE chunk_id IN ({COLLECTION_CHUNKS})'} "
               "GROUP BY chunk_id")
        if collection is not None:
            args.append(collection)
        sql = (f"WITH scored AS ({sql}) (SELECT * FROM scored ORDER BY score DESC, chunk_id LIMIT %s) "
               "UNION SELECT * FROM scored WHERE chunk_id = ANY(%s::bigint[]) ORDER BY score DESC, chunk_id")
        return [(int(i), float(s)) for i, s in self._rows(sql, [*args, limit, list(also)])]

    def chunk_tokens(self, ids: Iterable[int]) -> dict[int, str]:
        return dict(self._rows("SELECT id, tokens FROM chunks WHERE id = ANY(%s)", (list(ids),)))

    def document_frequency(self, terms: list[str]) -> dict[str, int]:
        return dict(self._rows("SELECT term, df FROM terms WHERE term = ANY(%s)", (terms,)))

    # --- collections (assistant.store.collections) ----------------------------------------------------
    @contextmanager
    def _memberships(self) -> Iterator[None]:
        """A change of collections, committed at once as a new memberships version."""
        with self._lock, self._conn.transaction():
            yield
            self._rows("INSERT INTO meta VALUES ('memberships', '1') ON CONFLICT (key) "
                       "DO UPDATE SET value = (meta.value::int + 1)::text")

    def collection_rows(self) -> list[tuple[str, str, int, int]]:
        return [(i, n, int(d), int(c)) for i, n, d, c in self._rows(COLLECTION_ROWS)]

    def collection_names(self) -> dict[str, str]:
        return dict(self._rows("SELECT id, name FROM collections"))

    def put_collection(self, collection: str, name: str) -> None:
        with self._memberships():
            self._rows("INSERT INTO collections (id, name) VALUES (%s, %s) "
                       "ON CONFLICT (id) DO UPDATE SET name = excluded.name", (collection, name))

    def drop_collection(self, collection: str) -> bool:
        with self._memberships():
            self._rows("SELECT 1 FROM collections WHERE id = %s FOR UPDATE", (collection,))
            if self._rows("SELECT 1 FROM collection_docs WHERE collection = %s LIMIT 1", (collection,)):
                return False
            self._rows("DELETE FROM collections WHERE id = %s", (collection,))
        return True

    def document_collections(self, doc_ids: Iterable[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for doc_id, collection in self._rows("SELECT doc_id, collection FROM collection_docs WHERE doc_id = ANY(%s) "
                                             "ORDER BY collection", (list(doc_ids),)):
            found.setdefault(doc_id, []).append(collection)
        return found

    def change_collections(self, doc_ids: list[str], add: str | None = None, remove: str | None = None) -> None:
        with self._memberships():
            if add is not None:
                self._rows("INSERT INTO collection_docs SELECT %s, unnest(%s::text[]) ON CONFLICT DO NOTHING",
                           (add, doc_ids))
            if remove is not None:
                self._rows("DELETE FROM collection_docs WHERE collection = %s AND doc_id = ANY(%s)", (remove, doc_ids))

    def route(self, keys: list[str], collection: str) -> None:
        with self._cursor() as cur:
            cur.executemany("INSERT INTO collection_routes VALUES (%s, %s) "
                            "ON CONFLICT (key) DO UPDATE SET collection = excluded.collection",
                            [(k, collection) for k in keys])


def _configure(conn: psycopg.Connection) -> None:
    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        pass  # no pgvector yet: an empty database, reported by the schema check
    conn.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")
    # A collection's search on the HNSW index goes on until it has its k chunks (pgvector 0.8; an older one
    # lacks the setting, and its collections are searched as its HNSW index returns them).
    try:
        conn.execute("SET hnsw.iterative_scan = strict_order")
    except psycopg.errors.UndefinedObject:
        pass


def _migrate(conn: psycopg.Connection) -> None:
    """Apply the schema migrations this database has not had, each in a transaction, under an advisory
    lock (several processes may open a new database at once)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL "
                     "DEFAULT now())")
        done = {r[0] for r in conn.execute("SELECT version FROM _migrations")}
        for version, sql in enumerate(MIGRATIONS, 1):
            if version not in done:
                conn.execute(sql)
                conn.execute("INSERT INTO _migrations (version) VALUES (%s)", (version,))
