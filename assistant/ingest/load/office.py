"""Office files: Word (.docx), Excel (.xlsx), CSV (.csv) and PowerPoint (.pptx), each read with its
maintained reader (python-docx, openpyxl, the csv module, python-pptx).

A sheet is read as a table: each row becomes a line that carries its column headers ("目的地: 汉堡 |
运输方式: 海运 | 费用: 3200元"), so that a question about one row finds it and a citation can quote it;
the document remembers the sheet and row of each line (see `Document`). A slide is a page.
"""

from __future__ import annotations

import datetime
import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ...document import LAYOUT, Document
from .base import Checkpoint, LoadError, Partial, TextLimit, decode, new_document, no_checkpoint

# An Office file is a zip: a 50 MB file can unpack to gigabytes, and python-docx and python-pptx load every
# part whole, whatever it is named (the main part is found through the package's relationships, so a
# `word/document.bin` is read as well as a `.xml`). Every part counts, worksheets excepted (openpyxl
# streams them row by row).
UNPACKED_MB = 100
SHEETS = 20
SHEET_ROWS = 10_000  # rows with a value, per sheet
ROW_CELLS = 50
CELL_CHARS = 1000
SLIDES = 500
# Blocks (paragraphs, rows, shapes) are separated by a blank line: a line break alone is read as a
# wrapped English line when the next block starts in lower case ("price: 3\nsku: A2" would be one sentence).
_BLOCK = "\n\n"


def _check_zip(path: Path, data: bytes, kind: str) -> None:
    """Refuse an Office file whose parts (its streamed worksheets aside) unpack to more than UNPACKED_MB: by
    the sizes the zip declares, before anything is inflated, then by the bytes inflating them gives."""
    limit = UNPACKED_MB * 1_000_000
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            streamed = _worksheets(archive)
            parts = [i for i in archive.infolist() if i.filename not in streamed]
            size = sum(i.file_size for i in parts)
            if size <= limit:
                size = 0
                for info in parts:
                    with archive.open(info) as part:
                        while size <= limit and (block := part.read(1 << 20)):
                            size += len(block)
    # RuntimeError: an encrypted part; NotImplementedError: a compression zipfile does not read.
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, RuntimeError, NotImplementedError) as exc:
        raise LoadError(path, f"not a readable {kind} file (not a valid zip archive: {exc}); re-save it "
                              f"from {kind}") from exc
    if size > limit:
        raise LoadError(path, f"{size / 1e6:.0f} MB or more once unpacked, more than the {UNPACKED_MB} MB read of one "
                              "Office file (a zip bomb?); split the file")


_OVERRIDE = re.compile(rb"<(?:\w+:)?Override\b[^>]*>")
_WORKSHEET = b"spreadsheetml.worksheet+xml"


def _worksheets(archive: zipfile.ZipFile) -> set[str]:
    """The parts under xl/worksheets/ that [Content_Types].xml declares worksheets: openpyxl's read-only
    mode streams those. Any other part there (shared strings moved into the folder) is read whole."""
    try:
        info = archive.getinfo("[Content_Types].xml")
    except KeyError:
        return set()
    if info.file_size > 1_000_000:
        return set()
    manifest = archive.read(info)
    sheets, others = set(), set()
    for element in _OVERRIDE.findall(manifest):
        if name := re.search(rb'PartName\s*=\s*["\']/?([^"\']+)', element):
            (sheets if _WORKSHEET in element else others).add(name[1].decode("utf-8", "replace"))
    return {s for s in sheets - others if s.startswith("xl/worksheets/")}


@contextmanager
def _reading(path: Path, kind: str) -> Iterator[None]:
    """What the reading library raises (its own errors, lxml's on bad XML) is this file's refusal, by name."""
    try:
        yield
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(path, f"corrupt or unsupported {kind} file ({type(exc).__name__}: {str(exc)[:200]}); "
                              f"re-save it from {kind}") from exc


def _day(value: object) -> str:
    return value.date().isoformat() if isinstance(value, datetime.datetime) else ""


