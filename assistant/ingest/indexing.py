"""Build an index: load → chunk → embed → store (an index folder or PostgreSQL, see `store`).

`update_index` brings an index in line with the files under the given paths: new and changed
files are read, chunked and embedded (only text whose content hash is new), removed files are
dropped, and the whole change is committed in one transaction, one run at a time. (`store.index.Index`
opens an index for searching.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..config import Config
from ..document import Chunk, Document
from ..models.embed import get_embedder
from ..store.base import LibraryStore
from ..store.factory import open_store
from ..store.index import Models, chunk_hash
from ..store.keyword import tokenize
from ..text import quotable, sentence_spans
from .chunk import chunk_document
from .load import LoadError, content_id, iter_files, read_bounded, read_file
from .pace import pace

Progress = Callable[[str, int], Callable[[int], None]]  # (label, total) -> advance(n)
UPLOAD_KEY = "upload://"  # how the files `assistant worker` adds are named in the store (assistant.ingest.jobs)


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    documents: int = 0
    chunks: int = 0

    @property
    def readable(self) -> bool:
        """False when not one file of the library could be read."""
        return bool(self.added or self.updated or self.unchanged)


def no_progress(label: str, total: int) -> Callable[[int], None]:
    return lambda n: None


def embed_input(doc: Document, chunk: Chunk) -> str:
    """What is embedded and keyword-indexed for a chunk: its text with the document title for context."""
    return f"{doc.title}\n{chunk.text}" if doc.title else chunk.text


@dataclass
class ReadFile:
    """A file read before the indexing run (the Library checks an upload by reading it): its bytes' SHA-256,
    its documents, the warnings about them and their chunks. The run takes these rather than reading the
    file again, as long as the file still holds those bytes."""

    sha: str
    docs: list[Document]
    warnings: list[str]
    chunks: list[list[Chunk]]


def update_index(
    paths: list[str | Path],
    folder: str | Path | None,
    config: Config | None = None,
    *,
    rebuild: bool = False,
    progress: Progress = no_progress,
    read: dict[str, ReadFile] | None = None,
) -> IndexReport:
    """Make the index in `folder` (or the configured PostgreSQL `store`) hold exactly the readable
    documents under `paths`. `read`: files already read, by resolved path (`ReadFile`). Raises
    store.base.IndexBusy while another run holds the index."""
    config = config or Config()
    for path in paths:  # before the store is opened: a mistyped path must not leave an empty index behind
        if not Path(path).exists():
            raise LoadError(path, "no such file or folder")
    store = open_store(config, folder)
    try:
        with store.indexing():
            problems: list[LoadError] = []
            # A link and its target: once.
            files = list(dict.fromkeys(p.resolve() for p in iter_files(paths, problems)))
            models = Models(config.model, config.sentence_model) if rebuild else Models.of(store, config)
            report = _update(store, files, problems, config, models, progress, rebuild, read or {})
            # What the index is built from: changes made from the browser (assistant.ingest.library) index the same paths.
            store.set_meta("library", json.dumps([str(Path(p).resolve()) for p in paths], ensure_ascii=False))
            return report
    finally:
        store.close()


def _update(store: LibraryStore, files: list[Path], problems: list[LoadError], config: Config,
            models: Models, progress: Progress, rebuild: bool = False, read: dict[str, ReadFile] | None = None,
            ) -> IndexReport:
    """One run. `rebuild` reads every file again and replaces the whole library when the run commits:
    until then (and for ever, if the run is interrupted) the old library keeps serving."""
    report = IndexReport(skipped=[(p.path, p.reason) for p in problems])
    if note := models.differ(config):
        report.warnings.append(f"{store.location}: {note}")
    known = {} if rebuild else store.files()
    links: dict[str, list[str]] = {}
    file_rows: dict[str, tuple[str, float, int, list[str] | None]] = {}  # notes None: kept as they are
    new_docs: dict[str, Document] = {}
    # Which file each document id belongs to: the files read before, in this run's order. An id is
    # its file's: another file (a .jsonl naming ids) cannot take it over.
    owners: dict[str, str] = {}
    # The ids each file named that belonged to another when it did: refused to that file for as long as it
    # is in the library, so that removing the owner later does not hand its id to the record that named it.
    barred: dict[str, set[str]] = {k: set(v) for k, v in json.loads(store.get_meta(BARRED_IDS) or "{}").items()}
    listed = {str(f) for f in files}
    # Files `assistant worker` added (assistant.ingest.jobs) are in the database only, under keys no folder
    # lists: this run keeps them and their documents as they are, rather than removing them as gone.
    held = {key: ids for key, (_, _, _, ids) in known.items() if key.startswith(UPLOAD_KEY)}
    listed |= set(held)
    links.update(held)
    for key, (_, _, _, ids) in known.items():
        if key in listed:
            for doc_id in ids:
                owners.setdefault(doc_id, key)
    # A file that shares a document with a file now gone is read again, so that the document is what the
    # remaining file says (a record of the gone file may have held that id).
    gone = {d for key, (_, _, _, ids) in known.items() if key not in listed for d in ids}
    # The chunks of each document read, made when its file is counted against max_file_chunks.
    chunked: dict[int, list[Chunk]] = {}

    advance = progress("reading", len(files))
    for path in files:
        # Nothing about one file stops the run: whatever fails is reported by name and skipped,
        # and the last good version of a file that went bad is kept.
        key = str(path)
        old = known.get(key)
        try:
            stat = path.stat()
            if old and old[1] == stat.st_mtime and old[2] == stat.st_size and not gone.intersection(old[3]):
                links[key] = old[3]
                report.unchanged.append(key)
                advance(1)
                continue
            data = read_file(path, config.max_file_mb)
            sha = hashlib.sha256(data).hexdigest()
            if old and old[0] == sha and not gone.intersection(old[3]):
                links[key], file_rows[key] = old[3], (sha, stat.st_mtime, stat.st_size, None)
                report.unchanged.append(key)
                advance(1)
                continue
            before = (read or {}).get(key)
            if before is not None and before.sha == sha:  # read once: a slow file costs read_seconds once
                docs, warnings, chunks = before.docs, list(before.warnings), before.chunks
            else:
                docs, warnings = read_bounded(path, data, config.read_seconds, ocr=config.ocr,
                                              on_page=_ocr_progress(progress, path.name), max_chars=config.max_file_chars)
                chunks = chunk_file(key, docs, config)
            chunked.update({id(d): c for d, c in zip(docs, chunks)})
            docs = _own_ids(key, docs, owners, new_docs, links, warnings, barred.setdefault(key, set()))
            if url := str(link_sources(path.parent).get(path.name, ""))[:2000]:
                for doc in docs:
                    doc.source = url
                    if doc.title == path.stem:  # a page with no title of its own: named as the link names it
                        doc.title = _link_title(url)
        except (LoadError, OSError) as exc:
            report.skipped.append((key, exc.reason if isinstance(exc, LoadError)
                                   else f"cannot read the file ({exc.strerror})"))
            if old:
                links[key] = old[3]
            advance(1)
            continue
        del data  # the documents hold the text; a large file's bytes need not stay
        report.warnings += [f"{key}: {w}" for w in warnings]
        for doc in docs:
            new_docs.setdefault(doc.doc_id, doc)
            owners.setdefault(doc.doc_id, key)
        links[key] = list(dict.fromkeys(d.doc_id for d in docs))
        file_rows[key] = (sha, stat.st_mtime, stat.st_size, warnings)
        (report.updated if old else report.added).append(key)
        advance(1)
        pace()
    report.removed = sorted(set(known) - set(links))

    existing = set() if rebuild else store.doc_ids()
    wanted = {d for ids in links.values() for d in ids}
    to_add = [d for d_id, d in new_docs.items() if d_id not in existing]
    to_delete = sorted((existing - wanted) | {d for d in new_docs if d in existing and _changed(store, new_docs[d])})
    to_add += [new_docs[d] for d in to_delete if d in new_docs]

    # Embed what is new before touching the library, committing embeddings as they are made: the
    # chunks, and every sentence an answer may quote, so that answering embeds only the question.
    # The keyword index's tokens too, outside the transaction (which holds the store's writes meanwhile),
    # pacing the interpreter's time (ingest.pace): jieba is the costliest pure-Python part of indexing.
    planned = []
    for doc in to_add:
        chunks = chunked[id(doc)]
        inputs = [embed_input(doc, c) for c in chunks]
        sentences = [doc.text[a:b] for a, b in sentence_spans(doc.text) if quotable(doc.text, a, b)]
        tokens = []
        for text in inputs:
            tokens.append(" ".join(tokenize(text)))
            pace()
        planned.append((doc, chunks, inputs, [chunk_hash(models.passages, t) for t in inputs],
                        [chunk_hash(models.sentences, t) for t in sentences], sentences, tokens))
    report.chunks_embedded = _embed_missing(store, models.passages, "embedding",
                                            [(h, t) for p in planned for h, t in zip(p[3], p[2])], progress)
    _embed_missing(store, models.sentences, "sentences", [(h, t) for p in planned for h, t in zip(p[4], p[5])],
                   progress)

    with store.transaction():
        if rebuild:  # the vectors this run just committed stay; the old model's go with drop_unused_embeddings
            store.clear(keep_embeddings=True)
        for doc_id in to_delete:
            store.delete_document(doc_id)
        for doc, chunks, _, hashes, sentence_hashes, _, tokens in planned:
            store.add_document(doc, chunks, hashes, tokens, sentence_hashes)
        for key in report.removed:
            store.delete_file(key)
        for key, (sha, mtime, size, notes) in file_rows.items():
            store.put_file(key, sha, mtime, size, links[key], notes)
        for doc_id in store.orphan_doc_ids():  # e.g. an old version of a changed file
            store.delete_document(doc_id)
        store.drop_unused_embeddings()
        store.set_meta("model", models.passages)
        store.set_meta("sentence_model", models.sentences)
        store.set_meta("faiss", store.get_meta("faiss") or config.faiss)
        store.set_meta(BARRED_IDS, json.dumps({k: sorted(v) for k, v in barred.items() if v and k in listed},
                                              ensure_ascii=False))
    counts = store.counts()
    report.documents, report.chunks = counts["documents"], counts["chunks"]
    return report


def chunk_file(key: str, docs: list[Document], config: Config) -> list[list[Chunk]]:
    """The chunks of each of a file's documents; LoadError past `max_file_chunks` in all."""
    chunked, total = [], 0
    for doc in docs:
        chunked.append(chunk_document(doc, config.chunk_size, config.chunk_overlap))
        total += len(chunked[-1])
        if config.max_file_chunks and total > config.max_file_chunks:
            raise LoadError(key, f"it extracts to more than {config.max_file_chunks:,} passages (max_file_chunks); "
                                 "split it into smaller files, or raise max_file_chunks")
    return chunked


