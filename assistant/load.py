"""Read the article library: files of every supported format become clean `Document`s.

Supported: .txt, .md (optional YAML front matter), .html/.htm (saved web pages), .pdf (text
per page) and .jsonl (one document per line). Text encodings are detected from the bytes
(UTF-8 with or without BOM, UTF-16 with BOM, GBK/GB18030 and others charset-normalizer knows).
A file that cannot be read raises `LoadError`, naming the file and what to do about it.
"""

from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .clean import clean_saved_text, extract_html, find_date
from .text import detect_lang

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


class LoadError(Exception):
    """A file of the library that could not be read; str() names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


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


def iter_files(paths: list[str | Path]) -> Iterator[Path]:
    """Supported files under `paths` (files or folders), sorted, hidden files skipped."""
    for root in paths:
        root = Path(root)
        if root.is_file():
            yield root
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root).parts
                if p.is_file() and p.suffix.lower() in SUPPORTED and not any(s.startswith(".") for s in rel):
                    yield p
        else:
            raise LoadError(root, "no such file or folder")


def load_file(path: str | Path) -> tuple[list[Document], list[str]]:
    """The documents in one file (several for .jsonl) and warnings about parts that were skipped.

    Raises LoadError when nothing in the file can be read.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    warnings: list[str] = []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(path, f"cannot read the file ({exc.strerror}); check its permissions") from exc
    if not data.strip():
        raise LoadError(path, "empty file; add text or remove it from the library")
    if suffix == ".pdf":
        docs = [_load_pdf(path, data)]
    elif suffix == ".jsonl":
        docs = _load_jsonl(path, decode(data, path), warnings)
    elif suffix in (".html", ".htm"):
        docs = [_load_html(path, decode(data, path))]
    elif suffix in (".md", ".markdown"):
        docs = [_load_markdown(path, decode(data, path))]
    elif suffix == ".txt":
        docs = [_load_text(path, decode(data, path))]
    else:
        raise LoadError(path, f"unsupported file type {suffix!r}; supported: {', '.join(SUPPORTED)}")
    for doc in docs:
        if not doc.text.strip():
            raise LoadError(path, "no text found in the file")
    return docs, warnings


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


def _load_markdown(path: Path, text: str) -> Document:
    meta: dict = {}
    if m := _FRONT_MATTER.match(text):
        try:
            meta = yaml.safe_load(m.group(1)) or {}
        except yaml.YAMLError as exc:
            raise LoadError(path, f"invalid YAML front matter ({exc}); fix the block between the --- lines") from exc
        if not isinstance(meta, dict):
            raise LoadError(path, "front matter is not a mapping of keys to values")
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
        meta={k: str(v) for k, v in meta.items()},
    )


def _load_html(path: Path, html: str) -> Document:
    page = extract_html(html)
    if not page.text.strip():
        raise LoadError(path, "no article text found in the web page")
    return _document(path, page.text, title=page.title or path.stem, author=page.author,
                     date=page.date or find_date(html[:5000]), source=page.source)


def _load_pdf(path: Path, data: bytes) -> Document:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(path, "encrypted PDF; save a copy without a password and index that")
        texts = [(page.extract_text() or "").strip() for page in reader.pages]
        info = reader.metadata or {}
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, NotImplementedError) as exc:
        raise LoadError(path, f"corrupt or unsupported PDF ({exc}); re-export or re-download it") from exc
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
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"line {n} skipped: {exc}")
            continue
        extra = {k: str(v) for k, v in rec.items() if k not in ("id", "title", "text", "author", "date", "source",
                                                              "url", "lang") and isinstance(v, (str, int, float))}
        docs.append(Document(
            doc_id=str(rec.get("id") or content_id(body)), text=body, title=str(rec.get("title") or ""),
            author=str(rec.get("author") or ""), date=str(rec.get("date") or ""),
            source=str(rec.get("source") or rec.get("url") or ""), path=str(path),
            lang=str(rec.get("lang") or detect_lang(body)), meta=extra,
        ))
    if not docs:
        raise LoadError(path, "no valid JSON lines with a 'text' field" + (f" ({problems[0]})" if problems else ""))
    return docs


def _document(path: Path, text: str, **fields) -> Document:
    return Document(doc_id=content_id(text), text=text, path=str(path), lang=detect_lang(text), **fields)
