"""Generated answers from an OpenAI-compatible chat endpoint, with citations the assistant enforces.

Opt-in (`generator = "openai"`): the model is given the retrieved passages, numbered [1]..[k],
and asked to answer in the question's language, marking each claim with [n]. Its reply is
streamed as a draft; then it is checked before it becomes the `Answer`:

1. A marker to a passage that was not given ([9] when 5 were given) is removed.
2. Every sentence is compared, by the embedding model (multilingual, so an English sentence
   is matched against Chinese passages), with every sentence (and pair of consecutive
   sentences, and clause of a long sentence) of every passage. A sentence is dropped when no passage supports it (similarity
   below `SAME_LANGUAGE_THRESHOLD`, or `SUPPORT_THRESHOLD` across languages, or a number the
   passage does not state), when it is not in the question's language, or when it is a
   question, a passage title, a repeat or a degenerate loop. A marker to a passage that does
   not support its sentence is removed; a supported sentence left without a marker is
   attributed to the passage that supports it best.
3. Each surviving marker becomes a `Citation` whose quote is the sentence of that passage
   that best matches the generated sentence, a verbatim slice of the stored document; the
   citations are numbered 1..m in order of first appearance and the markers rewritten.

If nothing supported remains, or the endpoint fails, times out or returns nothing, the
extractive answer for the same passages is returned instead, with a note (first paragraph
of the text, and `meta["note"]`) and the reason in `meta["fallback"]`. So the generated
mode never answers with less support than the offline default.

The streamed pieces are the model's raw draft; the final `Answer` is authoritative and may
differ from it (sentences dropped, markers renumbered).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..config import Config
from ..document import Document
from ..store.index import Index
from ..text import detect_lang, sentence_spans
from .compose import Answer, Citation
from .retrieve import Hit

# A generated sentence is supported by a passage when its cosine similarity (the configured
# embedding model, normalised vectors) with one sentence or two consecutive sentences of the
# passage reaches a threshold, and every number it states occurs in the passage. The threshold
# depends on whether the two are in the same language: an English sentence about a Chinese
# passage scores much lower than a Chinese restatement of it. Measured with the default model
# (use-multilingual-v3) on 46 sentences about the bundled article and the test library:
#   same language:  restatements 0.87-1.0; on-topic claims the passage does not make 0.21-0.65
#                   (0.54 at most once those stating a number the passage lacks are dropped);
#                   off-topic 0.10-0.33.
#   across English and Chinese: translations and paraphrases 0.35-0.70 (median 0.59); on-topic
#                   unsupported claims 0.18-0.35; off-topic 0.10-0.17.
# With these thresholds and the number check, 18 of 21 supported sentences are kept (the three
# dropped are loose English paraphrases of Chinese text, 0.35-0.38), 0 of 16 unsupported and
# 0 of 9 off-topic ones.
SUPPORT_THRESHOLD = 0.45  # across languages
SAME_LANGUAGE_THRESHOLD = 0.65
# A clause is held to a higher threshold than a sentence: short, it matches more claims it does not make
# (on 16 claims about the test library's battery article, clauses at the sentence thresholds kept 2 of 9
# unsupported ones, 1 of 9 before clauses; at +0.05 the same 1, and the restatement the hard-wrapped
# sentence holds, "Sea freight costs about a third of air freight", is kept).
CLAUSE_MARGIN = 0.05
_WINDOW = 2  # sentences of a passage compared together (a generated sentence may merge two)
_DUPLICATE = 0.92  # a generated sentence this close to one already kept repeats it
_MIN_QUOTE_CHARS = 12  # shorter passage sentences (headings, list numbers) are not quoted when others exist
_CLAUSE_END = re.compile(r"[,;:]\s+|[，；：]\s*")

MAX_TOKENS = 512
TEMPERATURE = 0.2
# `llm_timeout` bounds each wait (connecting, the first piece, every pause between pieces);
# the whole reply is abandoned after this many times `llm_timeout`.
TOTAL_TIMEOUT_FACTOR = 4
HISTORY_MESSAGES = 6
_HISTORY_CHARS = 1000

# What the model is told to answer when the passages do not cover the question.
NOT_COVERED = "NOT IN LIBRARY"

FALLBACK_NOTE = {
    "en": "(The language model's answer could not be used, so the answer below quotes the library directly.)",
    "zh": "（未能采用语言模型生成的回答，以下直接引用资料库原文。）",
}
_LANGUAGE = {"en": "English", "zh": "Simplified Chinese (简体中文)"}
_ANSWER_IN = {"en": "Answer in English.", "zh": "请用简体中文回答。"}

SYSTEM_PROMPT = """You answer questions from cross-border e-commerce sellers using only the numbered passages \
from their article library.
Rules:
- State only what the passages say. Do not add outside knowledge.
- End every sentence with the number of the passage it comes from, in square brackets, e.g. [2]. \
Cite only the passages you were given.
- Write the answer in {language}, even when the passages are in another language.
- Be concise: a few sentences, no introduction.
- If the passages do not answer the question, reply only: {not_covered}"""

# [3], [1, 2], [1-3], [^2], 【2】, ［2］
_MARKER = re.compile(r"[\[［【]\^?\s*(\d{1,3}(?:\s*[,，、;；–-]\s*\d{1,3})*)\s*[\]］】]")
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S)
_BULLET = re.compile(r"^\s*(?:[-*•·]\s+|\d{1,2}(?:[.)](?:\s+|$|(?=[\u3400-\u9fff]))|、\s*)|#{1,6}\s+|>\s*)")
_WORDISH = re.compile(r"[A-Za-z\u3400-\u4dbf\u4e00-\u9fff]")
_LEADING_MARKERS = re.compile(r"(?:\s*" + _MARKER.pattern + r")+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CJK_END = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]\W*$")
_SOURCE_MARKER = re.compile(r"\[(\d{1,3})\]")  # footnote markers inside the articles themselves


class GenerationError(Exception):
    """The endpoint could not give a usable reply; the message is the fallback reason."""


def stream_generated(question: str, history: list[dict], hits: list[Hit], index: Index, config: Config,
                     extractive: Answer) -> Iterator[str | Answer]:
    """The model's draft as it streams (str pieces), then the enforced `Answer` (or the fallback)."""
    lang = detect_lang(question)
    started = time.monotonic()
    meta: dict = {"model": config.llm_model}
    streamed = False
    try:
        pieces: list[str] = []
        status: dict = {}
        for piece in _stream_reply(build_messages(question, history, hits, lang), config, status):
            pieces.append(piece)
            streamed = True
            yield piece
        meta["generation_seconds"] = round(time.monotonic() - started, 3)
        draft = "".join(pieces)
        if status.get("finish_reason") == "length":  # cut off at MAX_TOKENS: its last sentence is unfinished
            draft = _complete_sentences(draft)
            meta["truncated"] = True
        if not _THINK.sub("", draft).strip():
            raise GenerationError("the model returned an empty reply")
    except GenerationError as exc:
        meta.setdefault("generation_seconds", round(time.monotonic() - started, 3))
        yield from _fall_back(extractive, lang, str(exc), meta, streamed)
        return

    result = enforce(draft, hits, index, lang)
    meta.update(result.counts())
    if not result.text:
        reason = ("the model said the library does not cover the question" if result.not_covered
                  else "no generated sentence is supported by the passages")
        yield from _fall_back(extractive, lang, reason, meta, streamed)
        return
    yield Answer(result.text, result.citations, False, lang, hits, {"generator": "openai", **meta})


