"""The question log: what was asked, how it was answered, what the asker thought of the answer, and the
conversations the chat and the widget pick up again after a reload.

It lives in the library's own store (the index folder's SQLite database, or the PostgreSQL database
that many servers share), in tables of its own that indexing leaves alone (migrations m004 / 3).
`QuestionStore` is the seam: `SqliteQuestions` and `PostgresQuestions` hold the same tables.

Answering never waits for the log: `QuestionLog.record` puts the entry on a bounded queue that one
background thread writes in batches. When the store is busy (an indexing run holds SQLite's write
lock) or fails, a batch is tried again for about two minutes; an entry that cannot be queued or
written is counted (`QuestionLog.counts`) and the outage is logged once, when it starts.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger("assistant.log.questions")

# Entries waiting to be written; past this many, new ones are dropped (and counted), never waited for.
QUEUE_SIZE = 5000
BATCH = 200
# A batch that fails is tried again after each pause (a long indexing run can hold SQLite's write lock
# for minutes), then dropped and counted.
RETRY_PAUSES = (1, 2, 5, 10, 30, 60)
# A conversation keeps its last CONVERSATION_TURNS turns, and is deleted when untouched this many days
# (or question_log_days, when that is shorter).
CONVERSATION_TURNS = 50
CONVERSATION_DAYS = 30
PURGE_EVERY = 24 * 3600  # seconds between retention runs (one also runs when the log is opened)
SQLITE_BUSY_SECONDS = 5.0
MAX_COMMENT = 1000  # characters of a feedback's free text
REASONS = ("wrong_answer", "out_of_context", "not_in_library", "other")
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_id() -> str:
    """An id for an answer or a conversation: unguessable, since knowing one is what lets a browser vote
    on that answer or read that conversation."""
    return secrets.token_urlsafe(16)


def valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID.fullmatch(value))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Entry:
    """One question and what became of it."""

    id: str
    asked_at: datetime
    surface: str  # chat, widget, rest, gradio_api, python, cli, ...
    question: str
    lang: str
    declined: bool
    reason: str  # why it was declined (Answer.meta["reason"]), else ""
    citations: list[dict]  # {"doc_id", "start", "end"} of each citation
    seconds: float
    conversation_id: str | None = None
    vector: np.ndarray | None = None  # the question's e5 vector, for grouping (Insights)
    client: dict | None = None  # {"ip", "user_agent"}, only with question_log_clients
    collection: str | None = None  # the collection asked in (assistant.store.collections); None: the whole library


@dataclass
class Turn:
    """A question and its answer (`Answer.to_dict()`) in a conversation; `seq` orders the turns."""

    conversation_id: str
    seq: int
    at: datetime
    question: str
    answer: dict

    def messages(self) -> list[dict]:
        return [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.answer["answer"]}]


@dataclass
class Vote:
    answer_id: str
    client_id: str
    vote: int  # 1 (👍), -1 (👎); 0 takes a vote back
    reason: str = ""  # one of REASONS, after a 👎
    comment: str = ""
    at: datetime = field(default_factory=utcnow)


class QuestionStore(Protocol):
    """The log's tables in one store. Each method is one transaction."""

    def write(self, entries: list[Entry], turns: list[Turn]) -> None:
        """Add entries and conversation turns; a conversation keeps its last CONVERSATION_TURNS turns."""
    def vote(self, vote: Vote) -> bool:
        """Set (or with vote 0 remove) this client's vote on the answer; False when the answer is not logged."""
    def votes(self, answer_ids: list[str], client_id: str) -> dict[str, Vote]: ...
    def turns(self, conversation_id: str, since: datetime) -> list[Turn]: ...
    def purge(self, questions_before: datetime, conversations_before: datetime) -> int:
        """Delete older entries (their feedback with them) and conversations; returns the entries deleted."""
    def entries(self, since: datetime, after: Entry | None = None, limit: int = 0) -> list[Entry]:
        """The entries asked since then, oldest first, without their vectors; a page of `limit` (0: all) of
        them after the entry `after`."""
    def entries_by_id(self, ids: list[str]) -> dict[str, Entry]: ...
    def count(self) -> int: ...
    def trim(self, rows: int) -> int:
        """Delete the oldest entries (their feedback with them) past the newest `rows`; returns how many."""
    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]: ...
    def feedback(self, since: datetime) -> list[Vote]:
        """The votes on entries asked since then."""
    def delete_all(self) -> None: ...
    def close(self) -> None: ...


