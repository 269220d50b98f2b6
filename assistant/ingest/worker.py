"""`assistant worker`: take library changes queued in PostgreSQL (assistant.ingest.jobs) and do them.

Any number of workers, on any machines, share one database; each takes one job at a time and holds a
lease on it, renewed while it works. Each file is applied in its own transaction (its documents and the
file together), so a worker that dies mid-job loses only what it had not committed: when its lease
expires another worker takes the job again, and finds each file already applied by its content.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg_pool import PoolTimeout

from ..config import Config
from ..store.index import Models, chunk_hash
from ..store.keyword import tokenize
from ..store.postgres import PostgresStore
from ..text import quotable, sentence_spans
from .fetch import FetchError, fetch
from .indexing import _embed_missing, _link_title, _own_ids, chunk_file, embed_input, no_progress
from .jobs import UPLOAD_KEY, PostgresJobs
from .library import FileOutcome, Job, LibraryError, link_file_name, sanitize_name
from .load import SUPPORTED, LoadError, read_bounded

log = logging.getLogger("assistant.ingest.worker")

LEASE_SECONDS = 60.0  # a dead worker's job waits this long; renewed every third of it
# Seconds between tries to reach the database again while it is away (a restart, a failover); the last repeats.
RETRY_PAUSES = (0.5, 1, 2, 5, 10, 30)
# What the database being away looks like: psycopg's errors, the pool's timeout, PostgresStore's refusal to open.
UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, ConnectionError)


class _Stopped(Exception):
    """The worker is stopping, or lost the job's lease: leave the job as it is."""


