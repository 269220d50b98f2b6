"""The one function of the answer stage: a question in, an `Answer` out (`Responder.answer`).

Every rule that declines a question is here or in what this module calls: no passage reaches the relevance
floor (`min_relevance`, calibrated per model: `calibrated`); the passages do not name what the question
names, or never state what it asks (`asked.passages_that_answer`); no sentence answers (`compose`: the
`Picker`, scored floors or the trained reader); a generated draft keeps no supported sentence (`generate`).
A decline is in the question's language and carries the closest passages as related quotes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

from ..config import Config
from ..models.embed import calibration
from ..store.index import Index
from .asked import analyse, document_context, passages_that_answer
from .compose import RELATED, Answer, configured_picker, decline, extractive_answer, related_quotes
from .glossary import configured
from .retrieve import Query, Retriever

Message = dict  # {"role": "user" | "assistant", "content": str}


def calibrated(config: Config, index: Index) -> Config:
    """`config` with the decline floors left unset (min_relevance, min_answer_score) taken from the calibration
    of the models the index was built with."""
    passages, sentences = calibration(index.models.passages), calibration(index.models.sentences)
    return config.replace(
        min_relevance=passages.relevance if config.min_relevance is None else config.min_relevance,
        min_answer_score=sentences.answer if config.min_answer_score is None else config.min_answer_score)


class Responder:
    """Answers questions from one index: retrieval, the decision to answer or decline, the quotes (or the
    generated answer). `config` holds calibrated floors (`calibrated`)."""

    def __init__(self, index: Index, config: Config):
        self.index, self.config = index, config
        self.retriever = Retriever(index, config)
        configured(config.glossary)  # a broken glossary file is refused now, by file and line
        # The trained reader chooses the quotes, and declines when none states the answer (`reader`); its
        # files are checked now: a damaged one is refused by name.
        self.picker = configured_picker(config)

    def prepare(self, question: str, history: list[Message] | None = None) -> Query:
        """The question prepared for searching, with the previous question when it points back to it."""
        return self.retriever.prepare(_with_context(question, history, self.config.max_question_chars))

    def answer(self, question: str, history: list[Message] | None = None, collection: str | None = None) -> Answer:
        """The answer to `question` from the library (from `collection` only, when named), or a decline."""
        answer = None
        for answer in self.stream(question, history, collection=collection):
            pass
        assert isinstance(answer, Answer)
        return answer

    def stream(self, question: str, history: list[Message] | None = None, query: Query | None = None,
               collection: str | None = None) -> Iterator[str | Answer]:
        """`answer`, as it is produced: pieces of the answer text, then the final `Answer`. `query`: the question
        as `prepare` made it, when the caller has it already."""
        query = query or self.prepare(question, history)
        hits = self.retriever.search(query, k=self.config.top_k, collection=collection)
        relevant = [self.retriever.widen(h, self.config.context_chars)
                    for h in hits if h.relevance >= self.config.min_relevance]
        asked = analyse(question, configured(self.config.glossary))
        documents = {h.doc_id: self.index.document(h.doc_id) for h in relevant}
        covered = passages_that_answer(asked, [f"{h.title}\n{h.text}" for h in relevant],
                                       [document_context(documents[h.doc_id].title, documents[h.doc_id].text, h.text)
                                        for h in relevant])
        if not covered.usable:
            shown = relevant or [self.retriever.widen(h, self.config.context_chars) for h in hits[:RELATED]]
            related = related_quotes(question, query, shown, self.index, asked=asked)
            if relevant:
                answer = decline(question, hits, unnamed=covered.unnamed, related=related,
                                 unstated=(covered.unstated, asked.kind) if covered.unstated else None)
            else:
                best = max((h.relevance for h in hits), default=0.0)
                answer = decline(question, hits, related=related, reason="below relevance floor",
                                 best_relevance=round(best, 4))
            yield answer.text
            yield answer
            return
        relevant = [relevant[i] for i in covered.usable]
        extractive = _with_marked_references(extractive_answer(question, query, relevant, self.index, self.config,
                                                               self.picker, asked))
        # A passage can pass the relevance floor without one sentence that answers: the model
        # would only be asked to find what the scoring already could not, so it is not called.
        if self.config.generator == "openai" and not extractive.declined:
            from .generate import stream_generated

            yield from stream_generated(question, history or [], relevant, self.index, self.config, extractive)
            return
        lines = extractive.text.split("\n\n")
        for n, line in enumerate(lines):
            yield line + ("\n\n" if n < len(lines) - 1 else "")
        yield extractive


# An article's own reference markers ("风险有很多[3]") look like an answer's citations in plain text.
_ARTICLE_REF = re.compile(r"\[(\d{1,3})\]")


def mark_references(text: str) -> str:
    """`text` with its reference markers in full-width brackets, [3] → ［3］: in an answer's text, [n] is
    then always one of its citations. (The chat shows them as muted superscripts, `web.document`.)"""
    return _ARTICLE_REF.sub(r"［\1］", text)


def _with_marked_references(answer: Answer) -> Answer:
    """The answer with the references inside its quotes marked; the citations keep the document's own text
    (quote == text[start:end])."""
    pieces, pos = [], 0
    for c in answer.citations:
        at = answer.text.find(c.quote, pos) if c.quote else -1
        if at >= 0:
            pieces += [answer.text[pos:at], mark_references(c.quote)]
            pos = at + len(c.quote)
    return dataclasses.replace(answer, text="".join(pieces) + answer.text[pos:])


def _with_context(question: str, history: list[Message] | None, limit: int) -> str:
    """A follow-up ("what about its risks?") is searched together with the previous question.

    Only questions that point back (a pronoun, "what about", "那…") get the context, so a new
    topic in the same conversation is answered, or declined, on its own. The previous message
    counts with its last `limit` characters only (a question is at most that long): a pasted
    article as the previous message must not make searching cost in proportion to it.
    """
    previous = next((m["content"] for m in reversed(history or []) if m.get("role") == "user" and m.get("content")),
                    None)
    if previous and _FOLLOW_UP.search(question):
        # The question comes first: the model reads a bounded number of tokens from the beginning.
        return f"{question}\n{previous[-limit:]}"
    return question


_FOLLOW_UP = re.compile(
    r"\b(?:it|its|it's|this|that|these|those|they|them|their|he|she|his|her|him|there|same|above|"
    r"what about|how about|and what|why not|more|else|also)\b|^(?:and|but|so|then)\b|"
    r"[它其该此这那]|他们|她们|它们|还有|另外|以上|上述|刚才|前面|然后呢|呢[？?]?$",
    re.IGNORECASE,
)
