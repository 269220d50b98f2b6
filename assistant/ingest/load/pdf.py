"""PDF (.pdf): the text of each page; a page without a usable text layer (a scan) is read by OCR."""

from __future__ import annotations

import io
import logging
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from ...document import LAYOUT, Document
from .base import (Checkpoint, LoadError, PageProgress, Partial, TextLimit, new_document, no_checkpoint,
                   too_much_text)
from .lines import join_wrapped_lines

# Many PDF fonts map Chinese glyphs to the look-alike radical code points (⼀ U+2F00 for 一, ⻓ U+2ED3
# for 长): they read the same but match no word, so jieba and the model would see noise. The Kangxi
# radicals have a compatibility form (NFKC); of the supplement, the whole characters of running
# text are mapped here (Unicode's EquivalentUnifiedIdeograph.txt), the stroke-only forms are left.
# Latin ligatures (ﬁ, ﬂ) are split back into letters for the same reason.
_RADICALS = {cp: unicodedata.normalize("NFKC", chr(cp))
             for cp in [*range(0x2F00, 0x2FD6), *range(0xFB00, 0xFB07)]}
_RADICALS |= {ord(r): c for r, c in zip("⺟⺠⺩⺬⻁⻄⻅⻆⻉⻋⻑⻓⻔⻘⻙⻚⻛⻜⻝⻢⻣⻤⻥⻦⻧⻨⻩⻪⻬⻮⻰⻳",
                                        "母民王示虎西见角贝车長长门青韦页风飞食马骨鬼鱼鸟卤麦黄黾齐齿龙龟")}

# Scanned pages read by OCR in one file at most; each takes a few seconds on 2 cores (see `load_pdf`'s
# `ocr_seconds` for the time limit).
OCR_PAGES = 100
# A scanned page is rendered with its longer side this many pixels (about 180 dpi for A4), never above
# 300 dpi: the detector sees at most images.DETECT_SIDE, the recogniser reads lines at this resolution.
RENDER_SIDE = 2000
MAX_DPI = 300


def _usable(text: str) -> bool:
    """Whether a page's text layer is text: some, and not mostly replacement (U+FFFD) or private-use
    characters, which is what a PDF whose fonts lack a Unicode map gives."""
    chars = [c for c in text if not c.isspace()]
    garbled = sum(1 for c in chars if c == "\ufffd" or unicodedata.category(c) in ("Co", "Cc"))
    return bool(chars) and garbled <= 0.5 * len(chars)


class _TooMuchText(BaseException):
    """Raised from pypdf's text visitor when the file passes its TextLimit. Not an Exception: pypdf
    catches those around each form XObject it reads, and would go on through the rest of a bomb of
    nested forms."""


