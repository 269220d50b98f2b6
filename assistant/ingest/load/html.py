"""Saved web pages (.html, .htm): the main article, its title, author and date."""

from __future__ import annotations

from pathlib import Path

from ...document import Document
from ..clean import extract_html, find_date
from .base import LoadError, new_document


def load_html(path: Path, html: str) -> Document:
    page = extract_html(html)
    if not page.text.strip():
        raise LoadError(path, "no article text found in the web page")
    return new_document(path, page.text, title=page.title or path.stem, author=page.author,
                        date=page.date or find_date(html[:5000]), source=page.source)