# A date written in the document's beginning: 2024-05-06, 2024/5/6, 2024.5.6, 2024年5月6日.
_STATED = re.compile(r"(?<!\d)((?:19|20)\d\d)\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})(?!\d)")
STATED_CHARS = 2000


# The dates in the core properties of the templates python-docx and python-pptx (and the tools built on
# them) copy into every file they make: when the template was made, not the article.
TEMPLATE_DAYS = {"2013-12-23", "2013-01-27"}


def _date(text: str, modified: object) -> str:
    """The article's date: one the document states near its start, else when the file was last saved.
    Never the "created" property (a file made from Word's or PowerPoint's own template says 2013 there),
    nor a "modified" that is still the template's."""
    for m in _STATED.finditer(text[:STATED_CHARS]):
        try:
            return datetime.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:  # 2024-13-45: not a date
            continue
    day = _day(modified)
    return "" if day in TEMPLATE_DAYS else day


class _Limits:
    """Counts what was cut, for one warning per limit instead of one per cell."""

    def __init__(self):
        self.cut: dict[str, int] = {}

    def note(self, what: str, n: int = 1) -> None:
        self.cut[what] = self.cut.get(what, 0) + n

    def warn(self, warnings: list[str]) -> None:
        warnings += [what if n == 1 else f"{n} {what}" for what, n in self.cut.items()]

    def so_far(self, warnings: list[str]) -> list[str]:
        """The warnings of a file read so far (`Partial`): `warnings` and these, without changing `warnings`."""
        out = list(warnings)
        self.warn(out)
        return out


