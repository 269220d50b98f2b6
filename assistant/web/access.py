"""Which collections a web request may read and change: `assistant.store.collections`' grants over HTTP.

Every surface (REST, chat, Gradio's API, OpenAI, MCP, /doc pages, Insights) asks the same three questions:
the request's grant (from its bearer token), the collection it works in, and whether a document is in a
collection it may read. A collection a request may not read is answered as unknown (404, its name not
confirmed); a change it may read but not make, 403.
"""

from __future__ import annotations

import re

from ..config import Config
from ..core import Assistant
from ..store.collections import Grant, grant_for
from .security import bearer_token, origin_regex, write_refusal


def grant_of(authorization: str, config: Config) -> Grant | None:
    """The grant of an `Authorization` header value; None when the request needs a valid token and lacks one."""
    return grant_for(bearer_token(authorization or ""), config)


def scope(grant: Grant, collection: str | None, bot: Assistant) -> str | None:
    """The collection a request searches or asks in (see `Grant.scope`); CollectionError 404 when it may not."""
    return grant.scope(collection or None, bot.collections)


def may_read_document(grant: Grant, doc_id: str, bot: Assistant, collection: str | None = None) -> bool:
    """Whether the document is in a collection the grant reads (in `collection`, when one is named)."""
    if grant.read is None and collection is None:
        return True
    held = bot.collections.of(doc_id)
    return any(grant.may_read(c) and (collection is None or c == collection) for c in held)


def change_refusal(headers: dict[str, str], client_host: str, same_origin: str, config: Config,
                   origins: tuple[str, ...], collection: str | None, bot: Assistant) -> tuple[int, str] | None:
    """Why a request may not change `collection` (its documents, uploads into it), or None when it may.

    Whoever may change the whole library (`security.write_refusal`) may; otherwise a token whose grant
    writes the collection, from an allowed page. A collection the token may not read: 404, as unknown."""
    refusal = write_refusal(headers, client_host, same_origin, config, origins)
    if refusal is None:
        return None
    origin = headers.get("origin")
    if origin and origin != same_origin and not re.fullmatch(origin_regex(origins), origin):
        return refusal
    grant = grant_of(headers.get("authorization", ""), config)
    if grant is None or grant.kind != "token":  # the api_token and no token are answered as before collections
        return refusal
    if collection is None:  # a valid token, without the right to change the whole library
        return 403, "This token may not do that: it changes the whole library (the admin_token may)."
    if not grant.may_read(collection) or not bot.collections.exists(collection):
        return 404, f"No collection {collection!r}."
    if grant.may_write(collection):
        return None
    return 403, f"This token may read collection {collection!r} but not change it."