def build_messages(question: str, history: list[dict], hits: list[Hit], lang: str) -> list[dict]:
    """System rules, the recent conversation, then the numbered passages and the question."""
    system = SYSTEM_PROMPT.format(language=_LANGUAGE[lang], not_covered=NOT_COVERED)
    messages = [{"role": "system", "content": system}]
    for m in history[-HISTORY_MESSAGES:]:
        content = str(m.get("content") or "")
        if m.get("role") in ("user", "assistant") and content.strip():
            # Markers of earlier answers refer to other passages: drop them.
            content = _tidy(_MARKER.sub("", content))[:_HISTORY_CHARS]
            messages.append({"role": m["role"], "content": content})
    passages = []
    for n, hit in enumerate(hits, 1):
        text = _SOURCE_MARKER.sub(r"(\1)", hit.text.strip())  # keep the article's own [1] apart from ours
        passages.append(f"[{n}] {hit.title}\n{text}" if hit.title else f"[{n}]\n{text}")
    body = "Passages:\n\n" + "\n\n".join(passages) + f"\n\nQuestion: {question.strip()}\n\n{_ANSWER_IN[lang]}"
    messages.append({"role": "user", "content": body})
    return messages


def _stream_reply(messages: list[dict], config: Config, status: dict) -> Iterator[str]:
    """Text pieces of the model's reply; raises GenerationError on any failure. Sets status["finish_reason"]."""
    import openai

    if not config.llm_base_url:
        raise GenerationError('generator is "openai" but llm_base_url is not set')
    client = _client(config.llm_base_url, config.llm_api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
                     float(config.llm_timeout))
    deadline = time.monotonic() + TOTAL_TIMEOUT_FACTOR * config.llm_timeout
    stream = None
    received = False
    try:
        stream = client.chat.completions.create(
            model=config.llm_model, messages=messages, stream=True, max_tokens=MAX_TOKENS, temperature=TEMPERATURE)
        hidden = _ThinkFilter()
        for chunk in stream:
            if time.monotonic() > deadline:
                raise GenerationError(f"the model did not finish within {TOTAL_TIMEOUT_FACTOR * config.llm_timeout:g} s")
            if not getattr(chunk, "choices", None):
                continue
            choice = chunk.choices[0]
            text = hidden.feed(getattr(choice.delta, "content", None) or "") if choice.delta else ""
            if text:
                received = True
                yield text
            if getattr(choice, "finish_reason", None):
                status["finish_reason"] = choice.finish_reason
            if status.get("finish_reason") == "content_filter":
                raise GenerationError("the endpoint filtered the reply")
    except GenerationError:
        raise
    except openai.APITimeoutError:
        raise GenerationError(f"the model did not answer within {config.llm_timeout:g} s") from None
    except openai.APIConnectionError as exc:
        if received:  # the server went away in the middle of its reply
            raise GenerationError(f"the reply broke off ({_cause(exc)})") from None
        raise GenerationError(f"could not reach {config.llm_base_url}: {_cause(exc)}") from None
    except openai.APIStatusError as exc:
        raise GenerationError(f"{config.llm_base_url} answered HTTP {exc.status_code}: {_short(exc.message)}") from None
    except Exception as exc:  # a broken stream, a malformed event, an unexpected reply
        raise GenerationError(f"the reply broke off ({type(exc).__name__}: {_short(str(exc))})") from None
    finally:
        if stream is not None:
            try:
                stream.close()  # tells the server to stop generating
            except Exception:
                pass


