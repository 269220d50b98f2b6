"""What a question names and asks for, and whether a passage or a sentence can answer it.

A passage answers a question only when it names what the question names (its specifics, like
《人世间》, U14 or 第三, and its subjects, like 亚马逊, FBA or Poland) and, somewhere among the passages,
what the question asks of them (the attribute: 编剧, 营收, "return rate"). A passage about a Polish
warehouse's fees does not answer 亚马逊FBA的仓储费怎么算, however close its words and meaning are. Names
are compared across languages through the glossary, so an English question about Amazon is checked
against a Chinese passage about 亚马逊. A Latin-script name the glossary does not know (an acronym, a
CamelCase brand) must stand in the passage as written, as Chinese texts keep them; a Chinese one counts
as named by a text with no Chinese, which may spell it in English. Places need only be named by the
passage's document.

A factoid question asks for one kind of answer: a person (谁, who), a time (哪一年, when), a number
(多少, how many) or a place (哪里, where). When it also asks an attribute (《人世间》的编剧是谁), a
sentence that names the attribute must give an answer of that kind: "《人世间》…改编剧" names it and no
person. Open questions ("should I…", 为什么, 怎么做) ask for no kind.

People and places are found by jieba's part-of-speech tags in Chinese (nr, ns) and by capitalised
names in English; times and numbers by their shapes in both languages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import jieba.posseg

from ..text import sentence_spans
from .glossary import DEFAULT, Glossary

PERSON, TIME, NUMBER, PLACE = "person", "time", "number", "place"


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
# A yes/no question puts its predicate after the attribute (直播带货的转化率高吗): the attribute is the
# noun, which a passage names however it words the rest ("转化率也相对更高").
_YES_NO = re.compile(r"[吗么][？?。！!\s]*$")
# 什么 / 怎么 end in 么 too: they ask what or how.
_YES_NO_ZH = re.compile(r"(?:吗|(?<![什怎这那多要])么)[？?。！!\s]*$")
_YES_NO_EN = re.compile(r"^(?:is|are|was|were|do|does|did|can|could|should|shall|will|would|has|have|had|may|might|must)\b",
                        re.I)
_PREDICATE = re.compile(r"[很太更较挺最]?(?:高|低|大|小|多|少|长|短|快|慢|好|差|贵|便宜|难|容易|稳定|划算)$")
_ANSWERED_UNNAMED = ("时间", "日期", "年份", "时候", "时期", "地点", "地方", "地址", "位置", "原因", "理由",
                     "目的", "目标", "情况", "内容", "结果", "成绩", "意思", "意义", "含义", "定义", "作用", "功能",
                     "用途", "方法", "方式", "办法", "名字", "名称", "特点", "特征", "影响", "地位", "价值", "关系",
                     "区别", "过程", "背景", "来源", "历史", "看法", "评价", "表现", "要求", "条件", "标准", "范围",
                     "程度", "水平", "人数", "数量", "本质", "因素", "风险", "优势", "劣势", "优点", "缺点", "好处",
                     "坏处", "问题", "建议", "趋势", "前景", "策略")


def asked_attribute(question: str, terms: Glossary = DEFAULT) -> str | None:
    """The attribute `question` asks of something it names ("《人世间》的编剧是谁" -> "编剧", "What is the
    return rate of live selling?" -> "return rate"), if any."""
    asked = _ASKED_TAIL.sub("", question.strip())
    m = _ASKED_ATTRIBUTE.search(asked)
    if m and _YES_NO.search(question.strip()):
        noun = _PREDICATE.sub("", m.group(1))
        m = _ASKED_ATTRIBUTE.search(asked[: m.start(1)] + noun) if noun != m.group(1) else m
    if m and not _QUESTION_WORD.search(asked[: m.start()]) and not m.group(1).endswith(_ANSWERED_UNNAMED):
        return m.group(1)
    for pattern in _EN_ATTRIBUTE:
        m = pattern.search(question.strip().lower())
        if m:
            words = [w for w in m.group("a").split() if w not in _EN_MODIFIERS]
            # Only the glossary's terms: an English passage says "runner-up" or "author" in other words
            # ("lost the final", "attributed to") too often for the word to be required.
            if words and terms.known(" ".join(words)):
                return " ".join(words)
    return None


# The same in English: "what is the X of …", "how many X does …", "how much is the X at …", "who is the X of …".
_EN_PHRASE = r"(?P<a>[a-z][a-z-]*(?:\s+[a-z][a-z-]*){0,2}?)"
_EN_ATTRIBUTE = (
    re.compile(rf"^(?:what|which)(?:'s|’s|\s+is|\s+are|\s+was|\s+were)\s+(?:the\s+|a\s+|an\s+)?{_EN_PHRASE}"
               r"\s+(?:of|for)\s+\S"),
    re.compile(rf"^how\s+(?:many|much)\s+{_EN_PHRASE}\s+(?:does|do|did|is|are|was|were|has|have|had|can|will)\b"),
    re.compile(rf"^how\s+(?:many|much)\s+(?:is|are|was|were)\s+(?:the\s+|a\s+|an\s+)?{_EN_PHRASE}"
               r"\s+(?:of|for|at|in|on)\s+\S"),
    re.compile(rf"^who\s+(?:is|was|are|were)\s+the\s+{_EN_PHRASE}\s+of\s+\S"),
)
_EN_MODIFIERS = frozenset("main key most important biggest major top first last current average typical usual total "
                          "overall best different".split())


def mentions(text: str, specific: str, terms: Glossary = DEFAULT) -> bool:
    """Whether `text` names `specific`: a number only whole (500 is not in 1500), a glossary entry in any
    of its spellings. A Chinese name the glossary does not know counts as named by a text with no Chinese:
    an English text may spell it in English, and nothing here can tell."""
    if specific[0].isdigit():
        return re.search(rf"(?<![\d.]){re.escape(specific)}(?![\d])", text) is not None
    if terms.known(specific):
        return terms.named_in(text, specific)
    if _CJK.search(specific):
        return specific in text or not _CJK.search(text)
    return specific.lower() in text.lower()  # a Latin name (FBA, TikTok) or code: Chinese texts keep those in Latin


def subjects(question: str, terms: Glossary = DEFAULT) -> tuple[list[str], list[str]]:
    """What `question` names, which a passage must name to answer it: its specifics, the glossary's names
    and terms and Latin-script names (acronyms, CamelCase: FBA, TikTok, eBay); then, apart, the places
    (the glossary's, and those jieba tags ns: 北京, 梧州), which a passage often only implies and its
    document names. jieba's people and organisations are left out: on ../shared/eval they declined one
    answerable question per half (a name spelled otherwise in the passage, 徐凤月, 赛斯纳) and no
    unanswerable one; its "other proper nouns" include words like 申报."""
    found = list(specifics(question)) + terms.found_in(question)
    for m in _LATIN_NAME.finditer(question):
        if not any(m.group(0).lower() in f.lower() for f in found) and m.group(0).upper() not in _ROMAN:
            found.append(m.group(0))
    places = [f for f in found if terms.is_place(f)]
    if _CJK.search(question):
        places += [w for w, flag in _tagged(question)
                   if flag == "ns" and _CJK.search(w) and not any(w in f or f in w for f in found)]
    names = [f for f in found if not terms.is_place(f)]
    return list(dict.fromkeys(names)), list(dict.fromkeys(places))


# An acronym or a name with a capital inside it (FBA, USPS, TikTok, eBay, iPhone); not a capitalised word,
# which in English may just open a sentence or a product title.
_LATIN_NAME = re.compile(r"(?<![A-Za-z0-9])(?:[A-Z]{2,6}s?|[a-z]+[A-Z][A-Za-z]*|[A-Z][a-z]+[A-Z][A-Za-z]*)"
                         r"(?![A-Za-z0-9])")
_ROMAN = frozenset("II III IV VI VII VIII IX XI XII XX".split())
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@dataclass(frozen=True)
class Asked:
    """What one question names and asks for."""

    subjects: tuple[str, ...]  # every passage that answers names all of them
    places: tuple[str, ...]  # the document of every passage that answers names all of them
    attribute: str | None  # some passage that answers names it
    kind: str | None  # PERSON, TIME, NUMBER, PLACE; None for an open question
    # What it asks of what it names: the glossary's terms among its subjects (仓储费, "return rate") and its
    # attribute. A sentence that names them is likelier to state the answer (answer.Scoring.asked).
    asks: tuple[str, ...] = ()
    glossary: Glossary = field(default=DEFAULT, compare=False, repr=False)  # how names are read across languages


def analyse(question: str, terms: Glossary = DEFAULT) -> Asked:
    names, places = subjects(question, terms)
    attribute = asked_attribute(question, terms)
    asks = dict.fromkeys([n for n in names if terms.is_term(n)] + ([attribute] if attribute else []))
    return Asked(tuple(names), tuple(places), attribute, answer_kind(question), tuple(asks), terms)


def is_yes_no(question: str) -> bool:
    """A question answered by yes or no (直播带货有翻车的风险吗？, "Should a brand go all in…?"): its answer is
    no span of a sentence, so none is emphasised (answer.ReaderPicker)."""
    question = question.strip()
    return bool(_YES_NO_ZH.search(question) or _YES_NO_EN.match(question))


@dataclass(frozen=True)
class Covered:
    """Which passages may answer a question, and when none may, why: what no passage names (the subjects
    none names; when each is named somewhere, all of them, never together; or the attribute), or the
    attribute that passages name without an answer of the kind asked (`unstated`)."""

    usable: list[int]
    unnamed: list[str]
    unstated: str | None = None


def passages_that_answer(asked: Asked, texts: list[str], documents: list[str]) -> Covered:
    """Which of `texts` (passages, each with its title; `documents`: each one's `document_context`) may
    answer the question `asked` describes."""
    terms = asked.glossary

    def named(text: str, name: str) -> bool:
        return mentions(text, name, terms)

    usable = [i for i, t in enumerate(texts) if all(named(t, s) for s in asked.subjects)
              and all(_in_place(documents[i], p, terms) for p in asked.places)]
    if usable and asked.attribute:
        with_attribute = [i for i in usable if named(texts[i], asked.attribute)]
        if not with_attribute:
            usable = []
        elif asked.kind and not any(gives(texts[i][a:b], asked.kind, "") for i in with_attribute
                                    for a, b in sentence_spans(texts[i]) if named(texts[i][a:b], asked.attribute)):
            return Covered([], [], asked.attribute)
    if usable:
        return Covered(usable, [])
    wanted = list(dict.fromkeys(asked.subjects + asked.places + ((asked.attribute,) if asked.attribute else ())))
    missing = [s for s in wanted if not any(_in_place(d, s, terms) if s in asked.places else named(t, s)
                                            for t, d in zip(texts, documents))]
    return Covered([], missing or wanted)


# A place is looked for in the passage's document, but only in its title, its lead and the passage: a
# document is about the places it opens with, and reading megabytes for each question is not bounded.
DOCUMENT_LEAD = 2000


def document_context(title: str, text: str, passage: str) -> str:
    """What `passages_that_answer` reads of a passage's document for places."""
    return f"{title}\n{text[:DOCUMENT_LEAD]}\n{passage}"


def _in_place(document: str, place: str, terms: Glossary) -> bool:
    """Whether a document may be about `place`: it names it, or it names no place at all (a yearly report
    that says only "the region" may be about any; one about Poland's warehouses is not about the US)."""
    return mentions(document, place, terms) or not terms.names_a_place(document)


# The kind of answer a question asks for, by its question word. Order matters: 多长时间 asks for a
# number, not a time; "how many years" likewise.
_KIND = (
    (NUMBER, re.compile(r"多少|几[个名位次届天年人种家岁场辆件倍部首条只张本分秒]|多[大高长重远久]|第几|百分之几|"
                        r"\bhow (?:many|much|long|old|far|big|tall|high|often|large|fast)\b|"
                        r"\bwhat (?:percent(?:age)?|share|proportion|number|amount|price)\b", re.I)),
    (TIME, re.compile(r"什么时候|何时|哪一?天|哪一?年|几月|几号|哪个月|几点|哪年|什么时间|"
                      r"^\s*when\b|\bwhen (?:is|was|were|did|does|do|will|has|had)\b|"
                      r"\b(?:what|which) (?:year|date|day|month|time|century|decade)\b|\bin what year\b", re.I)),
    (PERSON, re.compile(r"谁|哪位|何人|哪[一些]?个?人|哪些?(?:选手|球员|演员|歌手|作家|导演|人物|明星)|"
                        r"^\s*who\b|\bwho (?:is|was|were|are|did|does|do|won|wrote|played|sang|sings|plays|"
                        r"invented|founded|directed|created|discovered|owns|has|had|will)\b|\bwhom\b", re.I)),
    (PLACE, re.compile(r"哪里|哪儿|在哪|何地|何处|哪[个座所]?(?:国家|城市|省份?|地方|地区|州|县|城|国)|"
                       r"^\s*where\b|\bwhere (?:is|was|were|are|did|does|do|can|will)\b|"
                       r"\b(?:which|what) (?:country|city|state|place|region|continent|town|province)\b", re.I)),
)


def answer_kind(question: str) -> str | None:
    """The kind of answer a factoid `question` asks for (PERSON, TIME, NUMBER, PLACE), or None."""
    return next((kind for kind, pattern in _KIND if pattern.search(question)), None)


_DATE = re.compile(r"\d{1,4}\s*[年月日号]|[一二三四五六七八九十]+月|[今去明前]年|[上下]半年|世纪|年代|"
                   r"\b(?:1[0-9]|20)\d\d\b|\b\d{3}0s\b|\bcentury\b|\b(?:January|February|March|April|May|June|July|"
                   r"August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\b")
# A number in words counts with its counter or unit after it: a price in 欧元 or 美元 is one (二十五欧元).
_QUANTITY = re.compile(r"\d|[零一二两三四五六七八九十百千万亿]+(?:[个名位次届天年人种家万亿吨元米倍场辆件部首条只张本岁%％块磅克斤周]|"
                       r"欧元|美元|英镑|日元|港元|韩元|卢布|公斤|千克|公里|立方|平方|小时|分钟)|"
                       r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|hundred|"
                       r"thousand|million|billion|half|twice)\b", re.I)
# Capitalised words that are not names: they open sentences or name times.
_NOT_NAMES = frozenset("""the a an this that these those it its he she they his her their in on at of for by with from
to and or but as after before during when while since until if although because however meanwhile also then
there here what which who where why how i we you our my your january february march april may june july august
september october november december monday tuesday wednesday thursday friday saturday sunday""".split())
_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z'’.-]*(?:\s+(?:of|de|la|van|von|der|the|and|&)?\s*[A-Z][A-Za-z'’.-]*)*")
def gives(sentence: str, kind: str | None, question: str) -> bool:
    """Whether `sentence` names an answer of `kind` that `question` does not name (True for no kind)."""
    if kind is None:
        return True
    asked = question.lower()
    if kind == TIME:
        return any(m.group(0).lower() not in asked for m in _DATE.finditer(sentence))
    if kind == NUMBER:
        return any(m.group(0).lower() not in asked or m.group(0).isdigit() and _new_number(sentence, asked)
                   for m in _QUANTITY.finditer(sentence))
    return any(name.lower() not in asked for name in _names(sentence, kind))


