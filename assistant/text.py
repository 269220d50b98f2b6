"""Language-aware text helpers shared by chunking and answering: language detection and sentence spans.

Sentences are returned as (start, end) character offsets into the original string, never as
copies, so that every quote built from them can be checked against the source text.
"""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# A sentence ends after Chinese terminal punctuation (。！？；… and their half-width forms when
# followed by space or end), plus any closing quotes or brackets that belong to it; paragraph
# breaks end a sentence too. English full stops only count before whitespace so that "2.0",
# "e.g.x" and URLs stay whole.
_END = re.compile(
    r"""(?:[。！？；]|[!?;](?![A-Za-z0-9=&_/])|…+|\.{3,}|(?<=[^\s.])\.(?=\s|$))[”’"'」』）)\]】]*|\n""",
)


def detect_lang(text: str) -> str:
    """'zh' when the text is mostly Chinese, else 'en' (the two languages the replies are written in)."""
    cjk = len(_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    return "zh" if cjk and cjk >= latin_words else "en"


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the sentences in text[start:end], trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _END.finditer(text, start, end):
        _add_trimmed(text, pos, m.end(), spans)
        pos = m.end()
    _add_trimmed(text, pos, end, spans)
    return spans


def _add_trimmed(text: str, a: int, b: int, spans: list[tuple[int, int]]) -> None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a:
        spans.append((a, b))