# Ids travel in every citation, URL and log line.
MAX_ID_CHARS = 200


BARRED_IDS = "barred_ids"  # the store's meta key of `_update`'s `barred`


def _own_ids(key: str, docs: list[Document], owners: dict[str, str], new_docs: dict[str, Document],
             links: dict[str, list[str]], warnings: list[str], barred: set[str]) -> list[Document]:
    """The documents of the file `key` that may be stored under their ids; each refused one is named in
    `warnings`. An id belongs to the file that brought it first, except that a document's own content id
    (what every format but .jsonl uses) is never lost to a record that merely names it. Two files with
    the same text hold one document. An id refused once stays refused to this file (`barred`, updated
    here), whatever becomes of its owner. LoadError when nothing is left."""
    kept = []
    for doc in docs:
        if len(doc.doc_id) > MAX_ID_CHARS or not doc.doc_id.isprintable():
            warnings.append(f"document id {doc.doc_id[:40]!r}… is longer than {MAX_ID_CHARS} characters or not "
                            "printable; this record was refused: give it a shorter id")
            continue
        owner = owners.get(doc.doc_id, key)
        held = new_docs.get(doc.doc_id)
        if doc.doc_id in barred and doc.doc_id != content_id(doc.text):
            warnings.append(f"document id {doc.doc_id!r} belonged to another file when this one first named it, so "
                            "it stays refused to this file; this record was refused: give it an id of its own")
        elif owner == key:
            if held is not None and held.text != doc.text:
                warnings.append(f"document id {doc.doc_id!r} is used twice in this file; the first one is kept")
            kept.append(doc)
        elif doc.doc_id != content_id(doc.text):
            warnings.append(f"document id {doc.doc_id!r} already belongs to {owner}; this record was refused: "
                            "give it an id of its own")
            barred.add(doc.doc_id)
        elif held is not None and held.text != doc.text:  # the owner's record only named this text's id
            new_docs[doc.doc_id], owners[doc.doc_id] = doc, key
            links[owner] = [d for d in links.get(owner, []) if d != doc.doc_id]
            warnings.append(f"document id {doc.doc_id!r} was named by a record in {owner}, which was refused")
            kept.append(doc)
        else:
            kept.append(doc)
    if not kept:
        raise LoadError(key, "every document in it has an id that belongs to another file: "
                             + "; ".join(warnings)[:500])
    return kept