class Worker:
    def __init__(self, uri: str, config: Config, *, lease: float = LEASE_SECONDS, poll: float = 1.0,
                 name: str | None = None):
        self.uri, self.config, self.lease, self.poll = uri, config, lease, poll
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._connect()
        self.stopping = threading.Event()
        self._interrupted: str | None = None  # the job the database went away in the middle of

    def _connect(self) -> None:
        self.store = PostgresStore(self.uri)  # brings the schema up to date (the jobs table)
        try:
            self.queue = PostgresJobs(self.uri, pool_size=2)
        except BaseException:
            self.store.close()
            raise

    def _disconnect(self) -> None:
        for part in (self.queue, self.store):
            try:
                part.close()
            except Exception:  # a connection already broken: nothing more to close
                pass

    def run(self) -> None:
        """Take and do jobs until `stopping` is set; a job being done is given back unfinished. While the
        database is away, try again with growing pauses (one log line when it goes, one when it is back):
        the job it went away in is given back, so the next worker takes it at once."""
        outage, tries = None, 0
        try:
            while not self.stopping.is_set():
                try:
                    if outage is not None:
                        self._connect()
                    if self._interrupted:
                        self.queue.release(self._interrupted, self.name)
                        self._interrupted = None
                    claimed = self.queue.claim(self.name, self.lease)
                except UNREACHABLE as exc:
                    if outage is None:
                        outage = time.monotonic()
                        log.warning("the database cannot be reached (%s); trying again, with pauses up to %g s",
                                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                                    RETRY_PAUSES[-1])
                    self._disconnect()
                    self.stopping.wait(RETRY_PAUSES[min(tries, len(RETRY_PAUSES) - 1)])
                    tries += 1
                    continue
                if outage is not None:
                    log.info("the database is back after %.0f s; taking jobs again", time.monotonic() - outage)
                    outage, tries = None, 0
                if claimed is None:
                    self.stopping.wait(self.poll)
                    continue
                try:
                    self.work(*claimed)
                except UNREACHABLE as exc:
                    self._interrupted = claimed[0].id
                    outage = time.monotonic()
                    log.warning("the database went away during job %s (%s); trying again, with pauses up to %g s",
                                claimed[0].id, type(exc).__name__, RETRY_PAUSES[-1])
                    self._disconnect()
        finally:
            self._disconnect()

    def work(self, job: Job, arg: dict) -> None:
        lost, finished = threading.Event(), threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, lost, finished), daemon=True)
        beat.start()

        def check() -> None:
            if self.stopping.is_set() or lost.is_set():
                raise _Stopped

        log.info("job %s (%s)", job.id, job.kind)
        try:
            if job.kind == "upload":
                self._add(job, self.queue.files(job.id), check)
            elif job.kind == "links":
                self._add(job, [(url, b"") for url in arg["urls"]], check, links=True)
            else:
                self._remove(job, arg)
            state, error = "done", ""
        except _Stopped:
            if not lost.is_set():
                self.queue.release(job.id, self.name)
            return
        except UNREACHABLE:  # not the job's fault: it is given back when the database is back (`run`)
            raise
        except Exception as exc:  # reported on the job; the worker goes on with the next one
            state, error = "failed", str(exc) or type(exc).__name__
            log.error("job %s (%s) failed: %s", job.id, job.kind, error,
                      exc_info=not isinstance(exc, (LibraryError, LookupError, LoadError)))
        finally:
            finished.set()
            beat.join()
        self.queue.finish(job, self.name, state, error)

    def _heartbeat(self, job_id: str, lost: threading.Event, finished: threading.Event) -> None:
        while not finished.wait(self.lease / 3):
            try:
                renewed = self.queue.renew(job_id, self.name, self.lease)
            except Exception:  # the database is unreachable for a moment: the lease may still hold (`run` says so)
                continue
            if not renewed:
                log.warning("job %s was taken by another worker (this one was too slow to renew)", job_id)
                lost.set()
                return

    # --- uploads and links ----------------------------------------------------------------------
    def _add(self, job: Job, items: list[tuple[str, bytes]], check, *, links: bool = False) -> None:
        job.files = [FileOutcome(name) for name, _ in items]
        job.stage, job.done, job.total = "reading", 0, len(items)
        self.queue.report(job, self.name)
        models = Models.of(self.store, self.config)
        for (name, data), outcome in zip(items, job.files):
            check()
            try:
                if links:
                    page = fetch(name, self.config)
                    self._add_file(job, f"{UPLOAD_KEY}links/{link_file_name(page.url, page.suffix)}", page.data,
                                   outcome, models, source=page.url)
                else:
                    self._add_file(job, f"{UPLOAD_KEY}{job.id}/{sanitize_name(name)}", data, outcome, models)
            except (FetchError, LoadError) as exc:
                outcome.status, outcome.reason = "rejected", exc.reason if isinstance(exc, LoadError) else str(exc)
            job.done += 1
            self.queue.report(job, self.name)

    def _add_file(self, job: Job, key: str, data: bytes, outcome: FileOutcome, models: Models,
                  source: str = "") -> None:
        suffix = Path(key).suffix.lower()
        if suffix not in SUPPORTED:
            outcome.status, outcome.reason = "rejected", f"unsupported file type; supported: {', '.join(SUPPORTED)}"
            return
        if len(data) > self.config.max_file_mb * 1_000_000:
            outcome.status, outcome.reason = "rejected", f"larger than max_file_mb ({self.config.max_file_mb:g} MB)"
            return
        if any(o.stored_as == key for o in job.files):
            outcome.status = "rejected"
            outcome.reason = (f"another file of this upload is also named {Path(key).name}; rename one and upload "
                              "it again")
            return
        sha = hashlib.sha256(data).hexdigest()
        files = self.store.files()
        same = next((path for path, (held, *_rest) in files.items() if held == sha), None)
        outcome.stored_as = same or key
        if same is not None:
            # Its own key: applied by an earlier try of this job (a worker that died after committing it).
            outcome.status = "added" if same == key and not source else "unchanged"
            outcome.reason = "" if outcome.status == "added" else f"already in the library as {same}"
            outcome.doc_ids = files[same][3]
            return
        docs, outcome.warnings = read_bounded(Path(key).name, data, self.config.read_seconds, ocr=self.config.ocr,
                                              max_chars=self.config.max_file_chars)
        # An id is its file's, as an indexing run has it: a record naming another file's id is refused (the whole
        # file when nothing else is left), never linked to that file's document. Checked now, so that a refused
        # record costs no embedding, and again under the library's lock before the write (below).
        owners = {doc_id: path for path, (*_rest, ids) in files.items() for doc_id in ids}
        docs = _own_ids(key, docs, owners, {}, {}, outcome.warnings, set())
        chunked = chunk_file(Path(key).name, docs, self.config)
        for doc in docs:
            if source:
                doc.source = source
                if doc.title == Path(key).stem:  # a page with no title of its own: named as the link names it
                    doc.title = _link_title(source)
        planned = []
        for doc, chunks in zip(docs, chunked):
            inputs = [embed_input(doc, c) for c in chunks]
            sentences = [doc.text[a:b] for a, b in sentence_spans(doc.text) if quotable(doc.text, a, b)]
            planned.append((doc, chunks, inputs, [chunk_hash(models.passages, t) for t in inputs],
                            [chunk_hash(models.sentences, t) for t in sentences], sentences))
        self._embed(planned, models)
        with self.store.transaction():
            self.store.wait_for_indexing()
            # The ids again, under the lock and in the transaction that writes them: another worker (or an
            # indexing run) may have committed a file with one of these ids since the check above, and two
            # files must never share an id (a LoadError here rolls this file back and refuses it).
            owners = {doc_id: path for path, (*_rest, ids) in self.store.files().items() for doc_id in ids}
            docs = _own_ids(key, docs, owners, {}, {}, outcome.warnings, set())
            planned = [p for p in planned if any(p[0] is doc for doc in docs)]
            ids = list(dict.fromkeys(doc.doc_id for doc in docs))
            # Again under the lock: an indexing run that committed meanwhile drops the vectors no chunk
            # uses, these ones included (nothing to do otherwise).
            self._embed(planned, models)
            replaced = key in self.store.files()
            for doc, chunks, inputs, hashes, sentence_hashes, _ in planned:
                # Two files with the same text hold one document; a retried job finds its own.
                if self.store.document(doc.doc_id) is None:
                    self.store.add_document(doc, chunks, hashes, [" ".join(tokenize(t)) for t in inputs],
                                            sentence_hashes)
            self.store.put_file(key, sha, time.time(), len(data), ids, outcome.warnings)
            if self.store.get_meta("model") is None:  # a library begun by workers: its vectors' models
                self.store.set_meta("model", models.passages)
                self.store.set_meta("sentence_model", models.sentences)
            if replaced:  # a link fetched again: its old version's documents go
                for doc_id in self.store.orphan_doc_ids():
                    self.store.delete_document(doc_id)
        outcome.status, outcome.doc_ids = ("updated" if replaced else "added"), ids

    def _embed(self, planned: list, models: Models) -> None:
        _embed_missing(self.store, models.passages, "embedding",
                       [(h, t) for p in planned for h, t in zip(p[3], p[2])], no_progress)
        _embed_missing(self.store, models.sentences, "sentences",
                       [(h, t) for p in planned for h, t in zip(p[4], p[5])], no_progress)

    # --- removals -------------------------------------------------------------------------------
    def _remove(self, job: Job, arg: dict) -> None:
        with self.store.transaction():
            self.store.wait_for_indexing()
            files = self.store.files()
            if "file" in arg:
                if not arg["file"].startswith(UPLOAD_KEY) or arg["file"] not in files:
                    raise LookupError(f"no file {arg['file']!r} added by a worker")
                holders = [arg["file"]]
            else:
                doc_id = arg["doc_id"]
                if self.store.document(doc_id) is None:
                    raise LookupError(f"no document with id {doc_id!r}")
                holders = [path for path, (*_rest, ids) in files.items() if doc_id in ids]
                for path in holders:
                    if not path.startswith(UPLOAD_KEY):
                        raise LibraryError(f"{path} is a file of the library folder: remove it there (`assistant "
                                           "remove`, or delete it and run `assistant index --store …`)")
                    if len(files[path][3]) > 1:
                        raise LibraryError(f"{path} holds {len(files[path][3])} documents; remove the whole file")
            for path in holders:
                self.store.delete_file(path)
            for doc_id in self.store.orphan_doc_ids():
                self.store.delete_document(doc_id)
        job.removed = holders
