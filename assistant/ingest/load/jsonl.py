"""JSON Lines (.jsonl): one document a line, {"text": …} with optional id, title, author, date, source."""

from __future__ import annotations

import json
from pathlib import Path

from ...document import Document
from .base import Checkpoint, LoadError, Partial, content_id, lang_of, no_checkpoint


def load_jsonl(path: Path, text: str, problems: list[str], checkpoint: Checkpoint = no_checkpoint) -> list[Document]:
    docs = []
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
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
            lang=str(rec.get("lang") or lang_of(body)), meta=extra,
        ))
        checkpoint(lambda n=n: Partial(list(docs), list(problems), n, len(lines), "lines"))
    if not docs:
        raise LoadError(path, "no valid JSON lines with a 'text' field" + (f" ({problems[0]})" if problems else ""))
    return docs
