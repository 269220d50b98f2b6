"""HTML of the chat's messages. Document text is untrusted: everything taken from a document is escaped."""

from __future__ import annotations

import dataclasses
import html
import re

from ..answer.compose import Answer, Citation, document_url, location_label
from ..answer.respond import mark_references
from ..core import Assistant
from ..log.questions import valid_id
from ..text import unwrap
from .document import with_references as _with_references

LABELS = {
    "zh": {"sources": "来源", "related": "相关内容（不是这个问题的答案）", "page": "第 {} 页", "open": "在原文中查看", "same_text": "相同内容也见于：",
           "failed": "出错了，这个问题没能回答（{kind}）。请稍后重试；详细信息在服务器日志中。",
           "no_collection": "没有名为“{name}”的资料集。请在上方选择一个资料集。"},
    "en": {"sources": "Sources", "related": "Related, but not an answer", "page": "p. {}", "open": "Show in the article", "same_text": "The same text is also in: ",
           "failed": "Something went wrong and this question could not be answered ({kind}). Please try again; "
                     "the details are in the server log.",
           "no_collection": "There is no collection \"{name}\". Choose one above the chat."},
}

_BOUNDARY = re.compile(r"[。！？!?；;\n]|\.(?=\s)")
_URL = re.compile(r"^https?://[^\s\"'<>]+$", re.I)
_CITE = re.compile(r"\[(\d{1,3})\]")


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _paragraphs(text: str) -> str:
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join("<p>" + _esc(p).replace("\n", "<br>") + "</p>" for p in paras)


def lang_of(text: str) -> str:
    return "zh" if re.search(r"[\u3400-\u9fff]", text) else "en"


def context_bounds(text: str, start: int, end: int, width: int = 120) -> tuple[int, int]:
    """The passage around text[start:end]: up to `width` characters either side, cut at sentence ends."""
    a = max(0, start - width)
    if a > 0:
        m = _BOUNDARY.search(text, a, start)
        a = m.end() if m else a
    b = min(len(text), end + width)
    if b < len(text):
        last = None
        for last in _BOUNDARY.finditer(text, end, b):
            pass
        b = last.end() if last else b
    return a, b


def emphasised(piece: str, span: tuple[int, int] | None, render) -> str:
    """`piece` through `render`, piece[span[0]:span[1]] (the answer itself, as the reader marks it) in
    <strong class="sa-answer-span">; the text is the same, only emphasised."""
    if not span or not 0 <= span[0] < span[1] <= len(piece):
        return render(piece)
    a, b = span
    return render(piece[:a]) + '<strong class="sa-answer-span">' + render(piece[a:b]) + "</strong>" + render(piece[b:])


def _within(c: Citation) -> tuple[int, int] | None:
    """The citation's emphasis in the quote's own offsets."""
    return (c.emphasis[0] - c.start, c.emphasis[1] - c.start) if c.emphasis else None


def render_passage(text: str, start: int, end: int, emphasis: tuple[int, int] | None = None) -> str:
    """The quoted sentence highlighted (<mark>) inside its surrounding passage, all of it escaped;
    `emphasis` (document offsets inside the quote): the answer itself, emphasised within the mark."""
    a, b = context_bounds(text, start, end)

    def part(s: str) -> str:
        return _with_references(re.sub(r"\s*\n\s*", "\n", unwrap(s))).replace("\n", "<br>")

    before, after = text[a:start].lstrip(), text[end:b].rstrip()
    inside = (emphasis[0] - start, emphasis[1] - start) if emphasis else None
    return ("…" if a > 0 else "") + part(before) + '<mark class="sa-quote">' \
        + emphasised(text[start:end], inside, part) + "</mark>" + part(after) + ("…" if b < len(text) else "")


def _cite_link(c: Citation, base: str) -> str:
    """An answer's [n]: opens its source in the message (chat script), else the document page. The number is
    in a class, `sa-n<n>`: Gradio's sanitiser drops data-* attributes."""
    return (f'<a class="sa-cite sa-n{c.number}" href="{_esc(base + c.to_dict()["url"])}" target="_blank" '
            f'rel="noopener" title="{_esc(c.title or c.doc_id)}">[{c.number}]</a>')


def _answer_text(answer: Answer, base: str) -> str:
    """The answer's paragraphs: quoted text with the article's markers muted, each [n] a link to its source."""
    numbers = {c.number: c for c in answer.citations}
    text = answer.text
    quotes: list[tuple[int, int, Citation]] = []  # where the citations' quotes stand verbatim in the answer
    pos = 0
    for c in answer.citations:
        quote = mark_references(c.quote)  # as `Assistant.ask` writes quotes into the answer's text (same length)
        at = text.find(quote, pos) if quote else -1
        if at >= 0:
            quotes.append((at, at + len(quote), c))
            pos = at + len(quote)

    def outside(part: str) -> str:
        out, i = [], 0
        for m in _CITE.finditer(part):
            c = numbers.get(int(m.group(1)))
            if c is not None:
                out += [_esc(part[i : m.start()]), _cite_link(c, base)]
                i = m.end()
        return "".join(out) + _esc(part[i:])

    pieces, i = [], 0
    for a, b, c in quotes:
        pieces += [outside(text[i:a]), emphasised(text[a:b], _within(c), lambda p: _with_references(unwrap(p)))]
        i = b
    pieces.append(outside(text[i:]))
    body = "".join(pieces)
    paras = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    return "".join("<p>" + p.replace("\n", "<br>") + "</p>" for p in paras)


