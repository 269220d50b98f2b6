"""The assistant as an MCP server (the official SDK): tools for AI agents and editors, citations intact.

    assistant mcp --index DIR   over stdio, for a desktop agent on the same machine
    POST /mcp                   streamable HTTP on the web server, with the api_token and the limits of /api

Tools, all read-only (nothing here writes to the library): `search_library`, `ask_library`,
`get_document`, `list_documents`. Every quote and passage comes with its document id and offsets,
and `get_document` returns document.text[start:end] for them, so an agent can check each one.
A thin layer over `Assistant`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import fastapi
from fastapi.responses import JSONResponse
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.routing import Route

from ..answer.compose import document_url
from ..config import Config
from ..core import Assistant
from ..store.collections import ALL, CollectionError, Grant
from .access import grant_of, may_read_document, scope
from .api import MAX_SEARCH_K, client_of
from .limits import Refused, check_question, in_language
from .openai import citations, content, server_root

# get_document returns at most this many characters of text at a time (a book-length PDF would fill an
# agent's context); `next_start` says where the following window begins.
MAX_DOCUMENT_CHARS = 20_000
# get_document's `before` and `after`: the text around a requested window, to read a quote in context.
CONTEXT_CHARS = 300
MAX_LIST = 100

INSTRUCTIONS = ("Answers cross-border e-commerce sellers' questions from an article library, quoting it verbatim. "
                "Every quote and passage carries doc_id, start and end: get_document(doc_id, start, end) returns "
                "exactly that text, to check or read it in context. Cite the url of each source you use.")
WindowStart = Annotated[int | None, Field(ge=0, description="Where the window starts (default 0).")]
WindowEnd = Annotated[int | None, Field(ge=0, description="Where it ends (default: the end of the document).")]
CollectionArg = Annotated[str | None, Field(description="Work in this collection (an id from list_collections); "
                                                    "default: every collection this client may read, or its first.")]
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)


class Passage(BaseModel):
    doc_id: str
    title: str
    text: str = Field(description="Verbatim document text: get_document(doc_id, start, end).text.")
    start: int
    end: int
    page: int | None
    score: float
    url: str = Field(description="The document page with the passage highlighted.")


class Search(BaseModel):
    query: str
    passages: list[Passage]


class CitationOut(BaseModel):
    number: int = Field(description="The [n] marker in the answer.")
    doc_id: str
    title: str
    quote: str = Field(description="Verbatim document text: get_document(doc_id, start, end).text.")
    start: int
    end: int
    page: int | None
    url: str = Field(description="The document page with the quote highlighted.")
    emphasis: list[int] | None = Field(default=None, description="[A, B]: get_document(doc_id, A, B).text, inside the "
                                       "quote, is the answer itself as the reader marks it; null when nothing is marked.")


class AskResult(BaseModel):
    answer: str = Field(description="The answer with its [n] markers, then its sources.")
    declined: bool = Field(description="True when the library has nothing on the question; do not answer it "
                                       "from elsewhere as if it came from the library.")
    citations: list[CitationOut]
    related: list[CitationOut] = Field(description="When declined: the closest passages, as related, not an answer.")


class DocumentWindow(BaseModel):
    doc_id: str
    title: str
    source: str
    date: str
    length: int = Field(description="The length of the whole document text.")
    start: int
    end: int
    text: str = Field(description="The document's text[start:end].")
    before: str = Field(description="Up to 300 characters just before start.")
    after: str = Field(description="Up to 300 characters just after end.")
    page: int | None = Field(description="PDFs: the page `start` is on.")
    next_start: int | None = Field(description="Where the rest continues, when the window stopped at the size "
                                               "bound before the requested end; else null.")
    url: str


class DocumentEntry(BaseModel):
    doc_id: str
    title: str
    date: str
    source: str
    file: str
    format: str
    pages: int | None
    chunks: int
    added: str
    url: str


class CollectionEntry(BaseModel):
    id: str
    name: str
    documents: int
    chunks: int


class CollectionList(BaseModel):
    collections: list[CollectionEntry]


class DocumentList(BaseModel):
    total: int = Field(description="How many documents match; page through them with offset.")
    documents: list[DocumentEntry]


def _configured_root(config: Config) -> str:
    """Where `assistant serve` with this configuration is reached: stdio has no request to take it from."""
    host = "localhost" if config.host in ("0.0.0.0", "::") else config.host
    return f"http://{f'[{host}]' if ':' in host else host}:{config.port}"


def create_mcp(bot: Assistant, config: Config) -> MCPServer:
    """The MCP server's tools over `bot`; links are absolute to the server the request came to (HTTP) or to
    the configured server address (stdio)."""
    server = MCPServer("seller-assistant", title="Seller Assistant", instructions=INSTRUCTIONS, log_level="WARNING")
    fallback = _configured_root(config)

    def http(ctx: Context) -> Request | None:
        """The HTTP request the call came in (None over stdio)."""
        request = ctx.request_context.request
        return request if isinstance(request, Request) else None

    def root(ctx: Context) -> str:
        return server_root(request) if (request := http(ctx)) else fallback

    def grant(ctx: Context) -> Grant:
        """Over HTTP the token's (checked before the call, `_Authorized`); over stdio the local user's: every one."""
        request = http(ctx)
        return ALL if request is None else grant_of(request.headers.get("authorization", ""), config) or ALL

    def scoped(ctx: Context, collection: str | None) -> str | None:
        try:
            return scope(grant(ctx), collection, bot)
        except CollectionError as exc:
            raise ToolError(f"{exc}; list_collections gives those you may read.") from None

    def checked(text: str, what: str) -> str:
        try:
            return check_question(text, config, what)
        except Refused as refused:
            raise ToolError(in_language(refused, text)) from None

    @server.tool(annotations=READ_ONLY)
    def search_library(query: Annotated[str, Field(description="What to look for, in Chinese or English.")],
                       ctx: Context,
                       k: Annotated[int, Field(ge=1, le=MAX_SEARCH_K, description="How many passages.")] = 5,
                       collection: CollectionArg = None) -> Search:
        """Find the passages of the article library that best match a query (hybrid semantic and keyword search).
        Each passage is verbatim document text with its doc_id, start and end offsets and a link."""
        q = checked(query, "query")
        base = root(ctx)
        return Search(query=q, passages=[
            Passage(doc_id=h.doc_id, title=h.title, text=h.text, start=h.start, end=h.end, page=h.page,
                    score=round(h.score, 4), url=base + document_url(h.doc_id, h.start, h.end))
            for h in bot.search(q, k=k, collection=scoped(ctx, collection))])

    @server.tool(annotations=READ_ONLY)
    def ask_library(question: Annotated[str, Field(description="The question, in Chinese or English.")],
                    ctx: Context, collection: CollectionArg = None) -> AskResult:
        """Answer a question from the article library only: sentences quoted verbatim with [n] markers, and for
        each marker a citation (doc_id, title, quote, start, end, page, url). When the library has nothing on
        the question, the answer says so, `declined` is true and `related` holds the closest passages (verbatim,
        with offsets), which are not an answer."""
        client = client_of(request) if (request := http(ctx)) else None  # for the question log
        answer = bot.ask(checked(question, "question"), surface="mcp", client=client,
                         collection=scoped(ctx, collection))
        cited, related = citations(answer, root(ctx)), citations(answer, root(ctx), related=True)
        return AskResult(answer=content(answer, cited, related), declined=answer.declined,
                         citations=[CitationOut(**c) for c in cited], related=[CitationOut(**c) for c in related])

    @server.tool(annotations=READ_ONLY)
    def get_document(doc_id: Annotated[str, Field(description="A doc_id from search_library, ask_library or "
                                                              "list_documents.")],
                     ctx: Context,
                     start: WindowStart = None, end: WindowEnd = None, collection: CollectionArg = None) -> DocumentWindow:
        """Read a stored document: its text[start:end] (a quote's or passage's offsets give exactly its text), with
        300 characters before and after. At most 20000 characters at a time: `next_start` continues a longer read."""
        doc = bot.document(doc_id)
        if collection is not None:
            scoped(ctx, collection)
        if doc is None or not may_read_document(grant(ctx), doc_id, bot, collection):
            raise ToolError(f"No document with id {doc_id!r}; list_documents or search_library give the ids.")
        length = len(doc.text)
        s = 0 if start is None else start
        e = length if end is None else end
        if not s <= e <= length:
            raise ToolError(f"The window {s}:{e} is not within the document, whose text is {length} characters long.")
        stop = min(e, s + MAX_DOCUMENT_CHARS)
        return DocumentWindow(doc_id=doc.doc_id, title=doc.title, source=doc.source, date=doc.date, length=length,
                              start=s, end=stop, text=doc.text[s:stop], before=doc.text[max(0, s - CONTEXT_CHARS):s],
                              after=doc.text[stop:stop + CONTEXT_CHARS], page=doc.page_at(s),
                              next_start=stop if stop < e else None,
                              url=root(ctx) + document_url(doc.doc_id, s, stop))

    @server.tool(annotations=READ_ONLY)
    def list_documents(ctx: Context,
                       query: Annotated[str, Field(description="Only documents whose title holds these words.")] = "",
                       offset: Annotated[int, Field(ge=0)] = 0,
                       limit: Annotated[int, Field(ge=1, le=MAX_LIST)] = 50,
                       collection: CollectionArg = None) -> DocumentList:
        """List the library's documents, newest first: doc_id, title, date, source, file, size."""
        q = query.strip() and checked(query, "query")
        total, docs = bot.documents(q, offset, limit, scoped(ctx, collection))
        base = root(ctx)
        return DocumentList(total=total, documents=[
            DocumentEntry(doc_id=d.doc_id, title=d.title, date=d.date, source=d.source, file=d.file, format=d.format,
                          pages=d.pages, chunks=d.chunks, added=d.added, url=base + document_url(d.doc_id))
            for d in docs])

    @server.tool(annotations=READ_ONLY)
    def list_collections(ctx: Context) -> CollectionList:
        """The library's collections this client may read (id, name, documents, chunks): pass an id as
        `collection` to the other tools to search, ask or read in that collection only."""
        return CollectionList(collections=[CollectionEntry(id=c.id, name=c.name, documents=c.documents,
                                                           chunks=c.chunks)
                                           for c in grant(ctx).readable(bot.collections.list())])

    return server


