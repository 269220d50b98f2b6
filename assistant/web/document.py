"""The document page, GET /doc/{doc_id}?start=S&end=E[&answer_start=A&answer_end=B]: a stored article with a
quote highlighted (and the answer inside it emphasised).

Every citation links here (`Citation.to_dict()["url"]`). The article is untrusted text: all of it
is escaped, and the page is served with a Content-Security-Policy that allows no inline script or
style at all (`security.document_security_policy`); its script and stylesheet are /document.js and /document.css.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote as quote_url

from ..answer.compose import location_label
from ..document import LAYOUT, Document

_URL = re.compile(r"^https?://[^\s\"'<>]+$", re.I)
# An article's own reference markers: [3], ［3］, [12]. Shown muted wherever article text is shown.
_ARTICLE_REF = re.compile(r"\[\d{1,3}\]|［\d{1,3}］")
ARTICLE_REF_TITLE = "the article's own reference · 原文自带的注释编号"
LABELS = {
    "zh": {"author": "作者", "quote": "引文在{}", "scan": "原图：引文所在的行已标出"},
    "en": {"author": "by", "quote": "The quote is on {}", "scan": "The page image, the quoted lines marked"},
}
# The page images of scanned pages and screenshots (see `page_image`); the document page shows the
# quoted lines on them. Not under /doc/, whose document ids may hold slashes.
PAGE_IMAGE_PATH = "/page-image"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def with_references(text: str) -> str:
    """`text` escaped, the article's own reference markers ("风险有很多[3]") shown as muted superscripts.

    They stay in the quote verbatim (quote == text[start:end]) but must not pass for the answer's [n].
    """
    out, pos = [], 0
    for m in _ARTICLE_REF.finditer(text):
        out += [_esc(text[pos : m.start()]), f'<sup class="sa-ref" title="{_esc(ARTICLE_REF_TITLE)}">'
                f"{_esc(m.group())}</sup>"]
        pos = m.end()
    return "".join(out) + _esc(text[pos:])


def highlight(doc: Document, start: int | None, end: int | None) -> tuple[int, int] | None:
    """The span to highlight, or None when the offsets are missing or not inside the text."""
    if start is None or end is None or not 0 <= start < end <= len(doc.text):
        return None
    return start, end


def _body(doc: Document, span: tuple[int, int] | None, lang: str, answer: tuple[int, int] | None = None) -> str:
    """The whole text, escaped, with the quote in <mark id="sa-quote"> (the answer inside it, `answer`, in
    <strong class="sa-answer-span">), the article's own reference markers muted and, for PDFs, a marker where
    each page starts."""
    cuts = {0, len(doc.text)}
    pages = {offset: n for n, offset in enumerate(doc.pages or [], 1) if 0 < offset < len(doc.text)}
    cuts |= set(pages)
    if span:
        cuts |= set(span)
    if answer:
        cuts |= set(answer)
    out = []
    bounds = sorted(cuts)
    first_mark, in_mark = True, False
    for a, b in zip(bounds, bounds[1:]):
        if a in pages:  # a quote across pages is marked on each
            out.append(("</mark>" if in_mark else "")
                       + f'<span class="sa-pagebreak" role="separator">{_esc(location_label(doc.location(a), lang))}</span>')
            in_mark = False
        piece = with_references(doc.text[a:b])
        if answer and answer[0] <= a and b <= answer[1]:
            piece = f'<strong class="sa-answer-span">{piece}</strong>'
        inside = bool(span) and span[0] <= a and b <= span[1]
        if inside and not in_mark:
            out.append('<mark id="sa-quote">' if first_mark else "<mark>")
            first_mark = False
        elif in_mark and not inside:
            out.append("</mark>")
        in_mark = inside
        out.append(piece)
    return "".join(out) + ("</mark>" if in_mark else "")


# A citation opens this page in a new tab, often from the widget: the way on to the chat and the Library.
NAV = '<nav class="sa-docnav"><a href="/">← 对话 Chat</a><a href="/library">资料库 Library</a></nav>'


def document_page(doc: Document, start: int | None = None, end: int | None = None,
                  answer: tuple[int | None, int | None] = (None, None)) -> str:
    """The HTML page of `doc` with text[start:end] highlighted (and scrolled into view by /document.js), and
    `answer` (text[a:b], inside it: the answer itself, as the reader marked it) emphasised."""
    lang = "zh" if doc.lang == "zh" else "en"
    labels = LABELS[lang]
    span = highlight(doc, start, end)
    inside = highlight(doc, *answer) if span else None
    inside = inside if inside and span[0] <= inside[0] and inside[1] <= span[1] else None
    meta = []
    if doc.author:
        meta.append(f"{labels['author']} {_esc(doc.author)}" if lang == "en" else f"{labels['author']}：{_esc(doc.author)}")
    if doc.date:
        meta.append(f"<time>{_esc(doc.date)}</time>")
    if doc.source:
        meta.append(f'<a href="{_esc(doc.source)}" rel="noopener noreferrer nofollow" target="_blank">{_esc(doc.source)}</a>'
                    if _URL.match(doc.source) else _esc(doc.source))
    if span and doc.pages:
        where = location_label(doc.location(span[0]), lang)
        meta.append(f'<span class="sa-quote-page">{_esc(labels["quote"].format(where))}</span>')
    title = doc.title or doc.doc_id
    return (f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_esc(title)}</title><link rel="stylesheet" href="/document.css">'
            '<script src="/document.js" defer></script></head><body><main>' + NAV
            + f'<h1>{_esc(title)}</h1>' + (f'<p class="sa-docmeta">{" · ".join(meta)}</p>' if meta else "")
            + (_scan(doc, span, labels) if span else "")
            + f'<article class="sa-text">{_body(doc, span, lang, inside)}</article>'
            "</main></body></html>")


def ocr_page(doc: Document, page: int) -> dict | None:
    """The OCR layout of `page` of `doc` (see `Document`): its size and its lines' offsets and boxes."""
    layout = doc.meta.get(LAYOUT)
    pages = layout.get("ocr", []) if isinstance(layout, dict) else []
    return next((p for p in pages if isinstance(p, dict) and p.get("page") == page), None)


