"""Language-aware text helpers shared by chunking and answering: language and sentence spans.

Sentences are returned as (start, end) character offsets into the original string, never as
copies, so that every quote built from them can be checked against the source text.
"""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# A sentence ends after Chinese terminal punctuation (。！？；… and their half-width forms when
# followed by space or end), plus any closing quotes or brackets that belong to it; line breaks end
# a sentence too, except where hard-wrapped English runs on (a word or comma, a line break, a
# lower-case word: PDF text and wrapped Markdown break every line). English full stops only count
# before whitespace so that "2.0", "e.g.x" and URLs stay whole.
_WRAPPED_BREAK = r"(?<=[A-Za-z0-9,])\n[ \t]*(?=[a-z])"
_END = re.compile(
    r"""(?:[。！？；]|[!?;](?![A-Za-z0-9=&_/])|…+|\.{3,}|(?<=[^\s.])\.(?=\s|$))[”’"'」』）)\]】]*"""
    rf"""|(?!{_WRAPPED_BREAK})\n""",
)
_WRAPPED = re.compile(_WRAPPED_BREAK)


def unwrap(text: str) -> str:
    """`text` with the line breaks of hard-wrapped English (those that do not end a sentence) shown as spaces."""
    return _WRAPPED.sub(" ", text)


def detect_lang(text: str) -> str:
    """'zh' when the text is mostly Chinese, else 'en' (the two languages the replies are written in)."""
    cjk = len(_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    return "zh" if cjk and cjk >= latin_words else "en"


def in_other_language(text: str, lang: str) -> bool:
    """Whether much of `text` is in another language than `lang`: a Chinese passage that quotes
    English names is still mostly Chinese to an English question (a model's cosines run lower)."""
    cjk = len(_CJK.findall(text))
    return cjk > 0.2 * len(text) if lang == "en" else detect_lang(text) != lang


def mostly_other_script(text: str, lang: str) -> bool:
    """A quick `in_other_language` for many texts (a search's every candidate): Chinese characters are
    the three-byte ones of UTF-8, counted at C speed; more than a fifth of the text reads as Chinese."""
    chinese = len(text.encode("utf-8")) - len(text) > 0.4 * len(text)
    return chinese != (lang == "zh")


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


# Reference-list entries and links are sources, not answers: "[2] Woods, S. (2016)…", "https://…". The
# whole line of an entry is one ("International Journal of…, 56(5)" is the second sentence of one).
_REFERENCE_LINE = re.compile(r"^\s*(?:\[\d+\]|\d+\.\s*\[)")
_LINK = re.compile(r"https?://|www\.", re.I)
_MIN_QUOTE_CHARS = 12
# A list item: "1.道德风险：…", "2、…", "(3) …", "- …", "• …".
LIST_ITEM = re.compile(r"\s*(?:\d{1,2}\s*[.、．)）]|[(（]\d{1,2}[)）]|[-*•·]\s)")


# How far back a sentence's line start is looked for, and how much of the line a reference marker is
# looked for in: a file can be one line of megabytes, and each of its sentences must cost its own length.
_LINE_LOOKBACK = 1000
_REFERENCE_HEAD = 40


def quotable(text: str, start: int, end: int) -> bool:
    """Whether an answer may quote text[start:end]: long enough to say something, not on a reference line."""
    if end - start < _MIN_QUOTE_CHARS or _LINK.search(text, start, end):
        return False
    line_start = text.rfind("\n", max(0, start - _LINE_LOOKBACK), start) + 1
    if line_start == 0 and start > _LINE_LOOKBACK:  # a line longer than any reference entry: not one
        return True
    return not _REFERENCE_LINE.match(text[line_start : min(end, line_start + _REFERENCE_HEAD)])


def _add_trimmed(text: str, a: int, b: int, spans: list[tuple[int, int]]) -> None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a:
        spans.append((a, b))
