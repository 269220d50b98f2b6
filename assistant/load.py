"""Read the article library: files of every supported format become clean `Document`s.

Supported: .txt, .md (optional YAML front matter), .html/.htm (saved web pages), .pdf (text
per page) and .jsonl (one document per line). Text encodings are detected from the bytes
(UTF-8 with or without BOM, UTF-16 with BOM, GBK/GB18030 and others charset-normalizer knows).
A file that cannot be read raises `LoadError`, naming the file and what to do about it; so does a
file larger than `max_file_mb`, before it is read. Metadata fields are cut to sane lengths.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import re
import stat
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .clean import clean_saved_text, extract_html, find_date
from .config import Config
from .text import detect_lang

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl")
# Longest metadata values kept (characters); longer ones are cut with a warning. Titles are
# embedded with every chunk of their document, so an unbounded title costs memory per chunk.
FIELD_LIMITS = {"title": 300, "author": 200, "date": 100, "source": 2000}
META_VALUE_CHARS = 1000
META_KEYS = 50
# Front matter is a few lines of metadata; a larger block is refused before it is parsed.
FRONT_MATTER_CHARS = 64_000
# A document's language is told from its beginning: the check costs memory per character.
LANG_SAMPLE_CHARS = 20_000
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


class LoadError(Exception):
    """A file of the library that could not be read; str() names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = printable(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class Document:
    """One article as stored: `text` is what every chunk and citation offset points into."""

    doc_id: str
    text: str
    title: str = ""
    author: str = ""
    date: str = ""
    source: str = ""
    path: str = ""
    lang: str = ""
    pages: list[int] | None = None  # PDF: offset in `text` where each page starts
    meta: dict = field(default_factory=dict)

    def page_at(self, offset: int) -> int | None:
        """1-based page holding character `offset`, for PDFs; None otherwise."""
        if not self.pages:
            return None
        return bisect_right(self.pages, offset)


def content_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def printable(path: str | os.PathLike[str]) -> str:
    """A path as text that prints and stores whatever bytes its name holds (undecodable ones as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def iter_files(paths: list[str | Path], problems: list[LoadError] | None = None) -> Iterator[Path]:
    """Supported files under `paths` (files or folders), sorted, hidden files skipped.

    What cannot be indexed is added to `problems`, by name and with the reason, and skipped:
    folders that cannot be opened, names that are not UTF-8, FIFOs and other special files, and
    links that dangle, loop or lead out of the library (a link within it is followed). A path
    that does not exist raises LoadError.
    """
    problems = [] if problems is None else problems
    roots = [Path(p) for p in paths]
    library = [r.resolve() for r in roots if r.exists()]
    for root in roots:
        if not root.exists():
            raise LoadError(root, "no such file or folder")
        if root.is_dir():
            yield from _walk(root, library, problems)
        elif (reason := _unreadable(root, library)) is None:
            yield root
        else:
            problems.append(LoadError(root, reason))


def _walk(root: Path, library: list[Path], problems: list[LoadError]) -> Iterator[Path]:
    def folder_error(exc: OSError) -> None:
        problems.append(LoadError(exc.filename, f"cannot open the folder ({exc.strerror}); check its permissions"))

    for folder, dirs, names in os.walk(root, onerror=folder_error):
        # Links to folders are not descended into (os.walk does not follow them); report those
        # that would have led somewhere bad, the others' files are indexed where they are.
        for d in [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            dirs.remove(d)
            if not d.startswith(".") and (reason := _bad_link(Path(folder, d), library)):
                problems.append(LoadError(Path(folder, d), reason))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder, name)
            if name.startswith(".") or path.suffix.lower() not in SUPPORTED:
                continue
            if (reason := _unreadable(path, library)) is None:
                yield path
            else:
                problems.append(LoadError(path, reason))


def _bad_link(path: Path, library: list[Path]) -> str | None:
    """Why the link `path` cannot be followed, or None when it leads to something in the library."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return f"a link to {printable(os.readlink(path))}, which does not exist; remove the link"
    except (RuntimeError, OSError):  # RuntimeError: Python 3.11's "Symlink loop"
        return "a link that loops back on itself; remove the link"
    if not any(target.is_relative_to(r) for r in library):
        return (f"a link to {printable(target)}, outside the library; copy the file into the library "
                "or index its folder too")
    return None


def _unreadable(path: Path, library: list[Path]) -> str | None:
    """Why the file `path` cannot be indexed, or None."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return "the path is not valid UTF-8 (shown with \\xNN for the odd bytes); rename the file or its folder"
    if path.is_symlink() and (reason := _bad_link(path, library)):
        return reason
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot read the file ({exc.strerror}); check its permissions"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device); remove it from the library"
    return None


def read_file(path: Path, max_file_mb: float) -> bytes:
    """The bytes of a library file; LoadError when it is larger than `max_file_mb` (checked before
    reading, so memory stays bounded) or cannot be read."""
    limit = int(max_file_mb * 1_000_000)
    try:
        size = path.stat().st_size
        if size > limit:
            raise LoadError(path, f"{size / 1e6:.1f} MB, larger than max_file_mb ({max_file_mb:g} MB); split the "
                                  "file, or raise max_file_mb if the machine has the memory for it")
        with open(path, "rb") as f:
            data = f.read(size + 1)
    except OSError as exc:
        denied = exc.errno in (errno.EACCES, errno.EPERM)
        hint = "check its permissions" if denied else "check the disk, or copy the file again"
        raise LoadError(path, f"cannot read the file ({exc.strerror}); {hint}") from exc
    if len(data) > size:
        raise LoadError(path, "the file grew while it was read; index again when it is written")
    return data


def load_file(path: str | Path, data: bytes | None = None) -> tuple[list[Document], list[str]]:
    """The documents in one file (several for .jsonl) and warnings about parts that were skipped or cut.

    `data`: the file's bytes when the caller has read them (`read_file`). Raises LoadError when
    nothing in the file can be read.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    warnings: list[str] = []
    if data is None:
        data = read_file(path, Config().max_file_mb)
    if not data.strip():
        raise LoadError(path, "empty file; add text or remove it from the library")
    if suffix == ".pdf":
        docs = [_load_pdf(path, data)]
    elif suffix == ".jsonl":
        docs = _load_jsonl(path, decode(data, path), warnings)
    elif suffix in (".html", ".htm"):
        docs = [_load_html(path, decode(data, path))]
    elif suffix in (".md", ".markdown"):
        docs = [_load_markdown(path, decode(data, path), warnings)]
    elif suffix == ".txt":
        docs = [_load_text(path, decode(data, path))]
    else:
        raise LoadError(path, f"unsupported file type {suffix!r}; supported: {', '.join(SUPPORTED)}")
    for doc in docs:
        if not doc.text.strip():
            raise LoadError(path, "no text found in the file")
        _bound_metadata(doc, warnings)
    return docs, warnings


def _bound_metadata(doc: Document, warnings: list[str]) -> None:
    for name, limit in FIELD_LIMITS.items():
        value = getattr(doc, name)
        if len(value) > limit:
            setattr(doc, name, value[: limit - 1] + "…")
            warnings.append(f"{doc.doc_id}: the {name} is {len(value)} characters long; cut to {limit}")
    if len(doc.meta) > META_KEYS:
        warnings.append(f"{doc.doc_id}: {len(doc.meta)} metadata fields; only the first {META_KEYS} are kept")
    doc.meta = {k[:100]: v[:META_VALUE_CHARS] for k, v in list(doc.meta.items())[:META_KEYS]}


def decode(data: bytes, path: str | Path) -> str:
    """Text of `data`, its encoding detected; binary data and undecodable bytes raise LoadError."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        if b"\x00" in data[:8192]:
            raise LoadError(path, "binary data, not text; remove it or give it the right file extension")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = _decode_legacy(data, path)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    controls = sum(1 for c in text[:8192] if ord(c) < 32 and c not in "\n\t\f")
    if controls > 0.05 * min(len(text), 8192):
        raise LoadError(path, "binary data, not text; remove it or give it the right file extension")
    return text


def _decode_legacy(data: bytes, path: str | Path) -> str:
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise LoadError(path, "unreadable text encoding; save the file as UTF-8 and index again")
    return str(best)


def _load_text(path: Path, text: str) -> Document:
    page = clean_saved_text(text)
    if page is not None:  # a web page saved as text: keep the article, drop the chrome
        return _document(path, page.text, title=page.title, author=page.author, date=page.date)
    first_line = text.strip().split("\n", 1)[0].strip()
    title = first_line if len(first_line) <= 80 else path.stem
    return _document(path, text.strip(), title=title)


def _meta_text(value: object) -> str | None:
    """A front-matter value as text (a list of values joined by ", "), at most META_VALUE_CHARS long;
    None for nested structures. Values are cut while they are turned into text: YAML aliases let a
    short block stand for a list of millions of strings."""
    if isinstance(value, (str, int, float, bool, datetime.date)):
        return str(value)[:META_VALUE_CHARS]
    if not isinstance(value, list):
        return None
    parts, size = [], 0
    for item in value:
        if not isinstance(item, (str, int, float, bool, datetime.date)):
            return None
        parts.append(str(item)[:META_VALUE_CHARS])
        size += len(parts[-1]) + 2
        if size > META_VALUE_CHARS:
            break
    return ", ".join(parts)[:META_VALUE_CHARS]


def _load_markdown(path: Path, text: str, warnings: list[str]) -> Document:
    meta: dict = {}
    if m := _FRONT_MATTER.match(text):
        if len(m.group(1)) > FRONT_MATTER_CHARS:
            raise LoadError(path, f"the front matter is {len(m.group(1))} characters long, more than "
                                  f"{FRONT_MATTER_CHARS}; keep only metadata between the --- lines")
        try:
            meta = yaml.safe_load(m.group(1)) or {}
        except (yaml.YAMLError, RecursionError) as exc:
            raise LoadError(path, f"invalid YAML front matter ({exc}); fix the block between "
                                  "the --- lines") from exc
        if not isinstance(meta, dict):
            raise LoadError(path, "front matter is not a mapping of keys to values")
        texts = {str(k): _meta_text(v) for k, v in meta.items()}
        warnings += [f"front matter field {k!r} is not text; ignored" for k, v in texts.items() if v is None]
        meta = {k: v for k, v in texts.items() if v is not None}
        text = text[m.end() :]
    body = text.strip()
    heading = _MD_HEADING.search(body)
    title = str(meta.pop("title", "") or (heading.group(1) if heading else path.stem))
    return _document(
        path,
        body,
        title=title,
        author=str(meta.pop("author", "") or ""),
        date=str(meta.pop("date", "") or ""),
        source=str(meta.pop("source", "") or meta.pop("url", "") or ""),
        meta=meta,
    )


def _load_html(path: Path, html: str) -> Document:
    page = extract_html(html)
    if not page.text.strip():
        raise LoadError(path, "no article text found in the web page")
    return _document(path, page.text, title=page.title or path.stem, author=page.author,
                     date=page.date or find_date(html[:5000]), source=page.source)


# Many PDF fonts map Chinese glyphs to the look-alike radical code points (⼀ U+2F00 for 一, ⻓ U+2ED3
# for 长): they read the same but match no word, so jieba and the model would see noise. The Kangxi
# radicals have a compatibility form (NFKC); of the supplement, the whole characters of running
# text are mapped here (Unicode's EquivalentUnifiedIdeograph.txt), the stroke-only forms are left.
# Latin ligatures (ﬁ, ﬂ) are split back into letters for the same reason.
_RADICALS = {cp: unicodedata.normalize("NFKC", chr(cp))
             for cp in [*range(0x2F00, 0x2FD6), *range(0xFB00, 0xFB07)]}
_RADICALS |= {ord(r): c for r, c in zip("⺟⺠⺩⺬⻁⻄⻅⻆⻉⻋⻑⻓⻔⻘⻙⻚⻛⻜⻝⻢⻣⻤⻥⻦⻧⻨⻩⻪⻬⻮⻰⻳",
                                        "母民王示虎西见角贝车長长门青韦页风飞食马骨鬼鱼鸟卤麦黄黾齐齿龙龟")}

# A PDF's text breaks every line where the layout wrapped it. In Chinese the break falls between two
# characters of one sentence (often of one word: "物流\n成本"), so sentences, quotes and jieba's
# words would all be cut at it. A break is a wrap when its line fills the page's usual width and
# runs on from a Chinese character into another; short lines (titles, a paragraph's last line) and
# lines that end a sentence keep their break. English wraps stay: the sentence splitter reads them.
_WRAP_FROM = re.compile(r"[\u3400-\u9fff\uf900-\ufaff，、：“‘《（]")  # the line's last character
_WRAP_TO = re.compile(r"^(?:[\u3400-\u9fff\uf900-\ufaff“‘《（]|\d(?!\d*[.．、)）]))")  # not a numbered item
_FULL_LINE = 0.8  # of the page's usual line width (its 90th percentile)


def _display_width(line: str) -> int:
    return sum(2 if "\u3000" <= ch <= "\uffef" else 1 for ch in line)


def join_wrapped_lines(page: str) -> str:
    """`page` with the line breaks inside wrapped Chinese sentences removed (see `_WRAP_FROM`), in linear time."""
    lines = page.split("\n")
    if len(lines) < 3:
        return page
    widths = [_display_width(line.rstrip()) for line in lines]
    full = _FULL_LINE * sorted(widths)[int(0.9 * (len(widths) - 1))]
    # Each output line is kept as its pieces and joined once: a page can be one long wrapped paragraph.
    joined = [[lines[0]]]
    for width, line in zip(widths, lines[1:]):
        previous = joined[-1][-1].rstrip()
        if width >= full and _WRAP_FROM.fullmatch(previous[-1:]) and _WRAP_TO.match(line.lstrip()):
            joined[-1][-1] = previous
            joined[-1].append(line.lstrip())
        else:
            joined.append([line])
    return "\n".join("".join(pieces) for pieces in joined)


def _load_pdf(path: Path, data: bytes) -> Document:
    import io

    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(path, "encrypted PDF; save a copy without a password and index that")
        texts = [join_wrapped_lines((page.extract_text() or "").strip().translate(_RADICALS))
                 for page in reader.pages]
        info = reader.metadata or {}
    except LoadError:
        raise
    except Exception as exc:  # pypdf's own errors, its LimitReachedError among them, and whatever it trips on
        raise LoadError(path, f"corrupt or unsupported PDF ({type(exc).__name__}: {str(exc)[:200]}); re-export "
                              "or re-download it") from exc
    if not any(texts):
        raise LoadError(path, "the PDF has no extractable text (a scan?); run OCR on it first")
    parts, starts, pos = [], [], 0
    for text in texts:
        starts.append(pos)
        parts.append(text)
        pos += len(text) + 2
    title = str(info.get("/Title") or "").strip() or path.stem
    return _document(path, "\n\n".join(parts), title=title, author=str(info.get("/Author") or "").strip(),
                     pages=starts)


def _load_jsonl(path: Path, text: str, problems: list[str]) -> list[Document]:
    docs = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            body = rec["text"]
            if not isinstance(body, str) or not body.strip():
                raise ValueError("empty 'text'")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError) as exc:
            problems.append(f"line {n} skipped: {exc}")
            continue
        extra = {k: str(v) for k, v in rec.items() if k not in ("id", "title", "text", "author", "date", "source",
                                                              "url", "lang") and isinstance(v, (str, int, float))}
        docs.append(Document(
            doc_id=str(rec.get("id") or content_id(body)), text=body, title=str(rec.get("title") or ""),
            author=str(rec.get("author") or ""), date=str(rec.get("date") or ""),
            source=str(rec.get("source") or rec.get("url") or ""), path=str(path),
            lang=str(rec.get("lang") or _lang(body)), meta=extra,
        ))
    if not docs:
        raise LoadError(path, "no valid JSON lines with a 'text' field" + (f" ({problems[0]})" if problems else ""))
    return docs


def _lang(text: str) -> str:
    return detect_lang(text[:LANG_SAMPLE_CHARS])


def _document(path: Path, text: str, **fields) -> Document:
    return Document(doc_id=content_id(text), text=text, path=str(path), lang=_lang(text), **fields)


# --- reading within a time limit ------------------------------------------------------------------
# A reader is third-party code (pypdf, trafilatura, charset-normalizer) on untrusted bytes: a file can
# make it run for hours. Each file is therefore read in a child process that is killed past the
# `read_seconds` budget. Children are forked from a forkserver that has imported the readers once, so a
# file costs a fork (milliseconds), and a server's threads are never forked.
_FORKSERVER = None


def _forkserver():
    global _FORKSERVER
    if _FORKSERVER is None:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["assistant.load"])
        _FORKSERVER = context
    return _FORKSERVER


def _read_in_child(conn, path: str, data: bytes) -> None:
    try:
        conn.send(("read", load_file(path, data)))
    except LoadError as exc:
        conn.send(("refused", exc.reason))
    except BaseException as exc:  # a reader's own error (pypdf's LimitReachedError, a RecursionError, …)
        conn.send(("refused", reader_failure(exc)))
    finally:
        conn.close()


def reader_failure(exc: BaseException) -> str:
    """The reason given for a file whose reader raised something other than LoadError."""
    return (f"the file could not be read ({type(exc).__name__}: {str(exc)[:200]}); re-export or re-save it, "
            "or remove it from the library")


def load_file_bounded(path: str | Path, data: bytes, seconds: float) -> tuple[list[Document], list[str]]:
    """`load_file`, refused with a LoadError when reading takes longer than `seconds` (0: no limit,
    read in this process). Whatever a reader raises becomes a LoadError naming the file."""
    if seconds <= 0:
        try:
            return load_file(path, data)
        except LoadError:
            raise
        except Exception as exc:
            raise LoadError(path, reader_failure(exc)) from exc
    context = _forkserver()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_read_in_child, args=(sender, str(path), data), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            raise LoadError(path, f"reading it took longer than read_seconds ({seconds:g} s), so it was stopped; "
                                  "split the file, or raise read_seconds")
        status, value = receiver.recv()
    except EOFError:
        child.join(5)
        raise LoadError(path, f"the reader stopped without a result (exit code {child.exitcode}; out of memory?); "
                              "split or re-export the file") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    if status == "refused":
        raise LoadError(path, value)
    return value