def _complete_sentences(text: str) -> str:
    """`text` up to the end of its last complete sentence (or line)."""
    ends = [m.end() for m in re.finditer(r"(?:\.(?=\s|$|\[)|[!?。！？；])['\"”’」）)]*(?:\s*" + _MARKER.pattern + r")*|\n", text)]
    return text[: ends[-1]] if ends else ""


class _ThinkFilter:
    """Holds back a leading <think>…</think> block (reasoning models) from the streamed draft."""

    def __init__(self) -> None:
        self.buffer = ""
        self.passing = False

    def feed(self, text: str) -> str:
        if self.passing:
            return text
        self.buffer += text
        stripped = self.buffer.lstrip()
        if "<think>".startswith(stripped[:7]) and len(stripped) < 7:
            return ""  # too early to tell
        if not stripped.startswith("<think>"):
            self.passing = True
            return self.buffer
        end = stripped.find("</think>")
        if end < 0:
            return ""
        self.passing = True
        return stripped[end + len("</think>"):].lstrip()


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def _client(base_url: str, api_key: str, timeout: float):
    import openai

    key = (base_url, api_key, timeout)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                                          timeout=openai.Timeout(timeout, connect=min(timeout, 10.0)))
        return _clients[key]


def _cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return _short(str(exc) or type(exc).__name__)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fall_back(extractive: Answer, lang: str, reason: str, meta: dict, streamed: bool) -> Iterator[str | Answer]:
    note = FALLBACK_NOTE[lang]
    answer = Answer(f"{note}\n\n{extractive.text}", list(extractive.citations), extractive.declined, extractive.lang,
                    extractive.contexts,
                    {**extractive.meta, **meta, "generator": "extractive", "fallback": reason, "note": note})
    # After a streamed draft, the fallback follows it in the stream (the final Answer replaces both).
    yield ("\n\n" if streamed else "") + answer.text
    yield answer


