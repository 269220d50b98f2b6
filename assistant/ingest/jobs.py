"""Where the server's library changes go: `JobQueue`.

The folder store (and a PostgreSQL server started without --no-ingest) runs them in its own background
thread (assistant.ingest.library.Jobs). A PostgreSQL server started with `--no-ingest` queues them in the
database (`PostgresJobs`), where `assistant worker` processes on any machine take them
(assistant.ingest.worker); every server reads any job's progress from there.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Protocol

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from .indexing import UPLOAD_KEY
from .library import FileOutcome, Job, LibraryBusy

MAX_ATTEMPTS = 3  # a job whose worker died this many times is given up (e.g. a file that kills its reader)
WAITING = 200  # queued or running jobs: each upload's bytes wait in the database


class JobQueue(Protocol):
    def ready(self) -> None:
        """Raise LibraryError when no change can be taken (the message says why)."""

    def has_file(self, name: str) -> bool: ...

    def upload(self, files: list[tuple[str, bytes]]) -> Job: ...

    def add_urls(self, urls: list[str]) -> Job: ...

    def remove(self, doc_id: str) -> Job: ...

    def remove_file(self, name: str) -> Job: ...

    def get(self, job_id: str) -> Job | None: ...

    def close(self) -> None: ...


_COLUMNS = ("id, kind, state, stage, done, total, files, removed, error, extract(epoch FROM created), "
            "extract(epoch FROM finished)")


def _job(row: tuple) -> Job:
    job_id, kind, state, stage, done, total, files, removed, error, created, finished = row
    return Job(job_id, kind, state, stage, done, total, [FileOutcome(**f) for f in files], removed, error,
               float(created), float(finished) if finished is not None else None)


class PostgresJobs:
    """Library changes as rows of the `jobs` table; taken by workers with `FOR UPDATE SKIP LOCKED`."""

    def __init__(self, uri: str, pool_size: int = 4):
        self._pool = ConnectionPool(uri, min_size=1, max_size=pool_size, open=False,
                                    kwargs={"autocommit": True, "application_name": "assistant jobs"})
        self._pool.open(wait=True, timeout=15)

    def close(self) -> None:
        self._pool.close()

    # --- the server's side ----------------------------------------------------------------------
    def ready(self) -> None:
        pass  # the database holds everything a worker needs

    def has_file(self, name: str) -> bool:
        with self._pool.connection() as conn:
            return name.startswith(UPLOAD_KEY) and bool(
                conn.execute("SELECT 1 FROM files WHERE path = %s", (name,)).fetchall())

    def upload(self, files: list[tuple[str, bytes]]) -> Job:
        return self._enqueue("upload", {}, files, [FileOutcome(name) for name, _ in files])

    def add_urls(self, urls: list[str]) -> Job:
        return self._enqueue("links", {"urls": urls}, [], [FileOutcome(url) for url in urls])

    def remove(self, doc_id: str) -> Job:
        return self._enqueue("remove", {"doc_id": doc_id})

    def remove_file(self, name: str) -> Job:
        return self._enqueue("remove", {"file": name})

    def _enqueue(self, kind: str, arg: dict, files: list[tuple[str, bytes]] = (),
                 outcomes: list[FileOutcome] = ()) -> Job:
        job_id = uuid.uuid4().hex[:12]
        with self._pool.connection() as conn, conn.transaction():
            (waiting,), = conn.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')").fetchall()
            if waiting >= WAITING:
                raise LibraryBusy(f"{WAITING} library changes are already waiting; try again when one has finished")
            conn.execute("INSERT INTO jobs (id, kind, arg, files) VALUES (%s, %s, %s, %s)",
                         (job_id, kind, Jsonb(arg), Jsonb([asdict(o) for o in outcomes])))
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO job_files VALUES (%s, %s, %s, %s)",
                                [(job_id, i, name, data) for i, (name, data) in enumerate(files)])
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchall()
        return _job(rows[0]) if rows else None

    # --- the worker's side: every write names the worker, so one that lost its lease changes nothing --
    def claim(self, worker: str, lease: float) -> tuple[Job, dict] | None:
        """Take the oldest queued job, or a running one whose worker stopped renewing its lease."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("UPDATE jobs SET state = 'failed', finished = now(), lease_until = NULL, error = %s "
                         "WHERE state = 'running' AND lease_until < now() AND attempts >= %s",
                         (f"given up: its worker stopped {MAX_ATTEMPTS} times while doing it", MAX_ATTEMPTS))
            rows = conn.execute(
                "UPDATE jobs SET state = 'running', worker = %(w)s, attempts = attempts + 1, "
                "lease_until = now() + make_interval(secs => %(lease)s) WHERE id = ("
                "SELECT id FROM jobs WHERE state = 'queued' OR (state = 'running' AND lease_until < now()) "
                "ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED) "
                f"RETURNING {_COLUMNS}, arg", {"w": worker, "lease": lease}).fetchall()
        return (_job(rows[0][:-1]), rows[0][-1]) if rows else None

    def files(self, job_id: str) -> list[tuple[str, bytes]]:
        with self._pool.connection() as conn:
            return [(n, bytes(d)) for n, d in conn.execute(
                "SELECT name, data FROM job_files WHERE job_id = %s ORDER BY seq", (job_id,)).fetchall()]

    def renew(self, job_id: str, worker: str, lease: float) -> bool:
        """Extend the lease; False when the job is no longer this worker's."""
        with self._pool.connection() as conn:
            return conn.execute("UPDATE jobs SET lease_until = now() + make_interval(secs => %s) "
                                "WHERE id = %s AND worker = %s AND state = 'running'",
                                (lease, job_id, worker)).rowcount == 1

    def report(self, job: Job, worker: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("UPDATE jobs SET stage = %s, done = %s, total = %s, files = %s, removed = %s "
                         "WHERE id = %s AND worker = %s AND state = 'running'",
                         (job.stage, job.done, job.total, Jsonb([asdict(f) for f in job.files]),
                          Jsonb(job.removed), job.id, worker))

    def finish(self, job: Job, worker: str, state: str, error: str = "") -> None:
        with self._pool.connection() as conn, conn.transaction():
            done = conn.execute("UPDATE jobs SET state = %s, error = %s, finished = now(), lease_until = NULL, "
                                "stage = %s, done = %s, total = %s, files = %s, removed = %s "
                                "WHERE id = %s AND worker = %s AND state = 'running'",
                                (state, error, job.stage, job.done, job.total,
                                 Jsonb([asdict(f) for f in job.files]), Jsonb(job.removed), job.id, worker))
            if done.rowcount:  # the documents hold the text now
                conn.execute("DELETE FROM job_files WHERE job_id = %s", (job.id,))

    def release(self, job_id: str, worker: str) -> None:
        """Give a job back unfinished (the worker is stopping): the next worker takes it at once, and
        this try does not count towards MAX_ATTEMPTS."""
        with self._pool.connection() as conn:
            conn.execute("UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL, "
                         "attempts = attempts - 1 WHERE id = %s AND worker = %s AND state = 'running'",
                         (job_id, worker))
