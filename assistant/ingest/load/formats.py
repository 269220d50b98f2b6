"""One file's documents: the reader of its format, then the bounds every document is held to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ...config import Config
from ...document import Document
from .base import Checkpoint, LoadError, PageProgress, Partial, TextLimit, bound_metadata, decode, no_checkpoint
from .files import read_file, unsupported
from .html import load_html
from .images import load_image
from .jsonl import load_jsonl
from .markdown import load_markdown
from .office import load_csv, load_docx, load_pptx, load_xlsx
from .pdf import load_pdf
from .text import load_text


def load_file(path: str | Path, data: bytes | None = None, *, ocr: bool = True, ocr_seconds: float = 0,
              on_page: PageProgress | None = None, max_chars: int = 0,
              checkpoint: Checkpoint = no_checkpoint) -> tuple[list[Document], list[str]]:
    """The documents in one file (several for .jsonl) and warnings about parts that were skipped or cut.

    `data`: the file's bytes when the caller has read them (`read_file`). `ocr`: read images and the
    pages of a PDF that have no text layer by OCR (the `ocr` setting); no PDF page is started after
    `ocr_seconds` (0: no limit); `on_page(done, total)` follows those pages. `max_chars`: the most text the
    file may extract to (`max_file_chars`, 0: no limit), checked while it is read. `checkpoint`: given what
    has been read so far after each part of a file read by parts (PDF pages, slides, rows, paragraphs,
    records), held to the same bounds as the whole file's documents. Raises LoadError when nothing in the
    file can be read, or when it extracts to more than `max_chars`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    warnings: list[str] = []
    if data is None:
        data = read_file(path, Config().max_file_mb)
    if not data.strip():
        raise LoadError(path, "empty file; add text or remove it from the library")
    limit = TextLimit(path, max_chars)

    def seen(build: Callable[[], Partial]) -> None:
        def bounded() -> Partial:
            part = build()
            # Copies: bounding a document changes it, and the reader goes on with its own.
            part.docs = [replace(doc, meta=dict(doc.meta)) for doc in part.docs if doc.text.strip()]
            for doc in part.docs:
                bound_metadata(doc, part.warnings)
            return part

        checkpoint(bounded)

    def text() -> str:  # a text format's characters are what its bytes decode to
        decoded = decode(data, path)
        limit.take(len(decoded))
        return decoded

    if suffix == ".pdf":
        docs = [load_pdf(path, data, warnings, ocr, ocr_seconds, on_page, limit, seen)]
    elif suffix == ".jsonl":
        docs = load_jsonl(path, text(), warnings, seen)
    elif suffix in (".html", ".htm"):
        docs = [load_html(path, text())]
    elif suffix in (".md", ".markdown"):
        docs = [load_markdown(path, text(), warnings)]
    elif suffix == ".txt":
        docs = [load_text(path, text())]
    elif suffix == ".docx":
        docs = [load_docx(path, data, warnings, limit, seen)]
    elif suffix == ".xlsx":
        docs = [load_xlsx(path, data, warnings, limit, seen)]
    elif suffix == ".csv":
        docs = [load_csv(path, data, warnings, limit, seen)]
    elif suffix == ".pptx":
        docs = [load_pptx(path, data, warnings, limit, seen)]
    elif suffix in (".png", ".jpg", ".jpeg", ".webp"):
        docs = [load_image(path, data, ocr)]
    else:
        raise LoadError(path, unsupported(path))
    for doc in docs:
        if not doc.text.strip():
            raise LoadError(path, "no text found in the file")
        bound_metadata(doc, warnings)
    return docs, warnings