# Beside the pages fetched from links (assistant.ingest.library): {file name: URL}. Hidden, so never indexed;
# read by every indexing run, so that `assistant index` and the browser give such a document its URL.
LINKS_FILE = ".links.json"


def link_sources(folder: Path) -> dict[str, str]:
    """{file name: the URL it was fetched from} of a folder's LINKS_FILE; {} if it has none."""
    try:
        sources = json.loads((folder / LINKS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return sources if isinstance(sources, dict) else {}


def _ocr_progress(progress: Progress, name: str):
    """A page-by-page progress bar for the scanned pages of one file, started when OCR reports the first."""
    bar: list = []

    def on_page(done: int, total: int) -> None:
        if not bar:
            bar.append(progress(f"ocr {name}", total))
        bar[0](1)

    return on_page


def _link_title(url: str) -> str:
    parts = urlsplit(url)
    return unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or parts.hostname or url


# Texts embedded (and committed, and reported as progress) at a time by an indexing run.
EMBED_BATCH = 64


def _embed_missing(store: LibraryStore, model: str, label: str, items: list[tuple[str, str]],
                   progress: Progress) -> int:
    """Embed the (hash, text) items the store has no vector for, committing each batch; returns how many."""
    missing = store.missing_embeddings(h for h, _ in items)
    pending = list(dict((h, t) for h, t in items if h in missing).items())
    embedder = get_embedder(model) if pending else None
    advance = progress(label, len(pending))
    for i in range(0, len(pending), EMBED_BATCH):
        batch = pending[i : i + EMBED_BATCH]
        store.put_embeddings([h for h, _ in batch], embedder.encode([t for _, t in batch], background=True))
        advance(len(batch))
    return len(pending)


def _changed(store: LibraryStore, doc: Document) -> bool:
    """A re-read document whose id is known but whose text or metadata changed (jsonl records)."""
    old = store.document(doc.doc_id)
    return old is not None and (old.text, old.title, old.source) != (doc.text, doc.title, doc.source)
