"""Markdown (.md, .markdown), with optional YAML front matter for the metadata."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import yaml

from ...document import Document
from .base import META_VALUE_CHARS, LoadError, new_document

# Front matter is a few lines of metadata; a larger block is refused before it is parsed.
FRONT_MATTER_CHARS = 64_000
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


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


def load_markdown(path: Path, text: str, warnings: list[str]) -> Document:
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
    return new_document(
        path,
        body,
        title=title,
        author=str(meta.pop("author", "") or ""),
        date=str(meta.pop("date", "") or ""),
        source=str(meta.pop("source", "") or meta.pop("url", "") or ""),
        meta=meta,
    )