# --- enforcement -------------------------------------------------------------------------------


@dataclass
class _Unit:
    """One generated sentence, with the [n] markers that belong to it."""

    line: int
    paragraph: int  # blank lines separate paragraphs
    bullet: str  # the list bullet or number of its line, if any
    gap: str  # what stood between it and the sentence before it on its line
    text: str  # as generated, markers included
    cited: list[int] = field(default_factory=list)  # passage numbers, valid or not

    @property
    def claim(self) -> str:
        return " ".join(_MARKER.sub(" ", self.text).split())


@dataclass
class Enforced:
    text: str
    citations: list[Citation]
    sentences_generated: int
    sentences_kept: int
    citations_removed: int
    citations_invalid: int
    citations_added: int
    sentences_other_language: int
    not_covered: bool

    def counts(self) -> dict:
        return {"sentences_generated": self.sentences_generated, "sentences_kept": self.sentences_kept,
                "citations_removed": self.citations_removed, "citations_invalid": self.citations_invalid,
                "citations_added": self.citations_added, "sentences_other_language": self.sentences_other_language}


@dataclass
class _Passage:
    hit: Hit
    doc: Document
    spans: list[tuple[int, int]]  # its sentences, as offsets in the document
    # What a generated sentence is compared with, as (start, end, the sentence it quotes or -1): runs of
    # 1.._WINDOW consecutive sentences (a generated sentence may merge two), and the clauses of a long
    # sentence (it may restate one: "It costs about a third of air freight for the same volume, which
    # makes it the usual choice for bulky stock" supports "Sea freight costs about a third of air freight").
    units: list[tuple[int, int, int]]
    vectors: np.ndarray  # one per unit
    langs: list[str]  # one per unit
    numbers: set[str]  # every number the passage (or its title) states


def enforce(draft: str, hits: list[Hit], index: Index, lang: str | None = None) -> Enforced:
    """Keep only the sentences of `draft` the passages support (and, given `lang`, that are in that
    language), with exact, renumbered citations."""
    text = _THINK.sub("", draft).strip()
    not_covered = NOT_COVERED.lower() in text.lower()
    units = [u for u in split_units(text) if NOT_COVERED.lower() not in u.text.lower()]
    generated = sum(1 for u in units if _WORDISH.search(u.claim))
    invalid = sum(1 for u in units for n in dict.fromkeys(u.cited) if not 1 <= n <= len(hits))
    total_markers = sum(len(dict.fromkeys(u.cited)) for u in units)
    claims = [u for u in units if _WORDISH.search(u.claim)]
    if not claims or not hits:
        return Enforced("", [], generated, 0, total_markers, invalid, 0, 0, not_covered)

    passages = _passages(hits, index)
    vectors = index.sentence_embedder.encode([u.claim for u in claims])
    numbers: dict[tuple[str, int, int], int] = {}
    citations: list[Citation] = []
    kept_units: list[tuple[_Unit, str]] = []
    kept = added = surviving = other_language = 0
    titles = {_plain(h.title) for h in hits if h.title}
    seen: list[np.ndarray] = []
    for unit, vector in zip(claims, vectors):
        if not _is_claim(unit.claim, titles) or any(float(v @ vector) >= _DUPLICATE for v in seen):
            continue  # a question, a heading, a loop, or a sentence the answer already has: dropped
        seen.append(vector)
        claim_lang = detect_lang(unit.claim)
        if lang and claim_lang != lang:
            other_language += 1
            continue  # the answer is in the question's language; a quote-like copy is not an answer
        stated = _numbers_in(unit.claim)
        support = [_support(p, vector, stated, claim_lang) for p in passages]  # (score, quote span) per passage
        cited = [n for n in dict.fromkeys(unit.cited) if 1 <= n <= len(hits)]
        backing = [n for n in cited if support[n - 1][0] >= 1.0]
        if not backing:
            best = max(range(len(passages)), key=lambda i: support[i][0])
            if support[best][0] < 1.0:
                continue  # no passage supports it: dropped
            backing = [best + 1]
            added += 1
        kept += 1
        surviving += len([n for n in backing if n in cited])
        new_numbers = []
        for n in backing:
            start, end = support[n - 1][1]
            doc = passages[n - 1].doc
            key = (doc.doc_id, start, end)
            if key not in numbers:
                numbers[key] = len(numbers) + 1
                citations.append(Citation(numbers[key], doc.doc_id, doc.title, doc.source, doc.text[start:end],
                                          start, end, doc.page_at(start), doc.date,
                                          list(passages[n - 1].hit.same_text), doc.location(start)))
            new_numbers.append(numbers[key])
        kept_units.append((unit, _rewrite(unit.text, backing, new_numbers)))
    text = _assemble(kept_units)
    return Enforced(text, citations, generated, kept, total_markers - surviving, invalid, added, other_language,
                    not_covered)


