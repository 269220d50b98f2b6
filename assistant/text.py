"""Language-aware text helpers shared by chunking and answering: language, sentence spans, specifics and
the attribute a question asks for.

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


# The specifics a question names and an answer must not swap for look-alikes: quoted titles
# (《人世间》, “歼敌者”), codes that mix letters and digits (U14, MU5735, G20), ordinals (第三) and
# quantities with a Chinese unit (500米, 2021年). A passage about the 1500米 race does not answer a
# question about the 500米 race, however close its words and meaning are.
_SPECIFIC = re.compile(
    r"《(?P<title>[^》]+)》|“(?P<quoted>[^”]+)”"
    r"|(?<![A-Za-z0-9])(?P<code>[A-Za-z]+\d+[A-Za-z0-9]*|\d+[A-Za-z]+\d+[A-Za-z0-9]*)"
    r"|(?P<ordinal>第[一二三四五六七八九十百\d]+)"
    r"|(?<![\d.])(?P<quantity>\d+(?:\.\d+)?)(?=[米岁年届次号])"
)


def specifics(question: str) -> list[str]:
    """The quoted titles, codes, ordinals and quantities that `question` names, in order (see `_SPECIFIC`)."""
    found = (next(v for v in m.groupdict().values() if v) for m in _SPECIFIC.finditer(question))
    return list(dict.fromkeys(found))


# The one attribute a Chinese question asks of something named before it: 《重生之门》的导演,
# 汤臣倍健上半年的营收是多少. A passage that never uses the word cannot say who directed it or how
# much it earned, however close it is in topic. Left out: attributes any description answers without
# naming them (the 时间 / 原因 / 作用 of something), and frames around a question word (哪个国家的
# 政治家, 什么样的食用价值), where the word names the kind of answer rather than a relation.
_ASKED_TAIL = re.compile(r"(?:是|为|有)?(?:谁|什么|多少|哪些|哪个|哪里|哪儿|哪|几)?[呢吗]?[？?。！!\s]*$")
_ASKED_ATTRIBUTE = re.compile(r"的((?:(?!的)[\u4e00-\u9fff]){2,4})$")
_QUESTION_WORD = re.compile(r"谁|什么|哪|怎|几|多少|如何|为何|为什么")
_ANSWERED_UNNAMED = ("时间", "日期", "年份", "时候", "时期", "地点", "地方", "地址", "位置", "原因", "理由",
                     "目的", "目标", "情况", "内容", "结果", "成绩", "意思", "意义", "含义", "定义", "作用", "功能",
                     "用途", "方法", "方式", "办法", "名字", "名称", "特点", "特征", "影响", "地位", "价值", "关系",
                     "区别", "过程", "背景", "来源", "历史", "看法", "评价", "表现", "要求", "条件", "标准", "范围",
                     "程度", "水平", "人数", "数量", "本质", "因素", "风险", "优势", "劣势", "优点", "缺点", "好处",
                     "坏处", "问题", "建议", "趋势", "前景", "策略")


def asked_attribute(question: str) -> str | None:
    """The attribute `question` asks of something it names ("《人世间》的编剧是谁" -> "编剧"), if any."""
    asked = _ASKED_TAIL.sub("", question.strip())
    m = _ASKED_ATTRIBUTE.search(asked)
    if not m or _QUESTION_WORD.search(asked[: m.start()]) or m.group(1).endswith(_ANSWERED_UNNAMED):
        return None
    return m.group(1)


def mentions(text: str, specific: str) -> bool:
    """Whether `text` names `specific`; a number only counts whole (500 is not in 1500)."""
    if specific[0].isdigit():
        return re.search(rf"(?<![\d.]){re.escape(specific)}(?![\d])", text) is not None
    return specific.lower() in text.lower()
