"""Reading a file within a time limit.

A reader is third-party code (pypdf, trafilatura, openpyxl, OCR, …) on untrusted bytes: a file can make
it run for hours. Each file is therefore read in a child process that is killed past the `read_seconds`
budget. Children are forked from a forkserver that has imported the readers once, so a file costs a
fork (milliseconds), and a server's threads are never forked.
"""

from __future__ import annotations

from pathlib import Path

from .base import Document, LoadError
from .formats import load_file

_FORKSERVER = None
# The part of the time limit that OCR of a scanned PDF may start pages in: the page under way, and
# what follows it, must end within the limit too, or the whole file would be refused.
OCR_SHARE = 0.6


def _forkserver():
    global _FORKSERVER
    if _FORKSERVER is None:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["assistant.load"])
        _FORKSERVER = context
    return _FORKSERVER


def _read_in_child(conn, path: str, data: bytes, ocr: bool, seconds: float) -> None:
    try:
        conn.send(("read", load_file(path, data, ocr=ocr, ocr_seconds=OCR_SHARE * seconds)))
    except LoadError as exc:
        conn.send(("refused", exc.reason))
    except BaseException as exc:  # a reader's own error (pypdf's LimitReachedError, a RecursionError, …)
        conn.send(("refused", reader_failure(exc)))
    finally:
        conn.close()


def reader_failure(exc: BaseException) -> str:
    """The reason given for a file whose reader raised something other than LoadError."""
    return (f"the file could not be read ({type(exc).__name__}: {str(exc)[:200]}); re-export or re-save it, "
            "or remove it from the library")


def load_file_bounded(path: str | Path, data: bytes, seconds: float, *,
                      ocr: bool = True) -> tuple[list[Document], list[str]]:
    """`load_file`, refused with a LoadError when reading takes longer than `seconds` (0: no limit,
    read in this process; OCR starts pages within OCR_SHARE of it). Whatever a reader raises becomes a
    LoadError naming the file."""
    if seconds <= 0:
        try:
            return load_file(path, data, ocr=ocr)
        except LoadError:
            raise
        except Exception as exc:
            raise LoadError(path, reader_failure(exc)) from exc
    context = _forkserver()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_read_in_child, args=(sender, str(path), data, ocr, seconds), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            raise LoadError(path, f"reading it took longer than read_seconds ({seconds:g} s), so it was stopped; "
                                  "split the file, or raise read_seconds")
        status, value = receiver.recv()
    except EOFError:
        child.join(5)
        raise LoadError(path, f"the reader stopped without a result (exit code {child.exitcode}; out of memory?); "
                              "split or re-export the file") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    if status == "refused":
        raise LoadError(path, value)
    return value