def split_units(text: str) -> list[_Unit]:
    """The sentences of generated text, line by line. A marker that opens a sentence ("… sea. [1] Air …")
    belongs to the sentence before it; a bullet or list number stays with its line."""
    units: list[_Unit] = []
    paragraph = 0
    for line_no, line in enumerate(text.split("\n")):
        if not line.strip():
            paragraph += 1
            continue
        bullet = _BULLET.match(line)
        offset = bullet.end() if bullet else 0
        previous_end = offset
        first = True
        for start, end in sentence_spans(line, offset):
            gap = line[previous_end:start]
            lead = _LEADING_MARKERS.match(line, start, end)
            if lead and units:
                gap = ""
                units[-1].text += " " + lead.group(0).strip()
                units[-1].cited += _numbers(lead.group(0))
                start = lead.end()
                while start < end and line[start].isspace():
                    start += 1
            if start < end:
                units.append(_Unit(line_no, paragraph, line[:offset].strip(), "" if first else gap,
                                   line[start:end], _numbers(line[start:end])))
                first = False
            previous_end = end
    return _merge_short(units)


def _merge_short(units: list[_Unit]) -> list[_Unit]:
    """A fragment too short to be a claim ("e.g.", "Yes.") is read together with the sentence after it."""
    out: list[_Unit] = []
    carry: _Unit | None = None
    for unit in units:
        if carry is not None and carry.line == unit.line:
            unit.text, unit.gap, unit.bullet = carry.text + (unit.gap or ("" if _CJK_END.search(carry.text) else " ")) + unit.text, carry.gap, carry.bullet
            unit.cited = carry.cited + unit.cited
        elif carry is not None:
            out.append(carry)
        carry = None
        claim = unit.claim
        if len(_CJK.findall(claim)) < 4 and len(claim) < 8:
            carry = unit
        else:
            out.append(unit)
    if carry is not None:
        out.append(carry)
    return out


def _assemble(kept: list[tuple[_Unit, str]]) -> str:
    """The kept sentences in their lines, with the lines' bullets and the paragraph breaks kept."""
    lines: dict[int, str] = {}
    paragraphs: dict[int, int] = {}
    number = 0  # a numbered list stays numbered 1, 2, 3 when items are dropped
    for unit, text in kept:
        if unit.line in lines:
            lines[unit.line] += (unit.gap or ("" if _CJK_END.search(lines[unit.line]) else " ")) + text
            continue
        bullet = unit.bullet
        if re.fullmatch(r"\d+[.)、]", bullet):
            number += 1
            bullet = f"{number}{bullet[-1]}"
        else:
            number = 0
        lines[unit.line] = (bullet + ("" if bullet.endswith("、") else " ") if bullet else "") + text
        paragraphs[unit.line] = unit.paragraph
    out: list[str] = []
    previous = None
    for line in sorted(lines):
        if previous is not None and paragraphs[line] != paragraphs[previous]:
            out.append("")
        out.append(lines[line])
        previous = line
    return "\n".join(out).strip()


def _numbers(text: str) -> list[int]:
    out: list[int] = []
    for group in _MARKER.finditer(text):
        for part in re.split(r"\s*[,，、;；]\s*", group.group(1)):
            bounds = re.split(r"\s*[–-]\s*", part)
            if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit() and 0 < int(bounds[1]) - int(bounds[0]) < 10:
                out += range(int(bounds[0]), int(bounds[1]) + 1)
            elif part.strip().isdigit():
                out.append(int(part))
    return out


