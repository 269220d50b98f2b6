"""Collections: named sets of documents in one library, and who may read or change each.

A collection has a short id ("amazon", "tk-shop") and a display name (Chinese allowed); a document
belongs to any number of them. Every library has the `default` collection: an index built before
collections existed opens with all its documents in it, and a library with no other collection
answers from the whole library, as before. Retrieval in a collection is scoped in the store (see
`LibraryStore.dense_search`), never filtered afterwards.

Access (`Grant`): the `tokens` setting gives tokens (stored as SHA-256 hashes, never the token) that
may read some collections and change some; `api_token` reads every collection and `admin_token`
also changes them; without a token, `open_collections` may be read. A collection a request may not
read is answered as if it did not exist (404, its name not revealed); a change it may not make, 403.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import Config
from .base import LibraryStore
from .factory import open_store

DEFAULT = "default"
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_NAME_CHARS = 80
MAX_COLLECTIONS = 200


class CollectionError(ValueError):
    """A collection operation refused: `status` for HTTP (400 bad id or name, 404 unknown, 409 not empty)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CollectionInfo:
    id: str
    name: str
    documents: int
    chunks: int

    def to_dict(self) -> dict:
        return asdict(self)


def check_id(collection: str) -> str:
    if not ID_PATTERN.fullmatch(collection or ""):
        raise CollectionError(400, f"collection id {collection!r} is not 1-32 lower-case letters, digits, '-' or '_' "
                                   "starting with a letter or digit (e.g. amazon, tk-shop)")
    return collection


def check_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name or len(name) > MAX_NAME_CHARS:
        raise CollectionError(400, f"a collection's name is 1 to {MAX_NAME_CHARS} characters (Chinese allowed)")
    return name


class Collections:
    """The collections of a library. Read from the serving `store`; changed through a connection of their
    own (`open_store`: with PostgreSQL, the primary, where `store` may be a read-only standby)."""

    def __init__(self, store: LibraryStore, config: Config, folder: str | Path | None = None):
        self.store, self.config, self.folder = store, config, folder

    @contextmanager
    def _writer(self) -> Iterator[LibraryStore]:
        store = open_store(self.config, self.folder)
        try:
            yield store
        finally:
            store.close()

    def list(self) -> list[CollectionInfo]:
        """Every collection, the default first, with its documents and chunks."""
        return [CollectionInfo(*row) for row in self.store.collection_rows()]

    def get(self, collection: str) -> CollectionInfo | None:
        return next((c for c in self.list() if c.id == collection), None)

    def configured(self) -> bool:
        """Whether the library has collections beyond the default (else everything is the default)."""
        return len(self.store.collection_names()) > 1

    def exists(self, collection: str) -> bool:
        return collection in self.store.collection_names()

    def require(self, collection: str) -> CollectionInfo:
        found = self.get(collection)
        if found is None:
            raise CollectionError(404, f"no collection {collection!r}; `assistant collections` lists them")
        return found

    def check(self, collection: str) -> str:
        """`collection`, or CollectionError 404 when there is none of that id (cheap: nothing is counted)."""
        if not self.exists(collection):
            raise CollectionError(404, f"no collection {collection!r}; `assistant collections` lists them")
        return collection

    def create(self, collection: str, name: str = "") -> CollectionInfo:
        check_id(collection)
        name = check_name(name or collection)
        if self.get(collection) is not None:
            raise CollectionError(409, f"a collection {collection!r} exists already; rename it instead")
        if len(self.list()) >= MAX_COLLECTIONS:
            raise CollectionError(409, f"a library holds at most {MAX_COLLECTIONS} collections; delete an empty one")
        with self._writer() as store:
            store.put_collection(collection, name)
        return self.require(collection)

    def rename(self, collection: str, name: str) -> CollectionInfo:
        self.check(collection)
        with self._writer() as store:
            store.put_collection(collection, check_name(name))
        return self.require(collection)

    def delete(self, collection: str) -> None:
        """Delete an empty collection (not the default); its documents must be moved or removed first."""
        self.check(collection)
        if collection == DEFAULT:
            raise CollectionError(409, "the default collection cannot be deleted")
        with self._writer() as store:
            if not store.drop_collection(collection):
                raise CollectionError(409, f"collection {collection!r} holds documents; move or remove them first")

    def of(self, doc_id: str) -> list[str]:
        """The collections holding a document."""
        return self.store.document_collections([doc_id]).get(doc_id, [])

    def add(self, doc_ids: list[str], collection: str) -> None:
        """Put documents (also) into a collection."""
        self.check(collection)
        self._known(doc_ids)
        with self._writer() as store:
            store.change_collections(doc_ids, add=collection)

    def move(self, doc_ids: list[str], source: str, target: str) -> None:
        """Move documents from one collection to another (in one change: they are never in neither)."""
        self.check(source)
        self.check(target)
        self._in(doc_ids, source)
        with self._writer() as store:
            store.change_collections(doc_ids, add=target, remove=source)

    def take_out(self, doc_ids: list[str], collection: str) -> list[str]:
        """Take documents out of a collection where they are in another too; returns those that are in this one
        only, left as they are (removing one of them removes it from the library: `Assistant.remove_document`)."""
        self._in(doc_ids, collection)
        held = self.store.document_collections(doc_ids)
        shared = [d for d in doc_ids if len(held.get(d, [])) > 1]
        if shared:
            with self._writer() as store:
                store.change_collections(shared, remove=collection)
        return [d for d in doc_ids if d not in shared]

    def route(self, keys: list[str], collection: str) -> None:
        """The documents of these files (paths) or links (URLs) go into `collection` when they are indexed."""
        self.check(collection)
        with self._writer() as store:
            store.route(keys, collection)

    def _known(self, doc_ids: list[str]) -> None:
        missing = [d for d in doc_ids if self.store.document(d) is None]
        if missing:
            raise CollectionError(404, f"no document with id {missing[0]!r}")

    def _in(self, doc_ids: list[str], collection: str) -> None:
        self.check(collection)
        held = self.store.document_collections(doc_ids)
        missing = [d for d in doc_ids if collection not in held.get(d, [])]
        if missing:
            raise CollectionError(404, f"no document with id {missing[0]!r} in collection {collection!r}")