class _SkippedForms(logging.Handler):
    """Catches pypdf's one warning that it stopped reading a page's forms (its limit of form XObject
    invocations, 5,000 by default): what it skipped is a cut the user is told of, not a line in a log."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.skipped, self.limit = False, ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "form XObject invocations" in message:
            self.skipped = True
            self.limit = next((f" of {int(w):,}" for w in message.split() if w.isdigit()), "")


def _page_text(page, limit: TextLimit, number: int, warnings: list[str]) -> str:
    """A page's text layer, stopped as soon as the file's text passes `limit`; a page whose nested forms
    pypdf stopped reading is named in `warnings`."""
    seen = 0

    def count(text, *_) -> None:
        nonlocal seen
        seen += len(text)
        if limit.chars and limit.used + seen > limit.chars:
            raise _TooMuchText

    skipped = _SkippedForms()
    pypdf_log = logging.getLogger("pypdf")
    pypdf_log.addHandler(skipped)
    try:
        text = join_wrapped_lines((page.extract_text(visitor_text=count) or "").strip().translate(_RADICALS))
    finally:
        pypdf_log.removeHandler(skipped)
    limit.take(len(text))
    if skipped.skipped:
        warnings.append(f"page {number}: its forms were read up to pypdf's limit{skipped.limit} form invocations and "
                        "the rest of the page was not read (a page of nested forms?)")
    return text


def load_pdf(path: Path, data: bytes, warnings: list[str], ocr: bool, ocr_seconds: float = 0,
             on_page: PageProgress | None = None, limit: TextLimit | None = None,
             checkpoint: Checkpoint = no_checkpoint) -> Document:
    """The PDF's text, page by page. With `ocr`, a page without a usable text layer is read by OCR. No page
    (of text or of OCR) is started `ocr_seconds` after reading began (0: no limit), so that a long file is
    indexed as far as it was read, what was not read named in `warnings`, rather than refused whole when
    reading runs out of time. `on_page(done, total)` is called after each page OCR reads (or fails to)."""
    from pypdf import PdfReader

    limit = limit or TextLimit(path)
    deadline = time.monotonic() + ocr_seconds if ocr_seconds > 0 else float("inf")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(path, "encrypted PDF; save a copy without a password and index that")
        texts: list[str] = []
        info = reader.metadata or {}
        pages = len(reader.pages)
        for page in reader.pages:
            if time.monotonic() > deadline:
                warnings.append(f"read {len(texts)} of {len(reader.pages)} pages: reading stopped after {ocr_seconds:g} "
                                f"s, part of read_seconds; pages {len(texts) + 1}–{len(reader.pages)} were not read: "
                                "split the PDF, or raise read_seconds")
                break
            texts.append(_page_text(page, limit, len(texts) + 1, warnings))
            checkpoint(lambda: Partial([_document(path, texts, {}, info)], list(warnings), len(texts), pages, "pages"))
    except _TooMuchText:
        raise LoadError(path, too_much_text(limit.chars)) from None
    except LoadError:
        raise
    except Exception as exc:  # pypdf's own errors, its LimitReachedError among them, and whatever it trips on
        raise LoadError(path, f"corrupt or unsupported PDF ({type(exc).__name__}: {str(exc)[:200]}); re-export "
                              "or re-download it") from exc
    scanned = [n for n, text in enumerate(texts) if not _usable(text)] if ocr else []
    read = _ocr_pages(data, scanned, texts, warnings, deadline, on_page, limit,
                      lambda read, left: checkpoint(lambda: Partial([_document(path, texts, read, info)], list(warnings),
                                                                    len(texts) - left, len(texts), "pages"))
                      ) if scanned else {}
    if not any(texts):
        if not ocr:
            raise LoadError(path, "the PDF has no extractable text (a scan?); switch OCR on (ocr = true) to read it")
        raise LoadError(path, "the PDF has no text layer, and OCR read no text on it"
                              + (f" ({warnings[-1]})" if warnings else ""))
    return _document(path, texts, read, info)


def _document(path: Path, texts: list[str], read: dict, info) -> Document:
    """The document of a PDF's pages `texts`, those in `read` read by OCR (see `_ocr_pages`)."""
    parts, starts, pos = [], [], 0
    for text in texts:
        starts.append(pos)
        parts.append(text)
        pos += len(text) + 2
    title = str(info.get("/Title") or "").strip() or path.stem
    meta = {}
    if read:
        meta[LAYOUT] = {"ocr": [{**page, "page": n + 1, "lines": [[starts[n] + a, starts[n] + b, box]
                                                                  for a, b, box in page["lines"]]}
                                for n, page in read.items()]}
    return new_document(path, "\n\n".join(parts), title=title, author=str(info.get("/Author") or "").strip(),
                        pages=starts, meta=meta)


def _ocr_pages(data: bytes, pages: list[int], texts: list[str], warnings: list[str], deadline: float,
               on_page: PageProgress | None, limit: TextLimit, seen: Callable[[dict, int], None]) -> dict:
    """Read `pages` (0-based) by OCR into `texts`; {page: {"width", "height", "lines"}} of those read.
    A page that cannot be read keeps its text layer and is named in `warnings`; the others go on.
    `seen(read, left)` after each page tried, `left` the pages still to try."""
    import pypdfium2

    from .images import ocr_page

    if len(pages) > OCR_PAGES:
        warnings.append(f"read {OCR_PAGES} of {len(pages)} pages without a text layer by OCR (OCR_PAGES, the most in "
                        f"one file); pages {pages[OCR_PAGES] + 1}–{pages[-1] + 1} were not read: split the PDF")
        pages = pages[:OCR_PAGES]
    read = {}
    try:
        pdf = pypdfium2.PdfDocument(data)
    except Exception as exc:  # pypdf read it, pdfium does not
        warnings.append(f"the scanned pages could not be rendered for OCR ({type(exc).__name__}: {str(exc)[:200]})")
        return read
    try:
        for i, n in enumerate(pages):
            if i:
                seen(read, len(pages) - i)
            if time.monotonic() > deadline:
                warnings.append(f"read {i} of {len(pages)} pages without a text layer by OCR: reading stopped at its "
                                f"share of read_seconds; pages {n + 1}–{pages[-1] + 1} were not read: split the PDF, "
                                "or raise read_seconds")
                break
            try:
                page = pdf[n]
                width, height = page.get_size()
                image = page.render(scale=min(RENDER_SIDE / max(width, height), MAX_DPI / 72)).to_pil()
                text, lines = ocr_page(image)
            except Exception as exc:  # pdfium's and onnxruntime's errors on one page
                warnings.append(f"page {n + 1}: OCR could not read it ({type(exc).__name__}: {str(exc)[:200]})")
                continue
            finally:
                if on_page:
                    on_page(i + 1, len(pages))
            if not text:
                warnings.append(f"page {n + 1}: no text layer, and OCR found no text on it")
                continue
            limit.take(len(text))
            texts[n] = text
            read[n] = {"width": image.width, "height": image.height, "lines": lines}
    finally:
        pdf.close()
    return read