def mount_mcp(app: fastapi.FastAPI, bot: Assistant, config: Config, path: str = "/mcp") -> None:
    """The streamable HTTP transport at `path`, behind the api_token; its session manager runs in the app's lifespan."""
    server = create_mcp(bot, config)
    # Stateless, JSON replies: each call stands alone (the tools keep no state), so nothing is held per client
    # and any worker can answer. The SDK's own Host and Origin checks are off: Guard checks the Host of every
    # request against allowed_hosts, and CORS (a JSON POST is preflighted) the browser origins.
    starlette_app = server.streamable_http_app(
        streamable_http_path=path, stateless_http=True, json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    endpoint = next(r.endpoint for r in starlette_app.routes if isinstance(r, Route) and r.path == path)

    # POST only: with no sessions there is nothing to DELETE, and a GET would hold open an event stream
    # that no stateless call ever writes to.
    app.router.routes.append(Route(path, _Authorized(endpoint, config), methods=["POST"], include_in_schema=False))
    # Each stateless call ends its transport with an INFO line that says nothing ("Terminating session: None").
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a) -> AsyncIterator[None]:
        async with server.session_manager.run(), outer(a) as state:
            yield state

    app.router.lifespan_context = lifespan


class _Authorized:
    """ASGI: the api_token checked before the MCP transport sees the request (a class: Starlette would take
    a function for a request handler)."""

    def __init__(self, app, config: Config):
        self.app, self.config = app, config

    async def __call__(self, scope, receive, send):
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if grant_of(authorization, self.config) is None:
            response = JSONResponse({"detail": "A valid API token is required: send `Authorization: Bearer <token>`."},
                                    401, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


def run_stdio(bot: Assistant, config: Config) -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    try:
        create_mcp(bot, config).run("stdio")
    finally:
        bot.close()