def _rewrite(text: str, backing: list[int], new_numbers: list[int]) -> str:
    """Markers rewritten to the new citation numbers: kept ones where they stood, dropped ones removed,
    and a marker appended when the sentence had none that survived."""
    mapping = dict(zip(backing, new_numbers))
    placed: set[int] = set()

    def replace(m: re.Match) -> str:
        out = []
        for n in _numbers(m.group(0)):
            if n in mapping and mapping[n] not in placed:
                placed.add(mapping[n])
                out.append(f"[{mapping[n]}]")
        return "".join(out)

    rewritten = _tidy(_MARKER.sub(replace, text))
    missing = [f"[{m}]" for m in new_numbers if m not in placed]
    return rewritten + (" " + "".join(missing) if missing else "")


def _tidy(text: str) -> str:
    """Spaces left where markers were removed: doubled, or before punctuation."""
    return re.sub(r"[ \t]+(?=[.,;:!?。，；：！？]|$)", "", re.sub(r"[ \t]{2,}", " ", text.strip())).strip()


def _passages(hits: list[Hit], index: Index) -> list[_Passage]:
    passages, texts = [], []
    for hit in hits:
        doc = index.document(hit.doc_id)
        spans = [(a, b) for a, b in sentence_spans(doc.text, hit.start, hit.end) if _WORDISH.search(doc.text[a:b])]
        # A heading restates the title and a fragment proves little: quote real sentences when there are any.
        title = doc.title.strip().lower()
        spans = ([(a, b) for a, b in spans if b - a >= _MIN_QUOTE_CHARS and doc.text[a:b].strip("# ").lower() != title]
                 or spans or [(hit.start, hit.end)])
        units = [(spans[i][0], spans[j][1], i if i == j else -1)
                 for i in range(len(spans)) for j in range(i, min(i + _WINDOW, len(spans)))]
        units += [(a, b, k) for k, span in enumerate(spans) for a, b in _clauses(doc.text, *span)]
        texts += [doc.text[a:b] for a, b, _ in units]
        passages.append(_Passage(hit, doc, spans, units, np.zeros(0), [detect_lang(t) for t in texts[-len(units):]],
                                 _numbers_in(f"{hit.title}\n{hit.text}", True)))
    vectors = _encode(index, texts)
    i = 0
    for p in passages:
        p.vectors = vectors[i : i + len(p.units)]
        i += len(p.units)
    return passages


