"""The library as files: add uploads, remove documents, list what is indexed; indexing one run at a time.

The library folder stays the source of truth, so that `assistant index` and the browser agree:
uploads are written to `<library>/uploads/` (names sanitised, the same content once), and a removed
document's files are moved to `<library>/.removed/` (hidden, so never indexed again, and
recoverable). Every change is then applied with the same indexing run `assistant index` makes, over
the paths the index was last built from. A file is read (as `assistant index` reads it) before it
is written into the library: one that cannot be read is rejected with the CLI's reason and leaves
the library exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import Config
from ..store.base import LibraryStore
from ..store.collections import Collections
from .fetch import FetchError, Fetched, fetch
from .indexing import (LINKS_FILE, IndexReport, Progress, ReadFile, chunk_file, link_sources, no_progress,
                       update_index)
from .load import SUPPORTED, LoadError, read_bounded, read_file
from .pace import resume, yield_to
from .refusals import cut_in_chinese, in_chinese

log = logging.getLogger("assistant.ingest.library")

UPLOADS = "uploads"
LINKS = "links"  # under uploads/: the pages fetched from links
REMOVED = ".removed"
_STAGING = ".uploading"  # hidden: a file being checked is never seen by an indexing run
_UNSAFE = re.compile(r"[^\w.\-()\[\] ]+")  # \w keeps CJK letters
MAX_NAME_CHARS = 120


class LibraryError(ValueError):
    """A library operation that cannot be done; the message says why and what to do."""


@dataclass
class FileOutcome:
    """What became of one uploaded file: added, updated, unchanged or rejected (with the reason)."""

    name: str  # as uploaded
    status: str = "queued"
    reason: str = ""
    stored_as: str = ""  # the path in the library, relative to it
    doc_ids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what of it was not read (pages, rows, records) and why


@dataclass
class DocumentInfo:
    doc_id: str
    title: str
    date: str
    source: str
    file: str  # the file name it was read from
    format: str  # "pdf", "md", …
    pages: int | None
    chunks: int
    added: str  # when it was (last) indexed, UTC "YYYY-MM-DD HH:MM:SS"
    notes: list[str] = field(default_factory=list)  # what a limit cut from its file when it was read
    notes_zh: list[str] = field(default_factory=list)  # the same in Chinese


def sanitize_name(name: str) -> str:
    """A safe file name for an upload: no folders, no hidden or odd characters, a supported extension kept."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    base = _UNSAFE.sub("_", base).strip(" ._") or "upload"
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = stem[: MAX_NAME_CHARS - len(ext) - 1] or "upload"
    return f"{stem}.{ext.lower()}" if ext else stem


def library_paths(store: LibraryStore, config: Config) -> list[Path]:
    """The paths the index was last built from (`update_index` records them), else the configured library."""
    recorded = store.get_meta("library")
    return [Path(p) for p in json.loads(recorded)] if recorded else [Path(config.library).resolve()]