class _SqlQuestions:
    """The SQL both stores share: written with ? placeholders, times handed over by `_time` / `_read_time`."""

    def _run(self, sql: str, args: Iterable = ()) -> list[tuple]:
        raise NotImplementedError

    def _transaction(self):
        raise NotImplementedError

    def _time(self, at: datetime):
        return at

    def _read_time(self, value) -> datetime:
        return value

    def write(self, entries: list[Entry], turns: list[Turn]) -> None:
        with self._transaction() as run:
            for e in entries:
                run("INSERT INTO questions (id, asked_at, surface, question, lang, declined, reason, citations, seconds, "
                    "conversation_id, vector, client, collection) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING",
                    (e.id, self._time(e.asked_at), e.surface, e.question, e.lang, e.declined, e.reason,
                     json.dumps(e.citations), e.seconds, e.conversation_id,
                     None if e.vector is None else np.asarray(e.vector, dtype=np.float16).tobytes(),
                     None if e.client is None else json.dumps(e.client, ensure_ascii=False), e.collection))
            for t in turns:
                run("INSERT INTO conversation_turns VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (t.conversation_id, t.seq, self._time(t.at), t.question, json.dumps(t.answer, ensure_ascii=False)))
            for conversation in {t.conversation_id for t in turns}:
                run("DELETE FROM conversation_turns WHERE conversation_id = ? AND seq < (SELECT seq FROM conversation_turns "
                    "WHERE conversation_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (conversation, conversation, CONVERSATION_TURNS - 1))

    def vote(self, vote: Vote) -> bool:
        with self._transaction() as run:
            if not run("SELECT 1 FROM questions WHERE id = ?", (vote.answer_id,)):
                return False
            if vote.vote == 0:
                run("DELETE FROM feedback WHERE answer_id = ? AND client_id = ?", (vote.answer_id, vote.client_id))
            else:
                run("INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (answer_id, client_id) DO UPDATE SET "
                    "vote = excluded.vote, reason = excluded.reason, comment = excluded.comment, at = excluded.at",
                    (vote.answer_id, vote.client_id, vote.vote, vote.reason, vote.comment, self._time(vote.at)))
        return True

    def votes(self, answer_ids: list[str], client_id: str) -> dict[str, Vote]:
        found = {}
        for i in range(0, len(answer_ids), 500):
            part = answer_ids[i : i + 500]
            rows = self._run(f"SELECT answer_id, client_id, vote, reason, comment, at FROM feedback WHERE client_id = ? "
                             f"AND answer_id IN ({','.join('?' * len(part))})", (client_id, *part))
            found.update({r[0]: self._vote(r) for r in rows})
        return found

    def _vote(self, row: tuple) -> Vote:
        return Vote(row[0], row[1], int(row[2]), row[3] or "", row[4] or "", self._read_time(row[5]))

    def turns(self, conversation_id: str, since: datetime) -> list[Turn]:
        rows = self._run("SELECT conversation_id, seq, at, question, answer FROM conversation_turns "
                         "WHERE conversation_id = ? AND at >= ? ORDER BY seq", (conversation_id, self._time(since)))
        return [Turn(c, int(s), self._read_time(a), q, json.loads(ans)) for c, s, a, q, ans in rows]

    def purge(self, questions_before: datetime, conversations_before: datetime) -> int:
        with self._transaction() as run:
            (count,), = run("SELECT count(*) FROM questions WHERE asked_at < ?", (self._time(questions_before),))
            run("DELETE FROM feedback WHERE answer_id IN (SELECT id FROM questions WHERE asked_at < ?)",
                (self._time(questions_before),))
            run("DELETE FROM questions WHERE asked_at < ?", (self._time(questions_before),))
            run("DELETE FROM conversation_turns WHERE conversation_id IN (SELECT conversation_id FROM conversation_turns "
                "GROUP BY conversation_id HAVING max(at) < ?)", (self._time(conversations_before),))
        return int(count)

    def entries(self, since: datetime, after: Entry | None = None, limit: int = 0) -> list[Entry]:
        where, args = "asked_at >= ?", [self._time(since)]
        if after is not None:  # a page: the entries after this one, in the same order
            # The range starts at that entry's time, so that the index on asked_at leads to it: a condition
            # the index cannot take (an OR) made each page scan the log from `since`.
            where, args = "asked_at >= ? AND NOT (asked_at = ? AND id <= ?)", [
                self._time(max(after.asked_at, since)), self._time(after.asked_at), after.id]
        rows = self._run("SELECT id, asked_at, surface, question, lang, declined, reason, citations, seconds, "
                         f"conversation_id, client, collection FROM questions WHERE {where} ORDER BY asked_at, id"
                         + (f" LIMIT {int(limit)}" if limit else ""), args)
        return self._entries(rows)

    def entries_by_id(self, ids: list[str]) -> dict[str, Entry]:
        found = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self._run("SELECT id, asked_at, surface, question, lang, declined, reason, citations, seconds, "
                             f"conversation_id, client, collection FROM questions WHERE id IN ({','.join('?' * len(part))})",
                             part)
            found.update({e.id: e for e in self._entries(rows)})
        return found

    def count(self) -> int:
        return int(self._run("SELECT count(*) FROM questions")[0][0])

    def trim(self, rows: int) -> int:
        with self._transaction() as run:
            cut = run("SELECT asked_at, id FROM questions ORDER BY asked_at DESC, id DESC LIMIT 1 OFFSET ?", (rows,))
            if not cut:
                return 0
            (at, last), = cut
            older = "asked_at < ? OR (asked_at = ? AND id <= ?)"
            (count,), = run(f"SELECT count(*) FROM questions WHERE {older}", (at, at, last))
            run(f"DELETE FROM feedback WHERE answer_id IN (SELECT id FROM questions WHERE {older})", (at, at, last))
            run(f"DELETE FROM questions WHERE {older}", (at, at, last))
        return int(count)

    def _entries(self, rows: list[tuple]) -> list[Entry]:
        return [Entry(i, self._read_time(at), s, q, lang, bool(d), r or "", json.loads(c), float(sec), conv, None,
                      json.loads(client) if client else None, coll)
                for i, at, s, q, lang, d, r, c, sec, conv, client, coll in rows]

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self._run(f"SELECT id, vector FROM questions WHERE vector IS NOT NULL AND id IN "
                             f"({','.join('?' * len(part))})", part)
            found.update({r[0]: np.frombuffer(bytes(r[1]), dtype=np.float16).astype(np.float32) for r in rows})
        return found

    def feedback(self, since: datetime) -> list[Vote]:
        rows = self._run("SELECT f.answer_id, f.client_id, f.vote, f.reason, f.comment, f.at FROM feedback f "
                         "JOIN questions q ON q.id = f.answer_id WHERE q.asked_at >= ? ORDER BY f.at",
                         (self._time(since),))
        return [self._vote(r) for r in rows]

    def delete_all(self) -> None:
        with self._transaction() as run:
            for table in ("feedback", "questions", "conversation_turns"):
                run(f"DELETE FROM {table}")


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


class SqliteQuestions(_SqlQuestions):
    """The log in an index folder's database, over a connection of its own: the writer thread never
    waits on the library's lock, and WAL lets readers go on while it writes."""

    def __init__(self, path: str | Path):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=SQLITE_BUSY_SECONDS)
        self._db.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()

    def _time(self, at: datetime) -> str:
        return at.astimezone(timezone.utc).strftime(_SQLITE_TIME)

    def _read_time(self, value: str) -> datetime:
        # fromisoformat reads _SQLITE_TIME's text: strptime cost 0.1-0.5 ms an entry, seconds over a full log.
        return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)

    def _run(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield lambda sql, args=(): self._db.execute(sql, tuple(args)).fetchall()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresQuestions(_SqlQuestions):
    """The log in the PostgreSQL database, written on the primary (`store`, not `store_readonly`), so that
    every server adds to one log and reads the same Insights."""

    def __init__(self, uri: str):
        from psycopg_pool import ConnectionPool

        self._pool = ConnectionPool(uri, min_size=1, max_size=4, open=False,
                                    kwargs={"autocommit": True, "application_name": "assistant questions"})
        self._pool.open(wait=True, timeout=15)

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def _run(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._pool.connection() as conn:
            cur = conn.execute(self._sql(sql), tuple(args))
            return cur.fetchall() if cur.description else []

    @contextmanager
    def _transaction(self) -> Iterator:
        with self._pool.connection() as conn, conn.transaction():
            def run(sql, args=()):
                cur = conn.execute(self._sql(sql), tuple(args))
                return cur.fetchall() if cur.description else []

            yield run

    def close(self) -> None:
        self._pool.close()


def open_question_store(config, folder: str | Path) -> QuestionStore:
    """The log's tables in the configured store: the index `folder`'s database, or the PostgreSQL primary."""
    if config.store == "sqlite":
        from ..store.folder import DB_NAME

        return SqliteQuestions(Path(folder) / DB_NAME)
    return PostgresQuestions(config.store)


class QuestionLog:
    """Records entries off the answer path (see the module docstring), reads conversations, takes votes,
    and deletes what is older than `days` when opened and once a day."""

    def __init__(self, store: QuestionStore, days: int, rows: int = 0):
        self.store, self.days, self.rows = store, max(1, days), rows
        self._held: int | None = None  # about how many entries the store holds (counted once, then added to)
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._unwritten = 0  # queued or being written
        self._pending: dict[str, list[Turn]] = {}  # turns queued, not yet written: a reload reads them too
        self._written = self._failed = self._dropped = 0
        self._failing = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="question-log", daemon=True)
        self._thread.start()

    # --- the answer path: never blocks ----------------------------------------------------------
    def record(self, entry: Entry, turn: Turn | None = None) -> None:
        with self._lock:
            try:
                self._queue.put_nowait((entry, turn))
            except queue.Full:
                self._dropped += 1
                self._failure("the queue of entries to write is full")
                return
            self._unwritten += 1
            if turn is not None:
                self._pending.setdefault(turn.conversation_id, []).append(turn)

    def counts(self) -> dict[str, int]:
        """Entries written, failed (the store refused them) and dropped (the queue was full), since this
        process opened the log."""
        with self._lock:
            return {"written": self._written, "failed": self._failed, "dropped": self._dropped}

    # --- reads and votes ------------------------------------------------------------------------
    def conversation(self, conversation_id: str) -> list[Turn]:
        """The conversation's turns (its last CONVERSATION_TURNS), those still queued included; [] when it is
        unknown or expired. A store that cannot be read gives what this process still holds."""
        since = utcnow() - timedelta(days=min(CONVERSATION_DAYS, self.days))
        try:
            stored = self.store.turns(conversation_id, since)
        except Exception as exc:  # the answer goes on without its context
            self._failure(f"reading a conversation failed: {exc}")
            stored = []
        with self._lock:
            seqs = {t.seq for t in stored}
            turns = stored + [t for t in self._pending.get(conversation_id, []) if t.seq not in seqs]
        return sorted(turns, key=lambda t: t.seq)[-CONVERSATION_TURNS:]

    def vote(self, vote: Vote) -> bool:
        """Store a vote (after the entries queued before it, so that a vote on a fresh answer finds it);
        False for an answer the log does not hold. Errors of the store are raised: the voter is told."""
        if vote.vote not in (-1, 0, 1):
            raise ValueError("a vote is 1, -1 or 0")
        if vote.reason and vote.reason not in REASONS:
            raise ValueError(f"a reason is one of {', '.join(REASONS)}")
        vote.comment = vote.comment.strip()[:MAX_COMMENT]
        self.flush(10)
        return self.store.vote(vote)

    def votes(self, answer_ids: list[str], client_id: str) -> dict[str, int]:
        """This client's votes on these answers (the chat shows them again after a reload); {} when the store
        cannot be read."""
        try:
            return {a: v.vote for a, v in self.store.votes(answer_ids, client_id).items()}
        except Exception as exc:
            self._failure(f"reading votes failed: {exc}")
            return {}

    def flush(self, timeout: float) -> bool:
        """Wait until what is queued now is written (or has failed); False when `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unwritten == 0, timeout)

    def purge(self) -> int:
        now = utcnow()
        deleted = self.store.purge(now - timedelta(days=self.days),
                                   now - timedelta(days=min(CONVERSATION_DAYS, self.days)))
        if deleted:
            log.info("question log: deleted %d entries older than %d days (question_log_days)", deleted, self.days)
        return deleted

    def delete_all(self) -> None:
        """Empty the log: every entry, vote and conversation (what is queued now too)."""
        self.flush(10)
        self.store.delete_all()

    def close(self) -> None:
        """Write what is queued (for a few seconds at most), then close the store."""
        self.flush(5)
        self._closing.set()
        self._thread.join(timeout=10)
        self.store.close()

    # --- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        next_purge = 0.0
        while not self._closing.is_set():
            if time.monotonic() >= next_purge:
                try:
                    self.purge()
                except Exception as exc:
                    self._failure(f"deleting old entries failed: {exc}")
                next_purge = time.monotonic() + PURGE_EVERY
            try:
                batch = [self._queue.get(timeout=0.5)]
            except queue.Empty:
                continue
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[tuple[Entry, Turn | None]]) -> None:
        entries, turns = [e for e, _ in batch], [t for _, t in batch if t is not None]
        written = False
        for pause in (*RETRY_PAUSES, None):
            try:
                self.store.write(entries, turns)
                written = True
                break
            except Exception as exc:
                self._failure(str(exc) or type(exc).__name__)
                if pause is None or self._closing.wait(pause):
                    break
        if written and self.rows:
            self._bound(len(entries))
        with self._lock:
            if written:
                self._written += len(entries)
                if self._failing:
                    log.info("question log: writing again (%d entries failed, %d dropped so far)",
                             self._failed, self._dropped)
                    self._failing = False
            else:
                self._failed += len(entries)
            for t in turns:
                self._pending[t.conversation_id].remove(t)
                if not self._pending[t.conversation_id]:
                    del self._pending[t.conversation_id]
            self._unwritten -= len(batch)
            self._idle.notify_all()

    def _bound(self, added: int) -> None:
        """Keep the log within `rows` entries, the oldest deleted first: trimmed when it is 1% over, so that a
        flood of questions costs one delete per few hundred entries, not one per batch."""
        try:
            self._held = (self.store.count() if self._held is None else self._held + added)
            if self._held > self.rows + max(BATCH, self.rows // 100):
                deleted = self.store.trim(self.rows)
                self._held -= deleted
                log.info("question log: deleted the %d oldest entries, past question_log_rows (%d)", deleted, self.rows)
        except Exception as exc:
            self._failure(f"deleting the oldest entries failed: {exc}")

    def _failure(self, reason: str) -> None:
        # Once per outage: a busy or full store must not fill the server log, one line per question.
        if not self._failing:
            self._failing = True
            log.warning("question log: %s; answers go on, entries that cannot be written are counted (Insights)",
                        reason)
