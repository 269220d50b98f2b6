"""Reading a library file within a time limit: `read_bounded` runs the format readers in a worker process.

A reader is third-party code (pypdf, trafilatura, openpyxl, OCR, …) run on untrusted bytes, and a file
can make it run for hours or raise anything. Each file is therefore read by a worker process (`python -c
…_serve`) that is killed when one file takes longer than `read_seconds`; the next file starts a new one.
The worker is started once and kept, so a file costs a round trip, not an interpreter start, and the
OCR model stays loaded between files. It is a plain subprocess rather than multiprocessing's spawn or
forkserver, which would run the caller's own `__main__` script again in the child; nor is it forked,
since a server's threads (and the embedding engine's) must not be copied into a child.

A reader that reads by parts (PDF pages, slides, rows, paragraphs, JSON lines) sends what it has read
so far now and then (`Partial`); a file stopped at the limit, or whose reader process dies (the kernel
kills it for memory), keeps the last of these, with a warning saying how much was read and why the
rest was not, rather than being refused whole.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from ...document import Document
from .base import Checkpoint, LoadError, PageProgress, Partial, no_checkpoint
from .formats import load_file

# The part of the time limit that OCR of a scanned PDF may start pages in: the page under way, and what
# follows it, must end within the limit too, or the whole file would be refused (the pages not started
# are named in a warning, the rest of the file is indexed).
OCR_SHARE = 0.6
# How often the worker sends what it has read so far (`Partial`): this share of the time limit at most, and
# never more than a quarter of the time (a copy of the text so far costs time on a long file).
PARTIAL_SHARE = 0.05
PARTIAL_COST = 0.25
# Seconds a new worker process may take to start (imports, on a loaded machine) before it is given a file: a
# file's time limit starts when the worker is ready, not with the interpreter.
START_SECONDS = 60.0


def reader_failure(exc: BaseException) -> str:
    """The reason given for a file whose reader raised something other than LoadError."""
    return (f"the file could not be read ({type(exc).__name__}: {str(exc)[:200]}); re-export or re-save it, "
            "or remove it from the library")


def read_here(path: str | Path, data: bytes, ocr: bool = True, seconds: float = 0,
              on_page: PageProgress | None = None, max_chars: int = 0,
              checkpoint: Checkpoint = no_checkpoint) -> tuple[list[Document], list[str]]:
    """`load_file` in this process, whatever a reader raises turned into a LoadError naming the file."""
    try:
        return load_file(path, data, ocr=ocr, ocr_seconds=OCR_SHARE * seconds, on_page=on_page, max_chars=max_chars,
                         checkpoint=checkpoint)
    except LoadError:
        raise
    except Exception as exc:  # pypdf's LimitReachedError, a RecursionError deep in a parser, …
        raise LoadError(path, reader_failure(exc)) from exc


class _Worker:
    """The worker process and its end of a socket pair; one file at a time."""

    # What the worker process runs ({fd}: its end of the socket pair). A test runs a reader made slow in it.
    code = "from assistant.ingest.load.bounded import _serve; _serve({fd})"

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        self.partial: Partial | None = None  # the last of what the file being read sent
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.code.format(fd=theirs.fileno())],
            pass_fds=[theirs.fileno()],
            # Its own process group: Ctrl-C in a terminal reaches the indexing run, which stops the worker itself.
            # Not its own session: Linux's autogroup scheduler gives each session an equal share of the CPU
            # whatever its processes' nice values, so a reader in a session of its own took as much CPU as the
            # whole server beside it; in the server's session it keeps the lower priority of the thread that
            # started it (library.JOB_NICENESS).
            stdin=subprocess.DEVNULL, process_group=0, env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
        theirs.close()
        self.connection = Connection(ours.detach())
        self.started = False

    def start(self) -> None:
        """Wait for the process to say it is ready; EOFError when it died, TimeoutError past START_SECONDS."""
        if not self.connection.poll(START_SECONDS):
            raise TimeoutError
        self.connection.recv_bytes()
        self.started = True

    def read(self, path: str, data: bytes, ocr: bool, seconds: float, on_page: PageProgress | None,
             max_chars: int) -> tuple[str, object]:
        if not self.started:
            self.start()
        self.connection.send_bytes(pickle.dumps((path, data, ocr, seconds, max_chars),
                                                protocol=pickle.HIGHEST_PROTOCOL))
        deadline = time.monotonic() + seconds
        self.partial = None
        while True:  # OCR's page messages and what was read so far, then the result
            if not self.connection.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError
            status, value = pickle.loads(self.connection.recv_bytes())
            if status == "partial":
                self.partial = value
            elif status != "page":
                return status, value
            elif on_page:
                on_page(*value)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.connection.close()


_worker: _Worker | None = None
_lock = threading.Lock()


def read_bounded(path: str | Path, data: bytes, seconds: float, *, ocr: bool = True,
                 on_page: PageProgress | None = None, max_chars: int = 0) -> tuple[list[Document], list[str]]:
    """The documents in one file and the warnings about it, as `load_file` gives them, read by the worker
    process; a LoadError naming the file when reading takes longer than `seconds`, when the reader fails,
    or when the worker dies (out of memory). `seconds` <= 0 reads in this process, with no limit.
    `ocr`: read images and scanned PDF pages by OCR (the `ocr` setting); `on_page(done, total)` follows
    the pages of a PDF that OCR reads; `max_chars`: the `max_file_chars` setting (see `load_file`)."""
    global _worker
    if seconds <= 0:
        return read_here(path, data, ocr, on_page=on_page, max_chars=max_chars)
    with _lock:  # one worker per process: indexing reads one file at a time
        if _worker is None or _worker.process.poll() is not None:
            _worker = _Worker()
        try:
            status, value = _worker.read(str(path), data, ocr, seconds, on_page, max_chars)
        except TimeoutError:
            _worker.stop()
            partial, _worker = _worker.partial, None
            if partial is not None:
                return partial.docs, [*partial.warnings, partial.notice(seconds)]
            raise LoadError(path, f"reading it took longer than read_seconds ({seconds:g} s), so it was stopped; "
                                  "split the file, or raise read_seconds") from None
        except (EOFError, OSError):  # the process died: killed for memory by the kernel, most likely
            code = _worker.process.wait()
            _worker.connection.close()
            partial, _worker = _worker.partial, None
            if partial is not None:  # what was read before it died is kept, as at read_seconds
                return partial.docs, [*partial.warnings, partial.died(code)]
            raise LoadError(path, f"the reader stopped without a result (exit code {code}; out of memory?); "
                                  "split or re-export the file") from None
    if status == "refused":
        raise LoadError(path, value)  # type: ignore[arg-type]
    return value  # type: ignore[return-value]


def _serve(fd: int) -> None:
    connection = Connection(fd)
    connection.send_bytes(pickle.dumps(("ready", None)))
    while True:
        try:
            path, data, ocr, seconds, max_chars = pickle.loads(connection.recv_bytes())
        except EOFError:  # the parent closed its end: it is done, or gone
            return
        def page(done: int, total: int) -> None:
            connection.send_bytes(pickle.dumps(("page", (done, total))))

        try:
            reply = ("read", read_here(path, data, ocr, seconds, page, max_chars, _Sender(connection, seconds)))
        except LoadError as exc:
            reply = ("refused", exc.reason)
        connection.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))



class _Sender:
    """The worker's `Checkpoint`: sends what the file being read has given so far, every PARTIAL_SHARE of
    the time limit at most, and less often when making it takes long (PARTIAL_COST)."""

    def __init__(self, connection: Connection, seconds: float):
        self.connection = connection
        self.every = PARTIAL_SHARE * seconds
        self.due = time.monotonic() + self.every

    def __call__(self, build) -> None:
        started = time.monotonic()
        if started < self.due:
            return
        part = build()
        if part.docs:
            self.connection.send_bytes(pickle.dumps(("partial", part), protocol=pickle.HIGHEST_PROTOCOL))
        self.due = time.monotonic() + max(self.every, (time.monotonic() - started) / PARTIAL_COST)