def _new_number(sentence: str, asked: str) -> bool:
    return any(n not in asked for n in re.findall(r"\d+(?:\.\d+)?", sentence))


def _names(sentence: str, kind: str) -> list[str]:
    """The people (or places) `sentence` names: jieba's tags over its Chinese, capitalised words elsewhere.
    A work's title in 《》 is not a person, whatever jieba tags in it (《白鹿原》 as nr)."""
    found = []
    if _CJK.search(sentence):
        wanted = ("nr",) if kind == PERSON else ("ns",)
        untitled = _TITLE.sub("《》", sentence)
        found += [w for w, flag in _tagged(untitled) if flag.startswith(wanted) or flag == "eng" and w[:1].isupper()]
    for m in _CAPITALISED.finditer(sentence):
        words = [w for w in m.group(0).split() if w.lower().strip(".'’") not in _NOT_NAMES]
        if words and (m.start() > 0 and not re.search(r"[.!?]\s*$", sentence[: m.start()]) or len(words) > 1):
            found.append(" ".join(words))
    return found


_TITLE = re.compile(r"《[^》]*》")


@lru_cache(maxsize=8192)
def _tagged(sentence: str) -> tuple[tuple[str, str], ...]:
    return tuple((p.word, p.flag) for p in jieba.posseg.cut(sentence))