# --- access --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grant:
    """What one request may do: the collections it may read and change (None: every one)."""

    name: str
    read: frozenset[str] | None
    write: frozenset[str] | None
    kind: str = "token"  # "admin" (admin_token), "api" (api_token), "token" (a `tokens` entry), "open" (none)

    def may_read(self, collection: str) -> bool:
        return self.read is None or collection in self.read or self.may_write(collection)

    def may_write(self, collection: str) -> bool:
        return self.write is None or collection in self.write

    @property
    def admin(self) -> bool:
        """May create, rename and delete collections (and write every one)."""
        return self.write is None

    def readable(self, collections: list[CollectionInfo]) -> list[CollectionInfo]:
        return [c for c in collections if self.may_read(c.id)]

    def scope(self, collection: str | None, collections: Collections) -> str | None:
        """The collection a request searches and asks in: the one it names (CollectionError 404 when unknown or
        not readable by it, the same answer for both), else the whole library for a grant that reads every
        collection or a library without collections, else the default collection or its first readable one."""
        if collection:
            if not self.may_read(collection) or not collections.exists(collection):
                raise CollectionError(404, f"no collection {collection!r}")
            return collection
        if self.read is None or not collections.configured():
            return None if self.read is None else DEFAULT if self.may_read(DEFAULT) else self._first(collections)
        return DEFAULT if self.may_read(DEFAULT) else self._first(collections)

    def _first(self, collections: Collections) -> str:
        readable = [c for c in collections.store.collection_names() if self.may_read(c)]
        if not readable:
            raise CollectionError(404, "no collection can be read with this token")
        return DEFAULT if DEFAULT in readable else sorted(readable)[0]


ALL = Grant("admin", None, None, "admin")


def token_hash(token: str) -> str:
    """The SHA-256 (hex) a `tokens` entry stores instead of its token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    sha256: str
    grant: Grant


def parse_tokens(entries: tuple[str, ...]) -> list[TokenEntry]:
    """The `tokens` setting: each entry "NAME sha256=HEX read=ID,ID write=ID" (read and write optional;
    write implies read; "*" for every collection). ValueError naming the entry and what is wrong."""
    parsed = []
    for entry in entries:
        name, *fields = entry.split()
        values = dict(f.partition("=")[::2] for f in fields)
        unknown = set(values) - {"sha256", "read", "write"}
        digest = values.get("sha256", "").lower()
        if unknown or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"tokens: {name!r}: each entry is 'NAME sha256=HEX read=ID,ID write=ID' with the token's "
                             "64-hex SHA-256 (`assistant collections hash-token` makes one)"
                             + (f"; unknown {sorted(unknown)}" if unknown else ""))

        def ids(key: str) -> frozenset[str] | None:
            items = [i.strip() for i in values.get(key, "").split(",") if i.strip()]
            if "*" in items:
                return None
            for i in items:
                if not ID_PATTERN.fullmatch(i):
                    raise ValueError(f"tokens: {name!r}: {i!r} is not a collection id")
            return frozenset(items)

        parsed.append(TokenEntry(digest, Grant(name, ids("read"), ids("write"))))
    return parsed


def open_grant(config: Config) -> Grant:
    """What a request without a token may read: `open_collections`, or by default every collection until
    `tokens` are configured and then the default collection only."""
    chosen = config.open_collections or (() if not config.tokens else (DEFAULT,))
    read = None if not chosen or "*" in chosen else frozenset(chosen)
    return Grant("open", read, frozenset(), "open")


def grant_for(token: str, config: Config) -> Grant | None:
    """The grant of a request's bearer token ('' for none); None when it needs one and has no valid one.

    admin_token: every collection, read and changed; api_token: every collection read (and changed too when
    there is no admin_token, as before collections); a `tokens` entry: its collections; no token: the open
    grant, unless api_token is set (then every request needs a token, as before)."""
    if token:
        if _same(token, config.admin_token):
            return ALL
        if _same(token, config.api_token):
            return ALL if not config.admin_token else Grant("api_token", None, frozenset(), "api")
        digest = token_hash(token)
        for entry in parse_tokens(config.tokens):
            if hmac.compare_digest(entry.sha256, digest):
                return entry.grant
        return None if (config.api_token or config.tokens) else open_grant(config)
    return None if config.api_token else open_grant(config)


def _same(given: str, token: str) -> bool:
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())
