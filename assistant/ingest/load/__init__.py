"""Read the article library: files of every supported format become clean `Document`s.

Supported, one module each: .txt (`text`), .md/.markdown with optional YAML front matter (`markdown`),
.html/.htm saved web pages (`html`), .pdf with text per page and scanned pages read by OCR (`pdf`),
.jsonl with one document per line (`jsonl`), .docx/.xlsx/.csv/.pptx (`office`) and .png/.jpg/.jpeg/.webp
screenshots and photos read by OCR (`images`). Text encodings are detected from the bytes (UTF-8 with
or without BOM, UTF-16 with BOM, GBK/GB18030 and others charset-normalizer knows). A file that cannot
be read raises `LoadError`, naming the file and what to do about it; so does a file larger than
`max_file_mb`, before it is read, and one of a type the library does not read. Metadata fields are
cut to sane lengths; rows, cells, slides, OCR pages and image pixels have limits of their own.
`read_bounded` (`bounded`) reads a file in a worker process within a time limit.
"""

from ...document import LAYOUT, Document
from .base import (FIELD_LIMITS, LANG_SAMPLE_CHARS, META_KEYS, META_VALUE_CHARS, LoadError, PageProgress,
                   content_id, decode, printable)
from .bounded import read_bounded, reader_failure
from .files import SUPPORTED, iter_files, read_file
from .formats import load_file
from .lines import join_wrapped_lines

__all__ = ["FIELD_LIMITS", "LANG_SAMPLE_CHARS", "LAYOUT", "META_KEYS", "META_VALUE_CHARS", "SUPPORTED", "Document", "PageProgress",
           "LoadError", "content_id", "decode", "iter_files", "join_wrapped_lines", "load_file", "read_bounded",
           "printable", "read_file", "reader_failure"]
