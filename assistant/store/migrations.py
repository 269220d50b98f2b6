"""Numbered schema migrations of the index database, applied in order when a store is opened.

Each migration runs once, in a transaction, and is recorded in the `_migrations` table, so an
index built by an older release opens in a newer one. Add a change as a new function at the end;
never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    MIGRATIONS.append(fn)
    return fn


def migrate(db: sqlite3.Connection) -> int:
    """Apply the migrations `db` has not had yet; returns the schema version (migrations applied)."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {r[0] for r in db.execute("SELECT name FROM _migrations")}
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            if fn.__name__ not in {r[0] for r in db.execute("SELECT name FROM _migrations")}:  # another process won
                fn(db)
                db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (fn.__name__,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(MIGRATIONS.index(fn) + 1),))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return len(MIGRATIONS)


def _script(db: sqlite3.Connection, sql: str) -> None:
    # executescript() would commit the migration's transaction; run the statements one by one.
    for statement in filter(str.strip, sql.split(";")):
        db.execute(statement)


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """The first release's schema (indexes made before migrations existed already have it)."""
    _script(db, """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, mtime REAL NOT NULL, size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS file_docs (
    path TEXT NOT NULL REFERENCES files(path) ON DELETE CASCADE, doc_id TEXT NOT NULL,
    PRIMARY KEY (path, doc_id)
);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT, author TEXT, date TEXT, source TEXT, path TEXT, lang TEXT,
    text TEXT NOT NULL, pages TEXT, meta TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, page INTEGER,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(hash);
CREATE TABLE IF NOT EXISTS embeddings (hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(tokens);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, row)
""")


@migration
def m002_sentences(db: sqlite3.Connection) -> None:
    """Sentence vectors, made at indexing time, so that answering a question embeds nothing but the question.

    An index from before this migration has none: its answers embed their candidate sentences as
    they go, until `assistant index --rebuild`.
    """
    _script(db, """
CREATE TABLE sentences (
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE, hash TEXT NOT NULL
);
CREATE INDEX sentences_doc ON sentences(doc_id);
CREATE INDEX sentences_hash ON sentences(hash)
""")


@migration
def m003_document_added(db: sqlite3.Connection) -> None:
    """When each document was (last) added, for the library view; kept by triggers, so the indexer
    needs no change. Documents indexed before this migration have no time."""
    # One statement at a time: a trigger's body holds semicolons, which `_script` splits on. IF NOT EXISTS:
    # an index whose migration records were lost (a previous release's, as tests make one) runs this again.
    db.execute("CREATE TABLE IF NOT EXISTS document_added (doc_id TEXT PRIMARY KEY, added_at TEXT NOT NULL)")
    db.execute("CREATE TRIGGER IF NOT EXISTS document_added_insert AFTER INSERT ON documents BEGIN "
               "INSERT OR REPLACE INTO document_added VALUES (new.doc_id, datetime('now')); END")
    db.execute("CREATE TRIGGER IF NOT EXISTS document_added_delete AFTER DELETE ON documents BEGIN "
               "DELETE FROM document_added WHERE doc_id = old.doc_id; END")


@migration
def m004_question_log(db: sqlite3.Connection) -> None:
    """The question log, feedback on answers and conversations that last (assistant.log.questions). Kept apart
    from the library's tables: indexing (even --rebuild) leaves them alone. IF NOT EXISTS: see m003."""
    _script(db, """
CREATE TABLE IF NOT EXISTS questions (
    id TEXT PRIMARY KEY, asked_at TEXT NOT NULL, surface TEXT NOT NULL, question TEXT NOT NULL, lang TEXT NOT NULL,
    declined INTEGER NOT NULL, reason TEXT, citations TEXT NOT NULL, seconds REAL NOT NULL, conversation_id TEXT,
    vector BLOB, client TEXT
);
CREATE INDEX IF NOT EXISTS questions_asked ON questions(asked_at);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id TEXT NOT NULL REFERENCES questions(id) ON DELETE CASCADE, client_id TEXT NOT NULL,
    vote INTEGER NOT NULL, reason TEXT, comment TEXT, at TEXT NOT NULL, PRIMARY KEY (answer_id, client_id)
);
CREATE TABLE IF NOT EXISTS conversation_turns (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, question TEXT NOT NULL,
    answer TEXT NOT NULL, PRIMARY KEY (conversation_id, seq)
)
""")


@migration
def m005_collections(db: sqlite3.Connection) -> None:
    """Collections (assistant.store.collections): named sets of documents, a document in any number of them. Every
    document of an older index goes into the default collection. Memberships are not deleted with their
    document: re-indexing a changed file deletes and adds it again in one transaction, which keeps them;
    those of documents gone at the commit are dropped then (Store.transaction). `collection_routes` says
    which collection the documents of an uploaded file (its path) or link (its URL) go into when new.
    The question log records the collection asked."""
    _script(db, """
CREATE TABLE IF NOT EXISTS collections (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collection_docs (
    collection TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE, doc_id TEXT NOT NULL,
    PRIMARY KEY (collection, doc_id)
);
CREATE INDEX IF NOT EXISTS collection_docs_doc ON collection_docs(doc_id);
CREATE TABLE IF NOT EXISTS collection_routes (
    key TEXT PRIMARY KEY, collection TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE
);
INSERT OR IGNORE INTO collections VALUES ('default', 'Default', datetime('now'));
INSERT OR IGNORE INTO collection_docs SELECT 'default', doc_id FROM documents
""")
    if "collection" not in {r[1] for r in db.execute("PRAGMA table_info(questions)")}:
        db.execute("ALTER TABLE questions ADD COLUMN collection TEXT")


@migration
def m006_file_notes(db: sqlite3.Connection) -> None:
    """What a limit cut from each file when it was last read (its reader's warnings, a JSON list), for the
    library view's rows. Files indexed before this migration have none until they are read again."""
    if "notes" not in {r[1] for r in db.execute("PRAGMA table_info(files)")}:
        db.execute("ALTER TABLE files ADD COLUMN notes TEXT")