def _scan(doc: Document, span: tuple[int, int], labels: dict) -> str:
    """The page image of a quote read by OCR, its quoted lines outlined: an SVG whose shapes are
    attributes, not styles, so the page's policy (no inline style) holds."""
    page = doc.page_at(span[0]) or 1
    layout = ocr_page(doc, page)
    if layout is None:
        return ""
    width, height = int(layout["width"]), int(layout["height"])
    boxes = []
    for start, end, corners in layout["lines"]:
        if start < span[1] and span[0] < end:
            points = " ".join(f"{x * width:.1f},{y * height:.1f}" for x, y in zip(corners[::2], corners[1::2]))
            boxes.append(f'<polygon class="sa-box" points="{points}"/>')
    src = f"{PAGE_IMAGE_PATH}/{page}/{quote_url(doc.doc_id, safe='')}"
    return (f'<figure class="sa-scan"><svg viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{_esc(labels["scan"])}"><image href="{_esc(src)}" width="{width}" height="{height}"/>'
            + "".join(boxes) + f'</svg><figcaption>{_esc(labels["scan"])}</figcaption></figure>')


IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def page_image(doc: Document, page: int) -> tuple[bytes, str] | None:
    """(bytes, media type) of the image of a page that was read by OCR: the image file itself, or the
    scanned PDF page rendered at the size OCR saw. None when the page was not read by OCR or the file is
    gone from the library."""
    layout = ocr_page(doc, page)
    path = Path(doc.path)
    if layout is None or not path.is_file():
        return None
    if path.suffix.lower() in IMAGE_TYPES:
        return path.read_bytes(), IMAGE_TYPES[path.suffix.lower()]
    if path.suffix.lower() != ".pdf":
        return None
    import io

    import pypdfium2

    pdf = pypdfium2.PdfDocument(str(path))
    try:
        if not 1 <= page <= len(pdf):
            return None
        pdf_page = pdf[page - 1]
        image = pdf_page.render(scale=int(layout["width"]) / pdf_page.get_width()).to_pil()
    finally:
        pdf.close()
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), "image/png"


def missing_page(doc_id: str) -> str:
    return ('<!doctype html><html><head><meta charset="utf-8"><title>404</title>'
            '<link rel="stylesheet" href="/document.css"></head><body><main>' + NAV + '<p class="sa-missing">'
            f"资料库中没有这篇文章（{_esc(doc_id)}），它可能已被删除。<br>The library has no document {_esc(doc_id)}; "
            "it may have been removed.</p></main></body></html>")