class Library:
    """Adds, removes and lists the documents of an index folder's library. One change runs at a time."""

    def __init__(self, folder: str | Path, store: LibraryStore, config: Config,
                 answering: Callable[[], bool] = lambda: False):
        self.folder = Path(folder)
        self.store = store
        self.config = config
        # True while questions are being answered: the jobs of a server then leave them the interpreter (`pace`).
        self.answering = answering
        self._lock = threading.Lock()  # one indexing run at a time (in this process)

    def paths(self) -> list[Path]:
        return library_paths(self.store, self.config)

    def root(self) -> Path:
        """The library folder uploads go under: the first folder the index is built from."""
        folders = [p for p in self.paths() if p.is_dir()]
        if not folders:
            raise LibraryError(f"the index in {self.folder}/ was built from files, not a folder: uploads need a "
                               "library folder; run `assistant index FOLDER` once")
        return folders[0]

    def _reindex(self, progress: Progress, read: dict[str, ReadFile] | None = None) -> IndexReport:
        return update_index(self.paths(), self.folder, self.config, progress=progress, read=read)

    def add(self, files: list[tuple[str, bytes]], progress: Progress = no_progress,
            outcomes: list[FileOutcome] | None = None, collection: str | None = None) -> list[FileOutcome]:
        """Check each (name, bytes) as `assistant index` would read it, store the good ones under
        `<library>/uploads/`, and index. Returns each file's outcome (`outcomes`, filled in as it goes).
        With a `collection`, the documents go into it (new ones into it only)."""
        outcomes = outcomes if outcomes is not None else [FileOutcome(name) for name, _ in files]
        with self._lock:
            root = self.root()
            if collection is not None:
                self._collections.route([str(root / UPLOADS / sanitize_name(name)) for name, _ in files], collection)
            uploads = root / UPLOADS
            staging = root / _STAGING
            known = {sha: path for path, (sha, *_rest) in self.store.files().items()}
            stored: dict[str, FileOutcome] = {}
            read: dict[str, ReadFile] = {}  # what checking each stored file read: the indexing run takes it
            try:
                staging.mkdir(exist_ok=True)
                for (name, data), outcome in zip(files, outcomes):
                    self._store(name, data, outcome, root, uploads, staging, known, stored, read)
            finally:
                shutil.rmtree(staging, ignore_errors=True)  # nothing of a rejected file stays
            self._index_stored(stored, progress, read)
            self._also_into(collection, outcomes)
        return outcomes

    def add_urls(self, urls: list[str], progress: Progress = no_progress,
                 outcomes: list[FileOutcome] | None = None, collection: str | None = None,
                 pages: list[Fetched | None] | None = None) -> list[FileOutcome]:
        """Fetch each link (see assistant.ingest.fetch for the bounds), read the page as its file type is read,
        store it under `<library>/uploads/links/` with the URL as its documents' source, and index. A
        link added again is "unchanged" when its article text is, else "updated". `pages`: what `fetch`
        gave for these links already."""
        outcomes = outcomes if outcomes is not None else [FileOutcome(u) for u in urls]
        pages = pages if pages is not None else self.fetch(urls, outcomes, progress)
        with self._lock:
            folder = self.root() / UPLOADS / LINKS
            if collection is not None:
                self._collections.route(list(urls), collection)
            sources = link_sources(folder)
            stored: dict[str, FileOutcome] = {}
            read: dict[str, ReadFile] = {}
            for page, outcome in zip(pages, outcomes):
                if page is not None:
                    self._store_page(page, outcome, folder, sources, stored, read)
            if stored:
                _write_atomically(folder / LINKS_FILE, json.dumps(sources, ensure_ascii=False, indent=1).encode())
            self._index_stored(stored, progress, read)
            self._also_into(collection, outcomes)
        return outcomes

    @property
    def _collections(self) -> Collections:
        return Collections(self.store, self.config, self.folder)

    def _also_into(self, collection: str | None, outcomes: list[FileOutcome]) -> None:
        """Documents already in the library (an unchanged file, a link's page under another address) go into
        the collection too; new ones went there when indexed (`route`)."""
        doc_ids = [d for o in outcomes if o.status != "rejected" for d in o.doc_ids]
        if collection is not None and doc_ids:
            self._collections.add(doc_ids, collection)

    def fetch(self, urls: list[str], outcomes: list[FileOutcome], progress: Progress = no_progress) -> list[Fetched | None]:
        """Each link's page, or None with its outcome rejected (the reason); each link alone. Takes no lock:
        a slow link (every fetch ends at fetch_timeout) holds up no other change of the library."""
        pages: list[Fetched | None] = []
        advance = progress("fetching", len(urls))
        for url, outcome in zip(urls, outcomes):
            try:
                pages.append(fetch(url, self.config))
            except FetchError as exc:
                outcome.status, outcome.reason = "rejected", str(exc)
                pages.append(None)
            except Exception as exc:  # whatever else one link trips: that link's refusal, the others go on
                log.warning("fetching %r failed", url, exc_info=True)
                outcome.status, outcome.reason = "rejected", f"the page could not be fetched ({type(exc).__name__})"
                pages.append(None)
            advance(1)
        return pages

    def _store_page(self, page: Fetched, outcome: FileOutcome, folder: Path, sources: dict[str, str],
                    stored: dict[str, FileOutcome], read: dict[str, ReadFile]) -> None:
        try:
            name = link_file_name(page.url, page.suffix)
            target = (folder / name).resolve() if folder.exists() else folder / name
            docs, warnings = read_bounded(target, page.data, self.config.read_seconds, ocr=self.config.ocr,
                                          max_chars=self.config.max_file_chars)
            chunks = chunk_file(str(target), docs, self.config)
        except LoadError as exc:
            outcome.status, outcome.reason = "rejected", exc.reason
            return
        outcome.stored_as = f"{UPLOADS}/{LINKS}/{name}"
        held = self.store.files().get(str(target), ("", 0, 0, []))[3]
        if held and [d.text for d in docs] == [getattr(self.store.document(d), "text", None) for d in held]:
            outcome.status, outcome.doc_ids = "unchanged", held
            outcome.reason = "the article has not changed since it was added"
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(folder / name, page.data)
        except OSError as exc:
            outcome.status, outcome.reason = "rejected", f"cannot store the page ({exc.strerror})"
            return
        sources[name] = page.url
        outcome.status = "indexing"
        key = str((folder / name).resolve())
        stored[key] = outcome
        read[key] = ReadFile(hashlib.sha256(page.data).hexdigest(), docs, warnings, chunks)

    def _index_stored(self, stored: dict[str, FileOutcome], progress: Progress, read: dict[str, ReadFile]) -> None:
        """Index the library (taking the stored files as they were `read` when checked) and give each stored
        file's outcome from what the run did with it."""
        if not stored:
            return
        report = self._reindex(progress, read)
        done = {**{p: "added" for p in report.added}, **{p: "updated" for p in report.updated},
                **{p: "unchanged" for p in report.unchanged}}
        skipped = dict(report.skipped)
        files_now = self.store.files()
        root = self.root()
        for path, outcome in stored.items():
            outcome.warnings = [w[len(path) + 2:] for w in report.warnings if w.startswith(path + ": ")]
            if path in skipped:  # its records' ids belong to other files, it changed on disk in between, …
                outcome.status, outcome.reason = "rejected", skipped[path]
                # Not left where every later run would read it again (and, once an id's owner is removed,
                # index it): set aside with the removed files, for the user to see.
                if Path(path).is_file():
                    _move_to_trash(Path(path), root)
                    outcome.reason += f"; the file was set aside in {REMOVED}/"
                outcome.stored_as = ""
            else:
                outcome.status = done.get(path, "added")
                outcome.doc_ids = files_now.get(path, ("", 0, 0, []))[3]

    def _store(self, name: str, data: bytes, outcome: FileOutcome, root: Path, uploads: Path, staging: Path,
               known: dict[str, str], stored: dict[str, FileOutcome], read: dict[str, ReadFile]) -> None:
        safe = sanitize_name(name)
        if Path(safe).suffix.lower() not in SUPPORTED:
            outcome.status = "rejected"
            outcome.reason = f"unsupported file type; supported: {', '.join(SUPPORTED)}"
            return
        sha = hashlib.sha256(data).hexdigest()
        if sha in known:  # the same content is stored once
            outcome.status, outcome.stored_as = "unchanged", _relative(known[sha], root)
            outcome.reason = f"already in the library as {outcome.stored_as}"
            outcome.doc_ids = self.store.files().get(known[sha], ("", 0, 0, []))[3]  # [] while in this batch
            return
        target = uploads / safe
        if str(target) in stored:
            outcome.status = "rejected"
            outcome.reason = f"another file of this upload is also stored as {safe}; rename one and upload it again"
            return
        staged = staging / f"{uuid.uuid4().hex}{Path(safe).suffix.lower()}"
        try:
            staged.write_bytes(data)
            docs, warnings = read_bounded(target, read_file(staged, self.config.max_file_mb), self.config.read_seconds,
                                          ocr=self.config.ocr, max_chars=self.config.max_file_chars)
            chunks = chunk_file(str(target), docs, self.config)
            uploads.mkdir(exist_ok=True)
            if target.exists():  # a new version: the one it replaces is kept, as a removed one is
                _move_to_trash(target, root)
            os.replace(staged, target)
        except LoadError as exc:
            outcome.status, outcome.reason = "rejected", exc.reason
            return
        except OSError as exc:
            outcome.status, outcome.reason = "rejected", f"cannot store the file ({exc.strerror})"
            return
        finally:
            staged.unlink(missing_ok=True)
        known[sha] = str(target)
        outcome.status, outcome.stored_as = "indexing", _relative(str(target), root)
        stored[str(target)] = outcome
        read[str(target.resolve())] = ReadFile(sha, docs, warnings, chunks)

    def remove(self, doc_id: str, progress: Progress = no_progress) -> list[str]:
        """Move the files holding `doc_id` to `<library>/.removed/` and index; returns the files moved.

        A file that holds other documents too (a .jsonl) is not touched: edit it and run `assistant index`."""
        with self._lock:
            if self.store.document(doc_id) is None:
                raise LookupError(f"no document with id {doc_id!r}")
            holders = [p for p, (_, _, _, ids) in self.store.files().items() if doc_id in ids]
            for path in holders:
                others = [d for d in self.store.files()[path][3] if d != doc_id]
                if others:
                    raise LibraryError(f"{Path(path).name} holds {len(others) + 1} documents; remove this one from "
                                       "that file and run `assistant index`")
            folders = [p for p in self.paths() if p.is_dir()]
            bases = {}
            for path in holders:
                source = Path(path)
                base = next((f for f in folders if source.is_relative_to(f)), None)
                if base is None and source.exists():  # the indexing run would keep it
                    raise LibraryError(f"{source} is not inside a library folder; delete or move it yourself, "
                                       "then run `assistant index`")
                bases[source] = base
            moved = [_move_to_trash(source, base) for source, base in bases.items() if base and source.exists()]
            self._reindex(progress)
            return moved

    def remove_file(self, name: str, progress: Progress = no_progress) -> list[str]:
        """Move the library file `name` (relative to the library folder, e.g. "uploads/report.pdf") to
        `<library>/.removed/` and index: every document it brought goes, and a file that was never
        indexed (refused, or stuck) goes too. Returns the files moved; LookupError when there is none."""
        with self._lock:
            root = self.root()
            target = (root / name).resolve()
            if not target.is_relative_to(root.resolve()) or any(part.startswith(".") for part in Path(name).parts):
                raise LookupError(f"no file {name!r} in the library")
            if not target.is_file():
                raise LookupError(f"no file {name!r} in the library {root}")
            moved = [_move_to_trash(target, root.resolve())]
            self._reindex(progress)
            return moved

    def documents(self, query: str = "", offset: int = 0, limit: int = 50,
                  collection: str | None = None) -> tuple[int, list[DocumentInfo]]:
        """(how many match, one page of them): the documents whose title holds `query` (in `collection`, when
        named), newest first."""
        total, rows = self.store.document_list(query, offset, limit, collection)
        return total, [DocumentInfo(d, t or "", date or "", s or "", Path(p).name if p else "",
                                    Path(p).suffix.lower().lstrip(".") if p else "",
                                    len(json.loads(pages)) if pages else None, n, added or "",
                                    json.loads(notes) if notes else [],
                                    [cut_in_chinese(w) for w in json.loads(notes)] if notes else [])
                       for d, t, date, s, p, pages, n, added, notes in rows]


def link_file_name(url: str, suffix: str) -> str:
    """A stable file name for the page at `url`: the same link is always stored as the same file."""
    parts = urlsplit(url)
    tail = sanitize_name(f"{parts.hostname or 'link'} {parts.path.strip('/').replace('/', ' ')}")[:60]
    return f"{tail}-{hashlib.sha256(url.encode()).hexdigest()[:10]}{suffix}"


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    partial.write_bytes(data)
    os.replace(partial, path)


def _move_to_trash(path: Path, base: Path) -> str:
    """Move `path` (inside the library folder `base`) to `base/.removed/<time>/`; returns where it was."""
    target = base / REMOVED / time.strftime("%Y%m%d-%H%M%S") / path.relative_to(base)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return _relative(str(path), base)


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    return str(p.relative_to(root)) if p.is_relative_to(root) else p.name


@dataclass
class Job:
    """A background change of the library: progress while it runs, each file's outcome, the error if it failed."""

    id: str
    kind: str  # "upload", "links" or "remove"
    state: str = "queued"  # queued, running, done, failed
    stage: str = ""  # "reading", "embedding", "sentences"
    done: int = 0
    total: int = 0
    files: list[FileOutcome] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    error: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def to_dict(self) -> dict:
        """As JSON; each reason and what a limit cut also in Chinese (`reason_zh`, `warnings_zh`, `error_zh`),
        for the Library view."""
        out = asdict(self)
        for f in out["files"]:
            f["reason_zh"] = in_chinese(f["reason"])
            f["warnings_zh"] = [cut_in_chinese(w) for w in f["warnings"]]
        out["error_zh"] = in_chinese(self.error)
        return out


