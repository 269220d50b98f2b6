"""The one entry point: `Assistant` opens (or builds) an index and answers questions from it.

The CLI, the web chat and the REST API are thin layers over this class.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from .answer.compose import Answer
from .answer.respond import Message, Responder, calibrated
from .answer.retrieve import Hit
from .config import Config, load_config
from .document import Document
from .ingest.indexing import IndexReport, Progress, no_progress, update_index
from .ingest.library import DocumentInfo, FileOutcome, Library
from .ingest.load import LoadError, read_file
from .log.questions import Entry, QuestionLog, Turn, Vote, new_id, open_question_store, utcnow, valid_id
from .store.collections import Collections, parse_tokens
from .store.index import Index
from .text import detect_lang

class Refused(ValueError):
    """A question or request outside the limits: `status` for HTTP, the message in English and Chinese.

    str() is the message in the language of the text refused, for the CLI and the Python API; the web
    layer picks the language of each path (`message`)."""

    def __init__(self, status: int, en: str, zh: str, lang: str = "en"):
        super().__init__(zh if lang == "zh" else en)
        self.status, self.en, self.zh = status, en, zh

    def message(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


_ZH_WHAT = {"question": "问题", "query": "查询"}


def check_length(text: str, limit: int, what: str = "question") -> None:
    """Refused (413) when `text` is longer than `limit` (max_question_chars), on every path that asks or searches."""
    if len(text) > limit:
        raise Refused(413, f"The {what} is too long: {len(text)} characters; the limit is {limit} "
                           "(max_question_chars). Please shorten it.",
                      f"{_ZH_WHAT.get(what, what)}太长：{len(text)} 个字符，上限是 {limit} 个。请缩短后再问。",
                      detect_lang(text))


class Assistant:
    def __init__(self, index: Index, config: Config):
        self.index = index
        # Thresholds left unset take the calibration of the models the index was built with.
        self.config = calibrated(config, index)
        # The answer stage (answer.respond); its glossary and reader files are checked now, by name.
        self.responder = Responder(index, self.config)
        self.retriever = self.responder.retriever
        # Questions being answered now: a server's library jobs leave them the interpreter meanwhile (ingest.pace).
        self._answering = 0
        self._answering_lock = threading.Lock()
        parse_tokens(self.config.tokens)  # and a broken `tokens` entry, by its name
        # The question log (question_log): None when off, and then nothing is recorded.
        self.questions = (QuestionLog(open_question_store(self.config, index.folder), self.config.question_log_days,
                                      self.config.question_log_rows) if self.config.question_log else None)

    @property
    def picker(self):
        """The responder's picker: the one answers use (set `responder.picker` to change it)."""
        return self.responder.picker

    @classmethod
    def open(cls, folder: str | Path | None = None, config: Config | None = None, **overrides) -> Assistant:
        """Open a built index folder (default: the configured `index`, i.e. ./index)."""
        config = (config or load_config()).replace(**overrides)
        return cls(Index(folder or config.index, config), config)

    @classmethod
    def build(cls, library: str | Path | list[str | Path] | None = None, folder: str | Path | None = None,
              config: Config | None = None, *, rebuild: bool = False, progress: Progress = no_progress,
              **overrides) -> Assistant:
        """Index the library (files or folders) into `folder`, then open it. See `index_library`."""
        config = (config or load_config()).replace(**overrides)
        folder = folder or config.index
        index_library(library, folder, config, rebuild=rebuild, progress=progress)
        return cls.open(folder, config)

    def search(self, query: str, k: int = 5, mode: str = "hybrid", collection: str | None = None) -> list[Hit]:
        """The k passages that best match `query`; mode is "hybrid", "dense" or "keyword". In `collection`
        (an id, see `collections`) when named, else in the whole library."""
        check_length(query.strip(), self.config.max_question_chars, "query")
        return self.retriever.search(query, k=k, mode=mode, collection=self._collection(collection))

    def ask(self, question: str, history: list[Message] | None = None, *, surface: str = "python",
            conversation: str | None = None, client: dict | None = None, collection: str | None = None) -> Answer:
        """Answer `question` from the library (from `collection` only, when named), with citations, or decline
        in the question's language.

        The keywords are for the question log (see `ask_stream`)."""
        answer = None
        for answer in self.ask_stream(question, history, surface=surface, conversation=conversation, client=client,
                                      collection=collection):
            pass
        assert isinstance(answer, Answer)
        return answer

    def ask_stream(self, question: str, history: list[Message] | None = None, *, surface: str = "python",
                   conversation: str | None = None, client: dict | None = None,
                   collection: str | None = None) -> Iterator[str | Answer]:
        """`ask`, as it is produced: pieces of the answer text (str), then the final `Answer`.

        The pieces are for display while the answer is being made; the final `Answer` is
        authoritative (a generated draft may lose unsupported sentences in enforcement).

        With the question log on, the answer is recorded as asked through `surface` and its id is
        `answer.meta["id"]` (for `feedback`). `conversation`, an id (`questions.new_id()`), continues that
        conversation: its stored turns are the history unless `history` is given, and this turn is added.
        `client` ({"ip", "user_agent"}) is kept only with question_log_clients.
        """
        started = time.perf_counter()
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        check_length(question, self.config.max_question_chars)
        if conversation is not None and not valid_id(conversation):
            raise ValueError("a conversation id is 16 to 64 letters, digits, '-' or '_'")
        collection = self._collection(collection)
        if history is None and conversation is not None:
            history = [m for turn in self.conversation(conversation) for m in turn.messages()]
        with self._answering_lock:
            self._answering += 1
        try:
            query = self.responder.prepare(question, history)
            for piece in self.responder.stream(question, history, query, collection):
                if isinstance(piece, Answer) and self.questions is not None:
                    self._record(piece, question, query.vector, surface, conversation, client, started, collection)
                yield piece
        finally:
            with self._answering_lock:
                self._answering -= 1

    def _record(self, answer: Answer, question: str, vector, surface: str, conversation: str | None,
                client: dict | None, started: float, collection: str | None) -> None:
        now = utcnow()
        answer.meta["id"] = new_id()
        if conversation is not None:
            answer.meta["conversation_id"] = conversation
        entry = Entry(answer.meta["id"], now, surface, question, answer.lang, answer.declined,
                      str(answer.meta.get("reason", "declined")) if answer.declined else "",
                      [{"doc_id": c.doc_id, "start": c.start, "end": c.end} for c in answer.citations],
                      time.perf_counter() - started, conversation, vector,
                      client if self.config.question_log_clients else None, collection)
        turn = Turn(conversation, time.time_ns() // 1000, now, question, answer.to_dict()) if conversation else None
        self.questions.record(entry, turn)

    def document(self, doc_id: str) -> Document | None:
        """The stored document (text, title, author, date, source, path, pages) or None."""
        return self.index.document(doc_id)

    # --- the library (issue #12): the same operations as the web's Library view and the CLI -------------
    @cached_property
    def library(self) -> Library:
        return Library(self.index.folder, self.index.store, self.config, answering=lambda: self._answering > 0)

    @cached_property
    def collections(self) -> Collections:
        """The library's collections: list, create, rename, delete an empty one, add or move documents."""
        return Collections(self.index.store, self.config, self.index.folder)

    def _collection(self, collection: str | None) -> str | None:
        """The collection to scope to: None for the whole library; CollectionError for an unknown one."""
        return None if collection is None else self.collections.check(collection)

    def add_files(self, files: list[str | Path | tuple[str, bytes]], progress: Progress = no_progress,
                  collection: str | None = None) -> list[FileOutcome]:
        """Add files (paths, or (name, bytes) pairs) to the library folder's uploads/ and index them (into
        `collection` when named: new documents go into it only, ones already in the library into it too).

        Each file's outcome is added, updated, unchanged (the same content is already there) or rejected
        with the reason `assistant index` gives; a rejected file is not stored. The answers see new
        documents as soon as the run commits."""
        outcomes: list[FileOutcome | None] = []  # None: the outcome comes from the library
        items = []
        for f in files:
            try:
                items.append(f if isinstance(f, tuple) else (Path(f).name, _read_path(Path(f), self.config.max_file_mb)))
                outcomes.append(None)
            except LoadError as exc:  # one missing or unreadable path is that file's outcome, not everyone's
                outcomes.append(FileOutcome(Path(f).name, "rejected", exc.reason))
        added = iter(self.library.add(items, progress, collection=self._collection(collection)) if items else [])
        return [o if o is not None else next(added) for o in outcomes]

    def add_urls(self, urls: list[str], progress: Progress = no_progress, collection: str | None = None) -> list[FileOutcome]:
        """Fetch each link and add the page (a web page, WeChat article or PDF) to the library folder's
        uploads/links/, its URL kept as the documents' source. Each link's outcome is added, updated (the
        article changed), unchanged or rejected with the reason (an unsafe address, too large, too slow …);
        see `assistant.ingest.fetch` for the bounds (fetch_timeout, max_fetch_mb, allowed_fetch_hosts)."""
        return self.library.add_urls(urls, progress, collection=self._collection(collection))

    def remove_file(self, name: str, progress: Progress = no_progress) -> list[str]:
        """Remove a library file by its path in the library folder ("uploads/report.pdf"), with every
        document it brought; a file that could not be indexed can be removed too. LookupError if none."""
        return self.library.remove_file(name, progress)

    def remove_document(self, doc_id: str, progress: Progress = no_progress, collection: str | None = None) -> list[str]:
        """Remove a document: its files move to the library's .removed/ folder (so `assistant index` does
        not bring it back) and the index drops it. Returns the files moved; LookupError for an unknown id.
        From a `collection`: a document in another collection too only leaves this one (returns [])."""
        if collection is not None and not self.collections.take_out([doc_id], collection):
            return []
        return self.library.remove(doc_id, progress)

    def documents(self, query: str = "", offset: int = 0, limit: int = 50,
                  collection: str | None = None) -> tuple[int, list[DocumentInfo]]:
        """(how many match, a page of them): the documents whose title holds `query` (in `collection`, when
        named), newest first."""
        return self.library.documents(query, offset, limit, self._collection(collection))

    # --- the question log (issue #21): conversations, feedback, Insights -------------------------------
    def conversation(self, conversation_id: str) -> list[Turn]:
        """A conversation's turns (question, answer), oldest first; [] when unknown, expired or not logged."""
        return self.questions.conversation(conversation_id) if self.questions and valid_id(conversation_id) else []

    def feedback(self, answer_id: str, vote: int, reason: str = "", comment: str = "", client_id: str = "python") -> bool:
        """Record 👍 (1) or 👎 (-1) on a logged answer (`answer.meta["id"]`), with a reason after 👎 (one of
        questions.REASONS) and a comment; 0 takes the client's vote back. One vote per answer and client,
        changed by voting again. False when the log holds no such answer; LookupError when the log is off."""
        if self.questions is None:
            raise LookupError("the question log is off (question_log = false)")
        return self.questions.vote(Vote(answer_id, client_id, vote, reason, comment))

    def insights(self, days: int = 30, sort: str = "largest", collection: str | None = None) -> dict:
        """What the question log says about the last `days` days (of the questions asked in `collection`, when
        named): the declined and 👎 questions grouped by topic, the documents cited most and never, counts per
        day (see `log.insights.report`)."""
        from .log.insights import report

        if self.questions is None:
            raise LookupError("the question log is off (question_log = false)")
        return report(self.questions, self.index, days, sort, self._collection(collection))

    def close(self) -> None:
        if self.questions is not None:
            self.questions.close()
        self.index.close()


def _read_path(path: Path, max_file_mb: float) -> bytes:
    """The bytes of a file to add, or LoadError with the reason, as `assistant index` words it."""
    if path.is_dir():
        raise LoadError(path, "a folder, not a file: add the files in it, or run `assistant index` on the folder")
    if not path.exists():
        raise LoadError(path, "no such file")
    return read_file(path, max_file_mb)


def index_library(library: str | Path | list[str | Path] | None, folder: str | Path, config: Config | None = None,
                  *, rebuild: bool = False, progress: Progress = no_progress) -> IndexReport:
    """Bring the index in `folder` in line with the library: adds, updates and removes documents."""
    config = config or load_config()
    paths = library if isinstance(library, list) else [library or config.library]
    return update_index(paths, folder, config, rebuild=rebuild, progress=progress)
