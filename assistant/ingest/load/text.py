"""Plain text (.txt): a web page saved as text keeps only its article."""

from __future__ import annotations

from pathlib import Path

from ...document import Document
from ..clean import clean_saved_text
from .base import new_document


def load_text(path: Path, text: str) -> Document:
    page = clean_saved_text(text)
    if page is not None:  # a web page saved as text: keep the article, drop the chrome
        return new_document(path, page.text, title=page.title, author=page.author, date=page.date)
    first_line = text.strip().split("\n", 1)[0].strip()
    title = first_line if len(first_line) <= 80 else path.stem
    return new_document(path, text.strip(), title=title)