# The nice value of the thread that runs library changes: the cores go to questions first. The threads
# it starts inherit it: the embedding engine's OpenMP team (libgomp keeps one per calling thread) and the
# reader process.
JOB_NICENESS = 10


def _yield_to_questions(answering: Callable[[], bool]) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: the jobs run at the server's priority
        pass
    yield_to(answering)  # an OS priority does not reach Python's GIL: the interpreter's time is paced too


class LibraryBusy(LibraryError):
    """Too many library changes are waiting; the message says to try again."""


class Jobs:
    """Runs library changes in one background thread, one at a time, while questions are answered
    from the last committed index. At most `waiting` changes are queued or running (each upload
    waits with its files in memory); the most recent `keep` finished jobs are kept for polling."""

    def __init__(self, library: Library, keep: int = 200, waiting: int = 4):
        self.library = library
        self.keep, self.waiting = keep, waiting
        self._new_lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="library", initializer=_yield_to_questions,
                                        initargs=(library.answering,))
        self._fetching = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fetch")

    def ready(self) -> None:
        self.library.root()

    def has_file(self, name: str) -> bool:
        root = self.library.root()
        return (root / name).is_file() and not name.startswith(("/", ".")) and ".." not in name.split("/")

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def upload(self, files: list[tuple[str, bytes]], collection: str | None = None) -> Job:
        job = self._new("upload")
        job.files = [FileOutcome(name) for name, _ in files]
        return self._submit(job, lambda: self.library.add(files, self._progress(job), job.files, collection))

    def remove(self, doc_id: str) -> Job:
        job = self._new("remove")

        def run():
            job.removed = self.library.remove(doc_id, self._progress(job))

        return self._submit(job, run)

    def add_urls(self, urls: list[str], collection: str | None = None) -> Job:
        """Links are fetched by a pool of their own, then indexed in turn with the other changes: a slow link
        delays only its own job."""
        job = self._new("links")
        job.files = [FileOutcome(url) for url in urls]

        def fetched() -> None:
            job.state = "running"
            try:
                pages = self.library.fetch(urls, job.files, self._progress(job))
            except Exception as exc:  # noqa: BLE001 (reported on the job, as _submit does)
                job.state, job.error, job.finished = "failed", str(exc) or type(exc).__name__, time.time()
                return
            self._submit(job, lambda: self.library.add_urls(urls, self._progress(job), job.files, collection, pages))

        self._fetching.submit(fetched)
        return job

    def remove_file(self, name: str) -> Job:
        job = self._new("remove")

        def run():
            job.removed = self.library.remove_file(name, self._progress(job))

        return self._submit(job, run)

    def _new(self, kind: str) -> Job:
        with self._new_lock:
            if sum(j.finished is None for j in self._jobs.values()) >= self.waiting:
                raise LibraryBusy(f"{self.waiting} library changes are already waiting; try again when one "
                                  "has finished")
            job = Job(uuid.uuid4().hex[:12], kind)
            self._jobs[job.id] = job
            finished = [i for i, j in self._jobs.items() if j.finished is not None]
            for old in finished[: max(0, len(finished) - self.keep)]:
                del self._jobs[old]
            return job

    def _submit(self, job: Job, run: Callable[[], None]) -> Job:
        def wrapped():
            job.state = "running"
            resume()
            try:
                run()
                job.state = "done"
            except Exception as exc:  # reported on the job and in the server log; the server goes on
                job.state, job.error = "failed", str(exc) or type(exc).__name__
                log.error("library job %s (%s) failed: %s", job.id, job.kind, job.error,
                          exc_info=not isinstance(exc, (LibraryError, LookupError, LoadError)))
            finally:
                job.finished = time.time()

        self._pool.submit(wrapped)
        return job

    @staticmethod
    def _progress(job: Job) -> Progress:
        def start(label: str, total: int):
            job.stage, job.done, job.total = label, 0, total

            def advance(n: int) -> None:
                if job.stage == label:  # a later stage (a file's OCR pages) has taken the job's counters
                    job.done += n

            return advance

        return start

    def close(self) -> None:
        self._fetching.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)