def _clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The clauses of text[start:end] when it has more than one long enough to quote (none otherwise)."""
    pieces, pos = [], start
    for m in _CLAUSE_END.finditer(text, start, end):
        pieces.append((pos, m.start()))
        pos = m.end()
    pieces.append((pos, end))
    pieces = [(a + len(text[a:b]) - len(text[a:b].lstrip()), b) for a, b in pieces]
    pieces = [(a, b) for a, b in pieces if b - a >= _MIN_QUOTE_CHARS]
    return pieces if len(pieces) > 1 else []


def _is_claim(claim: str, titles: set[str]) -> bool:
    """Not a question, not a passage's title repeated as a heading, not a model stuck in a loop
    ("退货政策解读：退货政策解读：…", "The answer is no. The answer is no. …")."""
    if claim.rstrip("*_ ").endswith(("?", "？")):
        return False
    # "Shipping lithium batteries to Europe", "Answer: 退货政策解读", "The passage is: [1] <title>"
    after_label = re.split(r"[:：]", claim, maxsplit=1)[-1] if len(re.split(r"[:：]", claim)[0]) <= 30 else claim
    if _plain(claim) in titles or _plain(after_label) in titles:
        return False
    grams = [claim[i : i + 3] for i in range(len(claim) - 2)]
    if len(grams) >= 30 and len(set(grams)) / len(grams) < 0.4:
        return False
    # "… are trust in social commerce, trust in social commerce, and trust in social commerce."
    # (Real sentences of 12+ words or characters in the articles have at least 64% distinct ones.)
    words = re.findall(r"[A-Za-z]+|\d+|[\u3400-\u4dbf\u4e00-\u9fff]", claim.lower())
    return not (len(words) >= 12 and len(set(words)) / len(words) < 0.5)


def _plain(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).lower()


_vector_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_CACHE_SIZE = 4096
_cache_lock = threading.Lock()


def _encode(index: Index, texts: list[str]) -> np.ndarray:
    """Embeddings of passage sentences, cached: a conversation keeps coming back to the same passages."""
    model = index.sentence_embedder.name
    with _cache_lock:
        missing = list(dict.fromkeys(t for t in texts if (model, t) not in _vector_cache))
    if missing:
        fresh = index.sentence_embedder.encode(missing)
        with _cache_lock:
            for t, v in zip(missing, fresh):
                _vector_cache[(model, t)] = v
            while len(_vector_cache) > _CACHE_SIZE:
                _vector_cache.popitem(last=False)
    with _cache_lock:
        out = []
        for t in texts:
            v = _vector_cache.get((model, t))
            if v is None:  # evicted meanwhile by another thread
                v = index.sentence_embedder.encode([t])[0]
            else:
                _vector_cache.move_to_end((model, t))
            out.append(v)
    return np.stack(out) if out else np.zeros((0, index.sentence_embedder.dim), dtype=np.float32)


def _support(passage: _Passage, vector: np.ndarray, numbers: set[str], lang: str) -> tuple[float, tuple[int, int]]:
    """How well the passage supports a sentence in `lang`, as a multiple of the threshold that applies
    (>= 1.0 supports), and the passage sentence that matches it best (the quote)."""
    cosine = passage.vectors @ vector
    quotable = [u for u, (_, _, sentence) in enumerate(passage.units) if sentence >= 0]
    best_unit = max(quotable, key=lambda u: cosine[u])
    clause = [k >= 0 and (a, b) != passage.spans[k] for a, b, k in passage.units]
    thresholds = np.array([(SAME_LANGUAGE_THRESHOLD if w == lang else SUPPORT_THRESHOLD) + CLAUSE_MARGIN * c
                           for w, c in zip(passage.langs, clause)])
    score = float((cosine / thresholds).max())
    if numbers - passage.numbers:
        score = min(score, 0.0)  # it states a number the passage does not
    return score, passage.spans[passage.units[best_unit][2]]


_EN_NUMBERS = {w: str(n) for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_EN_NUMBERS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
                    "ninety": "90", "hundred": "100", "thousand": "1000", "million": "1000000"})
_ZH_DIGITS = {c: n for n, c in enumerate("零一二三四五六七八九")} | {"两": 2, "〇": 0}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_EN_WORD = re.compile(r"[A-Za-z]+")
_ZH_RUN = re.compile(r"[零〇一二两三四五六七八九十百千万]+")
_ZH_QUANTITY = re.compile(r"([零〇一二两三四五六七八九十百千万]+)(?=个|倍|周|天|年|月|日|次|项|成|元|件|名|位|小时|公斤|岁|折|%)")


def _numbers_in(text: str, loose: bool = False) -> set[str]:
    """The numbers a text states: digits, English number words ("five"; "one" only when `loose`) and
    Chinese numerals before a unit (三周, 两倍). `loose` (for passages) reads every Chinese numeral
    (五, 十八, 两), so that a claim's "5 to 6 weeks" is found in "五到六周": being generous on the
    passage side can only keep a claim, never drop one."""
    found = {_plain_number(m.group(0)) for m in _DIGITS.finditer(text)}
    for m in _EN_WORD.finditer(text):
        word = m.group(0).lower()
        if word in _EN_NUMBERS and (loose or word != "one"):
            found.add(_EN_NUMBERS[word])
    if not loose:  # a claim's Chinese numbers count when they quantify something: 三周, 两倍, 十八个
        for m in _ZH_QUANTITY.finditer(text):
            value = _zh_value(m.group(1))
            if value is not None and m.group(1) != "一":
                found.add(str(value))
    else:
        for m in _ZH_RUN.finditer(text):
            run = m.group(0)
            found.update(str(_ZH_DIGITS[c]) for c in run if c in _ZH_DIGITS)
            value = _zh_value(run)
            if value is not None:
                found.add(str(value))
    return found


def _plain_number(text: str) -> str:
    text = text.replace(",", "")
    return text.rstrip("0").rstrip(".") if "." in text else text.lstrip("0") or "0"


def _zh_value(run: str) -> int | None:
    total, current = 0, 0
    for c in run:
        if c in _ZH_DIGITS:
            current = _ZH_DIGITS[c]
        elif c in _ZH_UNITS:
            total += (current or 1) * _ZH_UNITS[c]
            current = 0
        else:
            return None
    return total + current
