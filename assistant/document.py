"""What every stage passes along: a `Document` (the text every citation's offsets point into) and its `Chunk`s.

Readers (`ingest.load`) make documents, the chunker cuts them, the stores keep both, answers cite them.
Imports nothing of the package."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

# The key of `Document.meta` under which a reader keeps where things are (see `Document`). The other
# keys are the file's own metadata (front matter, JSON fields), always text; this one is a dict, made
# by a reader only, so a front-matter field of the same name (always text) is never taken for it.
LAYOUT = "_layout"


@dataclass
class Document:
    """One article as stored: `text` is what every chunk and citation offset points into.

    `pages` holds the offset in `text` where each page starts: a PDF's or scanned page, an image (one
    page), a slide, a sheet of a workbook; chunks never cross one. Files whose parts are not pages
    say where things are in `meta[LAYOUT]`, a dict that is stored with the document as JSON:

    - "unit": what `pages` counts when it is not PDF pages: "slide" or "sheet".
    - "sheets": the sheet names of a workbook, in `pages` order (a .csv is one sheet, named after the file).
    - "rows": [[offset, row], …] ascending: where the line of each spreadsheet row starts in `text`,
      `row` numbered as the sheet numbers it (the header is row 1 of a .csv).
    - "ocr": the pages read by OCR, each {"page": n, "width": w, "height": h, "lines": [[start, end,
      [x1, y1, x2, y2, x3, y3, x4, y4]], …]}: for each recognised line, text[start:end] and its box on
      the page image of w × h pixels (the image file itself, or the PDF page rendered to that size),
      corners clockwise from the top left as fractions of the width and height, so the box fits any
      rendering of the page.
    """

    doc_id: str
    text: str
    title: str = ""
    author: str = ""
    date: str = ""
    source: str = ""
    path: str = ""
    lang: str = ""
    pages: list[int] | None = None
    meta: dict = field(default_factory=dict)

    def page_at(self, offset: int) -> int | None:
        """1-based page (slide, sheet) holding character `offset`; None for a document without pages."""
        if not self.pages:
            return None
        return bisect_right(self.pages, offset)

    def location(self, offset: int) -> dict:
        """Where character `offset` is, for a citation: {"page": n}, {"slide": n} or {"sheet": name,
        "row": n} (row absent before a sheet's first row); {} for a document without pages."""
        page = self.page_at(offset)
        if page is None:
            return {}
        layout = self.meta.get(LAYOUT)
        layout = layout if isinstance(layout, dict) else {}
        unit = layout.get("unit", "page")
        if unit != "sheet":
            return {unit: page}
        where: dict = {"sheet": layout["sheets"][page - 1]}
        rows = layout["rows"]
        i = bisect_right(rows, [offset, float("inf")]) - 1
        if i >= 0 and rows[i][0] >= self.pages[page - 1]:
            where["row"] = rows[i][1]
        return where


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    seq: int
    start: int
    end: int
    text: str  # == document.text[start:end]
    page: int | None = None
