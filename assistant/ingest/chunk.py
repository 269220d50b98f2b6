"""Split a document into sentence-aligned chunks with exact offsets into its text.

Sentences are packed up to `size` characters; consecutive chunks share up to `overlap`
characters of whole sentences so that an answer spanning a boundary is still found. A single
sentence longer than `size` is cut, preferring a comma or a space near the limit.
"""

from __future__ import annotations

import re

from ..document import Chunk, Document
from ..text import sentence_spans
from .pace import pace

_SOFT_BREAK = re.compile(r"[，,、：:\s]")


def chunk_document(doc: Document, size: int = 400, overlap: int = 80) -> list[Chunk]:
    """Chunks in document order; a PDF chunk never crosses a page break, so it has one page."""
    spans = [piece for span in sentence_spans(doc.text) for piece in _cut_long(doc.text, span, size)]
    pages: dict[int | None, list[tuple[int, int]]] = {}
    for span in spans:
        pages.setdefault(doc.page_at(span[0]), []).append(span)
    chunks: list[Chunk] = []
    for page_spans in pages.values():
        _pack(doc, page_spans, size, overlap, chunks)
    return chunks


def _pack(doc: Document, spans: list[tuple[int, int]], size: int, overlap: int, chunks: list[Chunk]) -> None:
    i = 0
    while i < len(spans):
        j = i
        while j + 1 < len(spans) and spans[j + 1][1] - spans[i][0] <= size:
            j += 1
        start, end = spans[i][0], spans[j][1]
        chunks.append(Chunk(doc.doc_id, len(chunks), start, end, doc.text[start:end], doc.page_at(start)))
        pace()  # a server's library thread leaves the interpreter to questions (ingest.pace)
        if j + 1 >= len(spans):
            return
        # Step back over whole sentences that fit in the overlap, but always move forward.
        k = j + 1
        while k - 1 > i and end - spans[k - 1][0] <= overlap:
            k -= 1
        i = k


def _cut_long(text: str, span: tuple[int, int], size: int) -> list[tuple[int, int]]:
    start, end = span
    pieces = []
    while end - start > size:
        window = text[start + size // 2 : start + size]
        breaks = [m.end() for m in _SOFT_BREAK.finditer(window)]
        cut = start + size // 2 + breaks[-1] if breaks else start + size
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces
