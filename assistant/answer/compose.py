"""Answers with citations: the extractive default, the decline, and the objects both return.

The extractive answer quotes the sentences of the retrieved passages that best answer the
question (by embedding similarity and keyword coverage), the best first,
each followed by its [n]. A citation is only ever made from a passage the answer was given,
and its quote is a verbatim slice of the stored document: `quote == text[start:end]`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Protocol
from urllib.parse import quote as quote_url

import numpy as np

from ..config import Config
from ..models.embed import calibration
from ..store.index import Index
from ..store.keyword import tokenize
from ..text import LIST_ITEM, detect_lang, quotable, sentence_spans
from .asked import Asked, analyse, is_yes_no, mentions
from .glossary import configured
from .retrieve import Hit, Query, coverage

_IS_QUESTION = re.compile(r"[?？][”’\"'」』）)\]】]*$")
_ASKS_WHEN = re.compile(r"什么时候|何时|哪一?天|哪一?年|时间|日期|几月|几号|^\s*when\b|what (?:year|date|day|month|time)", re.I)
_ASKS_NUMBER = re.compile(r"多少|几[个名位次届天年人种家]|多[大高长重远久]|how (?:many|much|long|old|far|big|tall|high)", re.I)
_DATE = re.compile(r"\d{1,4}\s*[年月日号]|[一二三四五六七八九十]+月|[今去明前]年|\b(?:1[5-9]|20)\d\d\b|\b(?:January|February|"
                   r"March|April|May|June|July|August|September|October|November|December)\b", re.I)
_NUMBER = re.compile(r"\d|[一二两三四五六七八九十百千万亿]+[个名位次届天年人种家万亿吨元米]|\b(?:one|two|three|four|five|six|"
                     r"seven|eight|nine|ten|eleven|twelve|dozen|hundred|thousand|million|billion)\b", re.I)
# A sentence that announces a list ("其中包含以下四个方面:", "they are: 1. …", "three ways:") is quoted
# with its items, up to _MAX_LIST_CHARS; a list cut there says so.
_INTRODUCES_LIST = re.compile(r"[:：]\s*$|以下.{0,6}(?:方面|几点|几个|步骤|原因|问题|建议)|如下|分别是|包括[:：]|"
                              r"as follows|the following\b|[:：]\s*(?:1|一)\s*[.、．]", re.I)
_MAX_LIST_CHARS = 600
_ENDS_IN_COLON = re.compile(r"[:：]\s*$")
_LIST_CONTINUES = {"zh": "（列表在原文中继续）", "en": "(the list continues in the source)"}
# A sentence that reports a view ("有一些声音认为…", "some argue…") which the next sentence rejects
# ("这种认知…忽略了…", "However, …") is quoted together with its rejection, and never first: quoted
# bare, it reads as the article's advice.
_REPORTED_VIEW = re.compile(r"有(?:一些|一种|些|不少)?(?:人|声音|观点|说法|看法)(?:认为|称|指出|表示|觉得)|有观点(?:认为|称)|"
                            r"\b(?:some|many|critics|others|people|skeptics)\s+(?:argue|say|claim|believe|think|suggest)|"
                            r"\bit is (?:often |widely )?(?:argued|claimed|said|believed)", re.I)
_REBUTTAL = re.compile(r"\s*(?:这种(?:认知|观点|看法|说法|想法)|这(?:并|其实)|然而|但是?|不过|事实上|实际上|其实|"
                       r"(?:however|but|yet|in fact|actually|this (?:view|belief|idea|argument|thinking))\b)", re.I)

DECLINE = {
    "zh": "资料库中没有与这个问题相关的内容，无法回答。可以换个问法，或把相关文章加入资料库后再问。",
    "en": "The library has nothing on this question, so I can't answer it. Try rephrasing, or add articles "
          "on the topic to the library.",
}
DECLINE_UNNAMED = {
    "zh": "资料库中与这个问题最接近的文章都没有提到{names}，无法回答这个问题。",
    "en": "None of the library's passages closest to this question mentions {names}, so I can't answer it.",
}
DECLINE_UNSTATED = {
    "zh": "资料库中的文章提到了“{attribute}”，但没有说明{kind}，无法回答这个问题。",
    "en": "The library mentions “{attribute}” but never says {kind}, so I can't answer this question.",
}
_KIND_ASKED = {"zh": {"person": "是谁", "time": "是什么时候", "number": "是多少", "place": "在哪里"},
               "en": {"person": "who", "time": "when", "number": "how much or how many", "place": "where"}}
# How a decline introduces its related quotes in plain text (the CLI, the OpenAI and MCP replies).
RELATED_LABEL = {"en": "Related, but not an answer:", "zh": "相关内容（不是这个问题的答案）："}
_LEAD = {
    "zh": "根据资料库中的文章：",
    "en": "From the library:",
}
_LEAD_OTHER_LANGUAGE = {
    "zh": "根据资料库中的文章（引文保留原文）：",
    "en": "From the library (quoted in the articles' original language):",
}


@dataclass
class Citation:
    number: int
    doc_id: str
    title: str
    source: str
    quote: str  # == document.text[start:end]
    start: int
    end: int
    page: int | None
    date: str = ""
    same_text: list[str] = field(default_factory=list)  # documents with a near-identical passage (Hit.same_text)
    # Where the quote is, in the document's own terms: {"page": n}, {"slide": n}, {"sheet": name, "row": n}.
    location: dict = field(default_factory=dict)
    # [a, b]: text[a:b] is the answer itself inside the quote (start <= a < b <= end), as the reader's span head
    # marks it; the surfaces emphasise it, the quote stays verbatim. None: nothing marked.
    emphasis: list[int] | None = None

    def to_dict(self) -> dict:
        # `url`: the document page with this quote highlighted, relative to the server (assistant.web).
        return {**asdict(self), "url": document_url(self.doc_id, self.start, self.end, self.emphasis)}


_LOCATION_LABELS = {
    "zh": {"page": "第 {page} 页", "slide": "第 {slide} 张幻灯片", "sheet": "工作表「{sheet}」", "row": "工作表「{sheet}」第 {row} 行"},
    "en": {"page": "p. {page}", "slide": "slide {slide}", "sheet": "sheet {sheet}", "row": "sheet {sheet}, row {row}"},
}


def location_label(location: dict, lang: str) -> str:
    """A citation's `location` as a reader says it: "第 3 页", "slide 2", "sheet 运费, row 5"; '' if none."""
    labels = _LOCATION_LABELS["zh" if lang == "zh" else "en"]
    kind = "row" if "row" in location else next((k for k in ("page", "slide", "sheet") if k in location), None)
    return labels[kind].format(**location) if kind else ""


def document_url(doc_id: str, start: int | None = None, end: int | None = None,
                 emphasis: list[int] | tuple[int, int] | None = None) -> str:
    """The document's page on the server (assistant.web), with text[start:end] highlighted when given, and the
    answer inside it (`emphasis`, text[a:b]) emphasised."""
    url = f"/doc/{quote_url(doc_id, safe='')}"
    if start is None or end is None:
        return url
    url += f"?start={start}&end={end}"
    return url + f"&answer_start={emphasis[0]}&answer_end={emphasis[1]}" if emphasis else url


@dataclass
class Answer:
    text: str
    citations: list[Citation]
    declined: bool
    lang: str
    contexts: list[Hit] = field(default_factory=list)  # the passages the answer was given
    meta: dict = field(default_factory=dict)  # e.g. which generator answered, fallback notes
    # A decline's closest passages, one quote each: what the library holds, shown as related, not as an answer.
    related: list[Citation] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "answer": self.text,
            "declined": self.declined,
            "lang": self.lang,
            "citations": [c.to_dict() for c in self.citations],
            "related": [c.to_dict() for c in self.related],
            "meta": self.meta,
        }


def decline(question: str, contexts: list[Hit] | None = None, *, unnamed: list[str] | None = None,
            unstated: tuple[str, str] | None = None, related: list[Citation] | None = None, **meta) -> Answer:
    """The reply when the library does not answer `question`; `unnamed`: specifics no passage names together;
    `unstated`: (attribute, kind) when passages name the attribute but give no answer of that kind with it;
    `related`: the closest passages' quotes, shown as related, not as an answer (see `related_quotes`)."""
    lang = detect_lang(question)
    if unnamed:
        names = ("、" if lang == "zh" else " and ").join(f"“{n}”" for n in unnamed)
        text = DECLINE_UNNAMED[lang].format(names=names)
        meta = {"reason": "no passage names " + ", ".join(unnamed), **meta}
    elif unstated:
        attribute, kind = unstated
        text = DECLINE_UNSTATED[lang].format(attribute=attribute, kind=_KIND_ASKED[lang][kind])
        meta = {"reason": f"no passage says {_KIND_ASKED['en'][kind]} for {attribute}", **meta}
    else:
        text = DECLINE[lang]
    return Answer(text, [], True, lang, contexts or [], dict(meta), related or [])


@dataclass(frozen=True)
class Scoring:
    """How candidate sentences are scored. match = cosine with the question (sentence model) + coverage x
    share of the question's keyword weight in the sentence: how well the sentence matches the question,
    compared with min_answer_score. score = match + rank / (1 + passage rank) + new_words x min(1, words
    the question does not have / new_words_full) + answer_type when a "when" / "how many" question meets a
    sentence with a date / number + asked x the share of what the question asks (its glossary terms and
    attribute: 仓储费, "return rate") that the sentence names - question_penalty for a sentence that is
    itself a question; it orders the quotes, and those under keep x the best are left out. The bonuses
    favour sentences that add something over those that only restate the question. When the best sentence
    is in another language than the question, the best other_language_pool are reordered: those naming
    more of what is asked first, then by the passage model's cosine. Tuned with bench/tune_answer.py and bench/seed_questions.py (README:
    Quality); `asked` changes no first quote on any half of ../shared/eval (their questions rarely name a
    glossary term) and puts the sentence stating the asked fee first in a seller's questions."""

    coverage: float = 1.0
    rank: float = 0.3
    new_words: float = 0.4
    new_words_full: int = 10
    answer_type: float = 0.2
    asked: float = 0.3
    question_penalty: float = 0.5
    keep: float = 0.5
    other_language_pool: int = 12  # best sentences the passage model reorders when the best is in another language

    def match(self, c: Candidate) -> float:
        return c.similarity + self.coverage * c.coverage

    def score(self, c: Candidate) -> float:
        return (self.match(c) + self.rank / (1 + c.hit_rank) + self.new_words * min(1.0, c.new_words / self.new_words_full)
                + (self.answer_type if c.typed else 0.0) + self.asked * c.asks
                - (self.question_penalty if c.is_question else 0.0))


SCORING = Scoring()


@dataclass
class Candidate:
    """A sentence of a retrieved passage that an answer may quote, with what its score is made of."""

    hit_rank: int
    hit: Hit
    start: int
    end: int
    sentence: str = ""  # text[start:end] as found, before a quote is extended over a list or a rebuttal
    lang: str = ""
    similarity: float = 0.0  # cosine with the question in the sentence model
    coverage: float = 0.0  # share of the question's keyword weight in the sentence
    new_words: int = 0  # words the question does not have
    typed: bool = False  # a date / number for a "when" / "how many" question
    asks: float = 0.0  # share of what the question asks (Asked.asks) that the sentence names, in any language
    is_question: bool = False
    rejected: bool = False  # reports a view that the next sentence rejects (see _REPORTED_VIEW)
    continues: bool = False  # announces a list that goes on past the quote
    emphasis: tuple[int, int] | None = None  # where the answer stands in the sentence (document offsets): the reader's span


def candidates(question: str, query: Query, hits: list[Hit], index: Index,
               asked: Asked | None = None) -> list[Candidate]:
    """Every quotable sentence of `hits` (each once), with its features; `asked`: the question read for what it
    names and asks (`asked.analyse`, with the built-in glossary when not given)."""
    asked = asked or analyse(question)
    found: list[Candidate] = []
    seen: set[tuple[str, int]] = set()
    docs = {h.doc_id: index.document(h.doc_id) for h in hits}
    for rank, hit in enumerate(hits):
        text = docs[hit.doc_id].text
        for start, end in sentence_spans(text, hit.start, hit.end):
            if quotable(text, start, end) and (hit.doc_id, start) not in seen:
                seen.add((hit.doc_id, start))
                found.append(Candidate(rank, hit, start, end))
    sentences = [docs[c.hit.doc_id].text[c.start : c.end] for c in found]
    similarity = index.sentence_similarity(query, sentences)
    expected = _DATE if _ASKS_WHEN.search(question) else _NUMBER if _ASKS_NUMBER.search(question) else None
    words = set(query.terms)
    for c, sentence, sim in zip(found, sentences, similarity):
        tokens = tokenize(sentence)
        c.sentence, c.lang, c.similarity = sentence, detect_lang(sentence), float(sim)
        c.coverage = coverage(query, set(tokens))
        c.new_words = sum(1 for t in tokens if t not in words)
        c.typed = bool(expected and expected.search(sentence))
        c.asks = sum(mentions(sentence, t, asked.glossary) for t in asked.asks) / len(asked.asks) if asked.asks else 0.0
        c.is_question = bool(_IS_QUESTION.search(sentence))
    return found


@dataclass
class Picked:
    """What a picker chose: the quotes, best first, or none, with why (a decline's meta)."""

    chosen: list[Candidate]
    meta: dict = field(default_factory=dict)


class Picker(Protocol):
    """Chooses the quotes of an extractive answer among the candidate sentences, or none (a decline)."""

    def pick(self, question: str, query: Query, lang: str, found: list[Candidate], index: Index,
             config: Config) -> Picked: ...


@dataclass(frozen=True)
class ScoredPicker:
    """The quotes by `Scoring` alone (no reader): a match floor in the question's language, a cosine floor
    in another; the best, then those within `keep` of it."""

    scoring: Scoring = SCORING

    def pick(self, question: str, query: Query, lang: str, found: list[Candidate], index: Index,
             config: Config) -> Picked:
        scoring = self.scoring
        scores = {id(c): scoring.score(c) for c in found}
        top = max(found, key=lambda c: scores[id(c)])
        # A sentence in another language shares no words with the question, so when such a sentence is the
        # best, the answer is held to a floor of its own on cosine alone.
        match = max((scoring.match(c) for c in found if c.lang == lang), default=0.0)
        other = max((c.similarity for c in found if c.lang != lang), default=0.0)
        if (match < config.min_answer_score if top.lang == lang
                else other < calibration(index.models.sentences).answer_other_language):
            return Picked([], {"reason": "no sentence answers the question", "best_match": round(match, 4),
                               "best_other_language": round(other, 4)})
        best = scores[id(top)]
        ranked = sorted(found, key=lambda c: scores[id(c)], reverse=True)
        pool = [c for c in ranked[: scoring.other_language_pool] if c is top or scores[id(c)] >= scoring.keep * best]
        meta = {"best_sentence_score": round(best, 4)}
        if top.lang == lang or index.models.passages == index.models.sentences:
            return Picked(pool[: config.answer_sentences], meta)
        # The sentence model's cosines across languages are weak (they put the evidence first for 4 of
        # our 12 English questions over the Chinese article); the passage model's reorder the best few.
        # A sentence that is itself a question ("社交电商中什么是促成交易的决定性因素?") keeps its penalty.
        similarity = index.passage_similarity(query.vector, [c.sentence for c in pool])
        similarity -= np.array([scoring.question_penalty * c.is_question for c in pool])
        # The glossary reads what is asked across languages ("storage fee": 仓储费), which e5 confuses with
        # its neighbours (订单处理费): a sentence naming it comes first.
        order = np.lexsort((-similarity, -np.array([c.asks for c in pool])))
        return Picked([pool[i] for i in order][: config.answer_sentences], meta)


@dataclass(frozen=True)
class ReaderPicker:
    """`Scoring`'s quotes, held to the trained reader (assistant/models/reader.py): the reader scores
    Scoring's `spec.shortlist` best sentences for "states the answer" (e5's layers at question time: the
    shortlist is what it costs); an answer needs a best logit of at least `spec.threshold` as well as
    Scoring's own floor (when `spec.scoring_floor`), and a quote the reader scores more than `spec.keep`
    under the best is left out (no filler); where the reader's span network marks the answer inside its best
    sentence, that candidate carries it (`Candidate.emphasis`; the answer shows it only in its first quote),
    except for a yes/no question. Scoring still
    orders the quotes: ordering by Scoring's score + 0.1 x the logit found more first quotes on the
    validation articles but lost English questions' over the bundled Chinese article, and a question's year
    (docs/reader.md). The spec's numbers were chosen
    through the whole pipeline on the reader's validation articles (training/tune_picker.py)."""

    reader: object  # models.reader.Reader
    scoring: Scoring = SCORING

    def pick(self, question: str, query: Query, lang: str, found: list[Candidate], index: Index,
             config: Config) -> Picked:
        spec = self.reader.spec
        scored = ScoredPicker(self.scoring).pick(question, query, lang, found, index, config)
        if spec.scoring_floor and not scored.chosen:
            return scored
        shortlist = sorted(found, key=self.scoring.score, reverse=True)[: spec.shortlist]
        reading = self.reader.read(question, [(c.sentence, c.hit.title) for c in shortlist], spans=config.answer_emphasis)
        logits = dict(zip(map(id, shortlist), reading.logits))
        best = float(max(logits.values()))
        if best < spec.threshold:
            return Picked([], {"reason": "no sentence states the answer (reader)", "best_reader": round(best, 3)})
        if config.answer_emphasis and not is_yes_no(question):  # a yes/no answer is no span of a sentence
            for c, span in zip(shortlist, reading.spans):
                c.emphasis = (c.start + span[0], c.start + span[1]) if span else None
        chosen = scored.chosen or shortlist[:1]
        kept = chosen[:1] + [c for c in chosen[1:] if logits.get(id(c), best) >= best - spec.keep]
        return Picked(kept, {**scored.meta, "best_reader": round(best, 3)})


def configured_picker(config: Config) -> Picker:
    """The configured picker: the shipped reader (`reader`, when its files are there), else `Scoring` alone."""
    if config.reader:
        from ..models.reader import shipped

        reader = shipped()
        if reader is not None:
            return ReaderPicker(reader)
    return ScoredPicker()


def extractive_answer(question: str, query: Query, hits: list[Hit], index: Index, config: Config,
                      picker: Picker | None = None, asked: Asked | None = None) -> Answer:
    """Quote the sentences of `hits` that answer `question`, chosen by `picker` (default: `ScoredPicker`);
    decline when it chooses none. `asked`: the question as the caller read it (`asked.analyse`), else read
    here with the configured glossary."""
    lang = detect_lang(question)
    asked = asked or analyse(question, configured(config.glossary))
    found = candidates(question, query, hits, index, asked)
    if not found:
        return decline(question, hits, reason="no sentences")
    picked = (picker or ScoredPicker()).pick(question, query, lang, found, index, config)
    if not picked.chosen:
        return decline(question, hits, related=related_quotes(question, query, hits, index, asked=asked), **picked.meta)
    chosen = picked.chosen

    docs = {c.hit.doc_id: index.document(c.hit.doc_id) for c in chosen}
    for c in chosen:
        _extend_over_list(c, docs[c.hit.doc_id].text)
        _extend_over_rejection(c, docs[c.hit.doc_id].text)
    chosen = [c for i, c in enumerate(chosen) if not any(_overlaps(c, o) for o in chosen[:i])]
    chosen.sort(key=lambda c: c.rejected)  # stable: a view the article rejects is never the answer

    citations, lines = [], []
    # The answer inside a quote is marked only in the first quote, when it is the sentence the reader scored best:
    # through the pipeline on the reader's validation articles (training/tune_span.py), marks there held a gold
    # answer 74-90% of the time, and marks in a later quote (where the reader and Scoring disagree) 25-50%.
    for number, c in enumerate(chosen, 1):
        doc = docs[c.hit.doc_id]
        quote = doc.text[c.start : c.end]
        citations.append(Citation(number, doc.doc_id, doc.title, doc.source, quote, c.start, c.end,
                                  doc.page_at(c.start), doc.date, list(c.hit.same_text), doc.location(c.start),
                                  list(c.emphasis) if c.emphasis and number == 1 else None))
        lines.append(f"{quote} [{number}]" + (_LIST_CONTINUES[lang] if c.continues else ""))
    same_language = all(detect_lang(c.quote) == lang for c in citations)
    lead = (_LEAD if same_language else _LEAD_OTHER_LANGUAGE)[lang]
    return Answer(lead + "\n\n" + "\n\n".join(lines), citations, False, lang, hits,
                  {"generator": "extractive", **picked.meta})


RELATED = 3  # passages a decline shows as related


def related_quotes(question: str, query: Query, hits: list[Hit], index: Index, scoring: Scoring = SCORING,
                   asked: Asked | None = None) -> list[Citation]:
    """The RELATED sentences of `hits` that best match `question`, each passage's best before any passage's
    second, best first, numbered 1..n: what the library holds closest to a question it cannot answer."""
    ranked = sorted(candidates(question, query, hits[:RELATED], index, asked), key=scoring.score, reverse=True)
    firsts = list({c.hit_rank: c for c in reversed(ranked)}.values())  # each passage's best
    chosen = sorted(firsts, key=scoring.score, reverse=True)[:RELATED]
    chosen += [c for c in ranked if c not in chosen][: RELATED - len(chosen)]
    quotes = []
    for c in chosen:
        doc = index.document(c.hit.doc_id)
        quotes.append(Citation(len(quotes) + 1, doc.doc_id, doc.title, doc.source, doc.text[c.start:c.end], c.start,
                               c.end, doc.page_at(c.start), doc.date, list(c.hit.same_text), doc.location(c.start)))
    return quotes


def _extend_over_list(c: Candidate, text: str) -> None:
    """A sentence that introduces a list is quoted with its items: the sentences that follow while each
    starts an item or continues one on its line; `continues` when the list goes on past _MAX_LIST_CHARS.
    One that ends in a colon before anything else ("品牌方和网红都需要的是:" over a heading) takes at least
    the next sentence: alone it says nothing."""
    if not _INTRODUCES_LIST.search(text, c.start, c.end):
        return
    in_item = LIST_ITEM.search(text, c.start, c.end) is not None  # "…分别是:1.加深用户的品牌认知。"
    announces = _ENDS_IN_COLON.search(text, c.start, c.end) is not None
    for n, (start, end) in enumerate(sentence_spans(text, c.end, min(len(text), c.start + 2 * _MAX_LIST_CHARS))):
        item = LIST_ITEM.match(text, start) is not None
        if not item and not (in_item and "\n" not in text[c.end : start]) and not (announces and n == 0):
            return
        if end - c.start > _MAX_LIST_CHARS:
            c.continues = True
            return
        c.end, in_item = end, True


def _extend_over_rejection(c: Candidate, text: str) -> None:
    if not _REPORTED_VIEW.search(text, c.start, c.end):
        return
    following = sentence_spans(text, c.end, min(len(text), c.end + _MAX_LIST_CHARS))
    if following and _REBUTTAL.match(text, following[0][0]):
        c.end, c.rejected = following[0][1], True


def _overlaps(a: Candidate, b: Candidate) -> bool:
    return a.hit.doc_id == b.hit.doc_id and a.start < b.end and b.start < a.end


def verify(answer: Answer, index: Index) -> None:
    """Raise AssertionError if any citation's quote is not the document text at its offsets."""
    for c in answer.citations:
        doc = index.document(c.doc_id)
        assert doc is not None and doc.text[c.start : c.end] == c.quote, f"citation [{c.number}] does not match"

