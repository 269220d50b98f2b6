"""HTML of the chat's messages. Document text is untrusted: everything taken from a document is escaped."""

from __future__ import annotations

import html
import re

from ..answer import Answer, Citation
from ..core import Assistant

LABELS = {
    "zh": {"sources": "来源", "page": "第 {} 页", "too_long": "问题太长：{n} 个字符，上限是 {max} 个。请缩短后再问。",
           "empty": "请先输入问题。", "failed": "出错了，这个问题没能回答（{kind}）。请稍后重试；详细信息在服务器日志中。"},
    "en": {"sources": "Sources", "page": "p. {}", "too_long": "The question is too long: {n} characters, the limit is "
           "{max}. Please shorten it.", "empty": "Type a question first.",
           "failed": "Something went wrong and this question could not be answered ({kind}). Please try again; "
                     "the details are in the server log."},
}

_BOUNDARY = re.compile(r"[。！？!?；;\n]|\.(?=\s)")
_URL = re.compile(r"^https?://[^\s\"'<>]+$", re.I)


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


def render_passage(text: str, start: int, end: int) -> str:
    """The quoted sentence highlighted (<mark>) inside its surrounding passage, all of it escaped."""
    a, b = context_bounds(text, start, end)

    def part(s: str) -> str:
        return _esc(re.sub(r"\s*\n\s*", "\n", s)).replace("\n", "<br>")

    before, after = text[a:start].lstrip(), text[end:b].rstrip()
    return ("…" if a > 0 else "") + part(before) + '<mark class="sa-quote">' + part(text[start:end]) + "</mark>" \
        + part(after) + ("…" if b < len(text) else "")


def render_citation(c: Citation, document_text: str | None, lang: str) -> str:
    labels = LABELS[lang]
    meta = []
    if c.date:
        meta.append(_esc(c.date))
    if c.source:
        if _URL.match(c.source):
            meta.append(f'<a href="{_esc(c.source)}" target="_blank" rel="noopener noreferrer nofollow">'
                        f"{_esc(c.source)}</a>")
        else:
            meta.append(_esc(c.source))
    if c.page:
        meta.append(_esc(labels["page"].format(c.page)))
    if document_text is not None and document_text[c.start : c.end] == c.quote:
        passage = render_passage(document_text, c.start, c.end)
    else:  # the document changed since the answer was made: the quote alone
        passage = '<mark class="sa-quote">' + _esc(c.quote).replace("\n", "<br>") + "</mark>"
    return (f'<div class="sa-source" data-doc-id="{_esc(c.doc_id)}"><div class="sa-source-head">'
            f'<span class="sa-num">[{c.number}]</span> <strong class="sa-title">{_esc(c.title or c.doc_id)}</strong>'
            + (f' <span class="sa-meta">{" · ".join(meta)}</span>' if meta else "")
            + f'</div><blockquote class="sa-passage">{passage}</blockquote></div>')


def render_answer(answer: Answer, bot: Assistant) -> str:
    """The final chat message: the answer, then each [n] with its title, date, source, page and passage."""
    lang = answer.lang if answer.lang in LABELS else "en"
    parts = [f'<div class="sa-answer{" sa-declined" if answer.declined else ""}">{_paragraphs(answer.text)}</div>']
    if answer.citations:
        texts: dict[str, str | None] = {}
        for c in answer.citations:
            if c.doc_id not in texts:
                doc = bot.document(c.doc_id)
                texts[c.doc_id] = doc.text if doc else None
        parts.append(f'<div class="sa-sources"><div class="sa-sources-title">{LABELS[lang]["sources"]}</div>'
                     + "".join(render_citation(c, texts[c.doc_id], lang) for c in answer.citations) + "</div>")
    return "".join(parts)


def render_partial(text: str) -> str:
    """An answer while it is being streamed."""
    return f'<div class="sa-answer sa-streaming">{_paragraphs(text)}</div>'


def render_error(message: str) -> str:
    """A failure, shown as the assistant's message."""
    return f'<div class="sa-error" role="alert">⚠ {_esc(message)}</div>'


