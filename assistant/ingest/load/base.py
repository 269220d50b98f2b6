"""What every reader shares: the `Document` it makes, the `LoadError` it raises, text decoding and
the bounds on metadata."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...document import LAYOUT, Document
from ...text import detect_lang

# Longest metadata values kept (characters); longer ones are cut with a warning. Titles are
# embedded with every chunk of their document, so an unbounded title costs memory per chunk.
FIELD_LIMITS = {"title": 300, "author": 200, "date": 100, "source": 2000}
META_VALUE_CHARS = 1000
META_KEYS = 50
# A document's language is told from its beginning: the check costs memory per character.
LANG_SAMPLE_CHARS = 20_000
# Called as OCR reads each page of a file: (pages done, pages to read).
PageProgress = Callable[[int, int], None]


@dataclass
class Partial:
    """What a reader has read of a file so far: the documents as they would be if it stopped now, its
    warnings, and how far it got (`done` of `total` `unit`s; total 0 when the reader cannot tell)."""

    docs: list[Document]
    warnings: list[str]
    done: int
    total: int
    unit: str  # "pages", "slides", "rows", "paragraphs", "records"

    def notice(self, seconds: float) -> str:
        """The warning of a file whose reader was stopped at `read_seconds` after this much."""
        return (f"read {self._read()}: reading took longer than read_seconds ({seconds:g} s) and was stopped; the "
                "rest of the file was not read: split the file, or raise read_seconds")

    def died(self, code: int | None) -> str:
        """The warning of a file whose reader process died (killed for memory, most likely) after this much."""
        return (f"read {self._read()}: the reader stopped without a result (exit code {code}; out of memory?); the "
                "rest of the file was not read: split or re-export the file")

    def _read(self) -> str:
        return f"{self.done} of {self.total} {self.unit}" if self.total else f"the first {self.done} {self.unit}"


# Called by a reader after each part (page, slide, row, paragraph, record) it reads, with a function that
# makes the `Partial` of what it has read; the caller decides whether to make it (it costs a copy of the
# text so far). A reader stopped at `read_seconds` keeps the last one made (`read_bounded`).
Checkpoint = Callable[[Callable[[], Partial]], None]


def no_checkpoint(_: Callable[[], Partial]) -> None:
    pass


class TextLimit:
    """The characters one file may extract to (the `max_file_chars` setting; 0: no limit), counted by its
    reader while it reads, so that a small file that unpacks to millions of characters (a PDF of nested
    forms, a sheet of long rows) is refused before it costs memory, not after."""

    def __init__(self, path: str | os.PathLike[str], chars: int = 0):
        self.path, self.chars, self.used = path, chars, 0

    def take(self, n: int) -> None:
        self.used += n
        if self.chars and self.used > self.chars:
            raise LoadError(self.path, too_much_text(self.chars))


def too_much_text(chars: int) -> str:
    return (f"it extracts to more than {chars:,} characters of text (max_file_chars); split it into smaller "
            "files, or raise max_file_chars")


class LoadError(Exception):
    """A file of the library that could not be read; str() names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = printable(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def content_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def printable(path: str | os.PathLike[str]) -> str:
    """A path as text that prints and stores whatever bytes its name holds (undecodable ones as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def decode(data: bytes, path: str | Path) -> str:
    """Text of `data`, its encoding detected; binary data and undecodable bytes raise LoadError."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        if b"\x00" in data[:8192]:
            raise LoadError(path, "binary data, not text; remove it or give it the right file extension")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = _decode_legacy(data, path)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    controls = sum(1 for c in text[:8192] if ord(c) < 32 and c not in "\n\t\f")
    if controls > 0.05 * min(len(text), 8192):
        raise LoadError(path, "binary data, not text; remove it or give it the right file extension")
    return text


def _decode_legacy(data: bytes, path: str | Path) -> str:
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise LoadError(path, "unreadable text encoding; save the file as UTF-8 and index again")
    return str(best)


def bound_metadata(doc: Document, warnings: list[str]) -> None:
    for name, limit in FIELD_LIMITS.items():
        value = getattr(doc, name)
        if len(value) > limit:
            setattr(doc, name, value[: limit - 1] + "…")
            warnings.append(f"{doc.doc_id}: the {name} is {len(value)} characters long; cut to {limit}")
    # The layout is the reader's, bounded by the reader's own limits (rows, slides, OCR pages).
    layout = doc.meta.pop(LAYOUT) if isinstance(doc.meta.get(LAYOUT), dict) else None
    if len(doc.meta) > META_KEYS:
        warnings.append(f"{doc.doc_id}: {len(doc.meta)} metadata fields; only the first {META_KEYS} are kept")
    doc.meta = {k[:100]: v[:META_VALUE_CHARS] for k, v in list(doc.meta.items())[:META_KEYS]}
    if layout is not None:
        doc.meta[LAYOUT] = layout


def lang_of(text: str) -> str:
    return detect_lang(text[:LANG_SAMPLE_CHARS])


def new_document(path: Path, text: str, **fields) -> Document:
    return Document(doc_id=content_id(text), text=text, path=str(path), lang=lang_of(text), **fields)