def _cell(value: object, limits: _Limits) -> str:
    """A cell as text on one line: a line break inside a cell would split its row in two sentences."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, datetime.datetime):
        value = value.date() if value.time() == datetime.time() else value.isoformat(" ", "minutes")
    text = " ".join(str(value).split())
    if len(text) > CELL_CHARS:
        limits.note(f"cells longer than {CELL_CHARS} characters were cut to that (CELL_CHARS)")
        text = text[: CELL_CHARS - 1] + "…"
    return text


def _column(n: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(n)


def _table(rows: Iterable[tuple[int, list[str]]], limits: _Limits, where: str) -> Iterator[tuple[int, str]]:
    """(row number, line) of each row with a value, read as they come. The first row with two values or more
    is the header: each later row names its values by their column's header (or letter); rows above it are
    titles. Rows past SHEET_ROWS are not read at all."""
    header: list[str] | None = None
    kept = 0
    for number, cells in rows:
        if not any(cells):
            continue
        if kept == SHEET_ROWS:
            limits.note(f"rows of {where} past the first {SHEET_ROWS} with a value were not read (SHEET_ROWS)")
            return
        kept += 1
        if len(cells) > ROW_CELLS:
            if any(cells[ROW_CELLS:]):
                limits.note(f"rows of {where} had more than {ROW_CELLS} cells; the rest were not read (ROW_CELLS)")
            cells = cells[:ROW_CELLS]
        if header is None and sum(1 for c in cells if c) >= 2:
            header = cells
            yield number, " | ".join(c for c in cells if c)
        elif header is None:
            yield number, " | ".join(c for c in cells if c)
        else:
            names = [header[i] if i < len(header) and header[i] else _column(i + 1) for i in range(len(cells))]
            yield number, " | ".join(f"{name}: {c}" for name, c in zip(names, cells) if c)


def _collect(lines: Iterable[tuple[int, str]], limit: TextLimit, into: list[tuple[int, str]],
             seen: Callable[[], None]) -> None:
    """Each (row number, line) into `into`, counted against `limit`; `seen()` after each."""
    for number, line in lines:
        limit.take(len(line) + len(_BLOCK))
        into.append((number, line))
        seen()


def _sheets_document(path: Path, sheets: list[tuple[str, list[tuple[int, str]]]], named: bool,
                     **fields) -> Document:
    """One document of the sheets' lines; a sheet is a page, each line's row kept in the layout."""
    parts, starts, rows, pos = [], [], [], 0
    for name, lines in sheets:
        starts.append(pos)
        block = [name] if named else []
        if named:
            pos += len(name) + len(_BLOCK)
        for number, line in lines:
            rows.append([pos, number])
            block.append(line)
            pos += len(line) + len(_BLOCK)
        text = _BLOCK.join(block)
        parts.append(text)
        pos = starts[-1] + len(text) + len(_BLOCK)
    layout = {"unit": "sheet", "sheets": [name for name, _ in sheets], "rows": rows}
    return new_document(path, _BLOCK.join(parts), pages=starts, meta={LAYOUT: layout}, **fields)


def load_xlsx(path: Path, data: bytes, warnings: list[str], limit: TextLimit,
              checkpoint: Checkpoint = no_checkpoint) -> Document:
    from openpyxl import load_workbook

    _check_zip(path, data, "Excel")
    limits = _Limits()
    with _reading(path, "Excel"):
        # Read-only streams each sheet's rows; data_only takes the values Excel saved, not formulas.
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheets: list[tuple[str, list[tuple[int, str]]]] = []
            props, many = book.properties, len(book.worksheets) > 1
            if len(book.worksheets) > SHEETS:
                warnings.append(f"{len(book.worksheets)} sheets; only the first {SHEETS} were read (SHEETS)")

            def document() -> Document:
                start = _BLOCK.join(line for _, lines in sheets[:1] for _, line in lines[:50])
                return _sheets_document(path, [(name, lines) for name, lines in sheets if lines], many,
                                        title=(props.title or "").strip() or path.stem,
                                        author=(props.creator or "").strip(), date=_date(start, props.modified))

            def seen() -> None:
                checkpoint(lambda: Partial([document()], limits.so_far(warnings),
                                           sum(len(lines) for _, lines in sheets), 0, "rows"))

            for sheet in book.worksheets[:SHEETS]:
                sheet.reset_dimensions()  # the saved dimensions may be wrong: read every row there is
                rows = ((n, [_cell(v, limits) for v in values])
                        for n, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), 1))
                sheets.append((sheet.title, []))
                _collect(_table(rows, limits, f"sheet {sheet.title!r}"), limit, sheets[-1][1], seen)
            doc = document()
        finally:
            book.close()
    limits.warn(warnings)
    return doc


def load_csv(path: Path, data: bytes, warnings: list[str], limit: TextLimit,
             checkpoint: Checkpoint = no_checkpoint) -> Document:
    import csv

    text = decode(data, path)
    try:
        dialect = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|")
    except csv.Error:  # one column, or nothing the sniffer can tell: commas
        dialect = csv.excel
    limits = _Limits()
    # Row by row, from lines cut as they are read: the reading stops at SHEET_ROWS, and only the lines kept
    # are held (a list of every row took 60 times the file's size).
    rows = ((n, [_cell(v, limits) for v in record]) for n, record in enumerate(csv.reader(_lines(text), dialect), 1))
    lines: list[tuple[int, str]] = []

    def document() -> Document:
        return _sheets_document(path, [(path.stem, lines)], False, title=path.stem)

    def seen() -> None:
        checkpoint(lambda: Partial([document()], limits.so_far(warnings), len(lines), 0, "rows"))

    try:
        _collect(_table(rows, limits, "the file"), limit, lines, seen)
    except csv.Error as exc:  # a field over csv.field_size_limit, a NUL byte
        raise LoadError(path, f"malformed CSV ({exc}); re-export it") from exc
    limits.warn(warnings)
    return document()


def _lines(text: str) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def load_docx(path: Path, data: bytes, warnings: list[str], limit: TextLimit,
              checkpoint: Checkpoint = no_checkpoint) -> Document:
    import docx

    _check_zip(path, data, "Word")
    limits = _Limits()
    with _reading(path, "Word"):
        word = docx.Document(io.BytesIO(data))
        props = word.core_properties
        blocks: list[str] = []
        heading = ""

        def document() -> Document:
            return new_document(path, _BLOCK.join(blocks), title=(props.title or "").strip() or heading or path.stem,
                                author=(props.author or "").strip(), date=_date(_BLOCK.join(blocks[:50]), props.modified))

        for text, is_heading in _word_blocks(word, limits):
            limit.take(len(text) + len(_BLOCK))
            blocks.append(text)
            heading = heading or (text if is_heading else "")
            checkpoint(lambda: Partial([document()], limits.so_far(warnings), len(blocks), 0, "paragraphs"))
        doc = document()
    limits.warn(warnings)
    return doc


def _word_blocks(word, limits: _Limits) -> Iterable[tuple[str, bool]]:
    """(text, whether it is a heading) of the paragraphs, list items and table rows, in reading order."""
    from docx.table import Table

    for block in word.iter_inner_content():
        if isinstance(block, Table):
            for _, line in _table(_word_rows(block, limits), limits, "a table"):
                yield line, False
            continue
        text = block.text.strip()
        if not text:
            continue
        style = block.style.name if block.style is not None else ""
        pr = block._p.pPr
        if style.startswith("List") or (pr is not None and pr.numPr is not None):
            yield f"- {text}", False
        else:
            yield text, style == "Title" or style.startswith("Heading")


def _word_rows(table, limits: _Limits) -> Iterable[tuple[int, list[str]]]:
    for n, row in enumerate(table.rows, 1):
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) not in seen:  # a merged cell is listed once for each column it spans
                seen.add(id(cell._tc))
                cells.append(_cell(cell.text, limits))
        yield n, cells


def load_pptx(path: Path, data: bytes, warnings: list[str], limit: TextLimit,
              checkpoint: Checkpoint = no_checkpoint) -> Document:
    from pptx import Presentation

    _check_zip(path, data, "PowerPoint")
    limits = _Limits()
    with _reading(path, "PowerPoint"):
        deck = Presentation(io.BytesIO(data))
        slides = list(deck.slides)
        if len(slides) > SLIDES:
            warnings.append(f"{len(slides)} slides; only the first {SLIDES} were read (SLIDES)")
        props = deck.core_properties
        pages: list[str] = []
        first_title = ""

        def document() -> Document:
            starts, pos = [], 0
            for text in pages:
                starts.append(pos)
                pos += len(text) + len(_BLOCK)
            return new_document(path, _BLOCK.join(pages), title=(props.title or "").strip() or first_title or path.stem,
                                author=(props.author or "").strip(), date=_date(_BLOCK.join(pages[:5]), props.modified),
                                pages=starts, meta={LAYOUT: {"unit": "slide"}})

        for slide in slides[:SLIDES]:
            title = slide.shapes.title
            texts = [] if title is None else [title.text_frame.text]
            first_title = first_title or (texts[0].strip() if texts else "")
            shapes = sorted((s for s in slide.shapes if title is None or s.shape_id != title.shape_id),
                            key=lambda s: (s.top or 0, s.left or 0))
            for shape in shapes:
                texts += _shape_texts(shape, limits)
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                texts.append(slide.notes_slide.notes_text_frame.text)
            # A line break inside a paragraph is a vertical tab in python-pptx's text.
            text = _BLOCK.join(t for t in (t.replace("\v", "\n").strip() for t in texts) if t)
            limit.take(len(text) + len(_BLOCK))
            pages.append(text)
            checkpoint(lambda: Partial([document()], limits.so_far(warnings), len(pages), min(len(slides), SLIDES),
                                       "slides"))
        doc = document()
    limits.warn(warnings)
    return doc


def _shape_texts(shape, limits: _Limits) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return [t for s in shape.shapes for t in _shape_texts(s, limits)]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = ((n, [_cell(c.text, limits) for c in row.cells]) for n, row in enumerate(shape.table.rows, 1))
        return [line for _, line in _table(rows, limits, "a table")]
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        return [shape.text_frame.text]
    return []