def _source_meta(c: Citation) -> str:
    """Date and source of a document (a link when the source is a URL)."""
    meta = []
    if c.date:
        meta.append(_esc(c.date))
    if c.source:
        meta.append(f'<a href="{_esc(c.source)}" target="_blank" rel="noopener noreferrer nofollow">{_esc(c.source)}</a>'
                    if _URL.match(c.source) else _esc(c.source))
    return " · ".join(meta)


def render_citation(c: Citation, document_text: str | None, lang: str, base: str = "") -> str:
    """One quote: a line ([n], the quote, the page) that expands to its passage and a link into the article."""
    labels = LABELS[lang]
    where = location_label(c.location, lang) if c.location else (labels["page"].format(c.page) if c.page else "")
    page = f' <span class="sa-page">{_esc(where)}</span>' if where else ""
    if document_text is not None and document_text[c.start : c.end] == c.quote:
        passage = render_passage(document_text, c.start, c.end, c.emphasis)
    else:  # the document changed since the answer was made: the quote alone
        passage = '<mark class="sa-quote">' + _with_references(unwrap(c.quote)).replace("\n", "<br>") + "</mark>"
    # The one-line quote: each run of white space one space (`_one_line`), the answer still emphasised.
    line = emphasised(c.quote, _within(c), lambda p: _with_references(_one_line(p)))
    return (f'<details class="sa-source sa-n{c.number}"><summary><span class="sa-num">[{c.number}]</span> '
            f'<span class="sa-line">{line}</span>{page}</summary>'
            f'<blockquote class="sa-passage">{passage}</blockquote>'
            f'<a class="sa-open" href="{_esc(base + c.to_dict()["url"])}" target="_blank" rel="noopener">'
            f'{labels["open"]}</a></details>')


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _same_text(cites: list[Citation], bot: Assistant, lang: str, base: str) -> str:
    """Links to the other documents that carry the quoted passages near word for word."""
    links = []
    for doc_id in dict.fromkeys(d for c in cites for d in c.same_text):
        doc = bot.document(doc_id)
        if doc is not None:
            links.append(f'<a href="{_esc(base + document_url(doc_id))}" target="_blank" '
                         f'rel="noopener">{_esc(doc.title or doc_id)}</a>')
    return f'<div class="sa-same">{_esc(LABELS[lang]["same_text"])}{" · ".join(links)}</div>' if links else ""


def render_sources(answer: Answer, bot: Assistant, base: str = "", *, related: bool = False) -> str:
    """The sources, grouped by document: its title, date and source once, then one line per quote, then
    the other documents where the same text stands. `related`: a decline's closest passages instead."""
    lang = answer.lang if answer.lang in LABELS else "en"
    groups: dict[str, list[Citation]] = {}
    for c in answer.related if related else answer.citations:
        groups.setdefault(c.doc_id, []).append(c)
    parts = []
    for doc_id, cites in groups.items():
        doc = bot.document(doc_id)
        first = cites[0]
        meta = _source_meta(first)
        parts.append(
            f'<div class="sa-doc" data-doc-id="{_esc(doc_id)}"><div class="sa-doc-head">'
            f'<a class="sa-title" href="{_esc(base + first.to_dict()["url"])}" target="_blank" rel="noopener">'
            f"{_esc(first.title or doc_id)}</a>" + (f' <span class="sa-meta">{meta}</span>' if meta else "") + "</div>"
            + "".join(render_citation(c, doc.text if doc else None, lang, base) for c in cites)
            + _same_text(cites, bot, lang, base) + "</div>")
    kind, title = ("sa-sources sa-related", "related") if related else ("sa-sources", "sources")
    return f'<div class="{kind}"><div class="sa-sources-title">{LABELS[lang][title]}</div>' + "".join(parts) + "</div>"


def render_answer(answer: Answer, bot: Assistant, base: str = "") -> str:
    """The final chat message: the answer with linked [n], then its sources grouped by document (a decline:
    the closest passages, as related).

    `base` is the server's root URL ("" for links relative to it): a chat embedded as a web
    component on another site needs absolute links back to this server.
    """
    # The answer's id in the question log rides in a class (Gradio's sanitiser drops data-* attributes): the
    # chat's 👍/👎 find it there.
    logged = f" sa-aid-{answer.meta['id']}" if valid_id(answer.meta.get("id")) else ""
    declined = " sa-declined" if answer.declined else ""
    parts = [f'<div class="sa-answer{declined}{logged}">{_answer_text(answer, base)}</div>']
    if answer.citations:
        parts.append(render_sources(answer, bot, base))
    elif answer.related:
        parts.append(render_sources(answer, bot, base, related=True))
    return "".join(parts)


def answer_from_dict(data: dict) -> Answer:
    """An answer as `Answer.to_dict()` wrote it (a stored conversation turn), to be shown again."""
    names = {f.name for f in dataclasses.fields(Citation)}

    def cited(key: str) -> list[Citation]:
        return [Citation(**{k: v for k, v in c.items() if k in names}) for c in data.get(key) or []]

    return Answer(data["answer"], cited("citations"), bool(data["declined"]), data.get("lang", "en"),
                  meta=data.get("meta") or {}, related=cited("related"))


def render_partial(text: str) -> str:
    """An answer while it is being streamed."""
    return f'<div class="sa-answer sa-streaming">{_paragraphs(text)}</div>'


def render_error(message: str) -> str:
    """A failure, shown as the assistant's message."""
    return f'<div class="sa-error" role="alert">⚠ {_esc(message)}</div>'


