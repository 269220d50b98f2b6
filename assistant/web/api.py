"""The REST API under /api: ask, search, documents. A thin layer over `Assistant`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import fastapi
from fastapi import Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ..answer.compose import Answer
from ..config import Config
from ..core import Assistant
from ..log.questions import new_id
from ..store.collections import CollectionError, Grant
from .access import grant_of, may_read_document, scope
from .limits import Refused, check_history, check_question, in_language

log = logging.getLogger("assistant.web")

MAX_SEARCH_K = 50


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    question: str = Field(description="The question, in Chinese or English.")
    history: list[Message] = Field(default_factory=list, description="The conversation so far, for follow-up "
                                   "questions (at most max_history_messages messages, max_history_chars in all).")
    stream: bool = Field(False, description="Answer as server-sent events: `delta` events with text pieces, "
                                            "then one `answer` event with the full answer JSON.")
    conversation_id: str | None = Field(None, description="Continue this conversation (the `conversation_id` of an "
                                        "earlier answer): its turns are the history, kept by the server. Needs the "
                                        "question log (question_log); not together with `history`.")
    collection: str | None = Field(None, description="Answer from this collection only (GET /api/collections); "
                                   "default: every collection the token reads (the default collection for a "
                                   "token limited to some).")


class CitationOut(BaseModel):
    number: int
    doc_id: str
    title: str
    source: str
    quote: str = Field(description="Verbatim document text: the stored document's text[start:end].")
    start: int
    end: int
    page: int | None
    date: str = ""
    url: str = Field(description="The document page with the quote highlighted, relative to this server: "
                                 "/doc/{doc_id}?start=S&end=E (&answer_start=A&answer_end=B with an emphasis).")
    same_text: list[str] = Field(default=[], description="Other documents with a near-identical passage.")
    location: dict[str, Any] = Field(default={}, description="Where the quote is, in the document's own terms: "
                                     '{"page": n}, {"slide": n}, {"sheet": name, "row": n}; {} when it has none.')
    emphasis: list[int] | None = Field(default=None, description="[A, B]: text[A:B], inside the quote, is the answer "
                                       "itself as the reader marks it (the chat and the document page emphasise it); "
                                       "null when nothing is marked.")


class AskResponse(BaseModel):
    answer: str
    declined: bool = Field(description="True when the library has nothing on the question.")
    lang: str
    citations: list[CitationOut]
    related: list[CitationOut] = Field([], description="When declined: the closest passages, verbatim with their "
                                                       "offsets, as related, not as an answer.")
    meta: dict[str, Any] = {}
    id: str | None = Field(None, description="The answer's id in the question log, for POST /api/feedback "
                                             "(null when the log is off).")
    conversation_id: str | None = Field(None, description="The conversation this answer continues (or starts): "
                                                          "send it with the next question instead of `history`.")


def answer_json(answer: Answer) -> dict:
    """An answer as POST /api/ask returns it: its log id and conversation at the top."""
    return {**answer.to_dict(), "id": answer.meta.get("id"), "conversation_id": answer.meta.get("conversation_id")}


def client_of(request: fastapi.Request) -> dict:
    """Who asked, for the question log (which keeps it only with question_log_clients)."""
    return {"ip": request.client.host if request.client else "", "user_agent": request.headers.get("user-agent", "")}


class HitOut(BaseModel):
    chunk_id: int
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    page: int | None
    score: float
    same_text: list[str] = Field(default=[], description="Other documents with a near-identical passage, "
                                 "folded into this hit (syndicated news, an article saved twice).")


class SearchResponse(BaseModel):
    query: str
    hits: list[HitOut]


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    author: str
    date: str
    source: str
    file: str = Field(description="The file name the document was read from.")
    lang: str
    pages: list[int] | None = Field(description="PDFs: the offset in `text` where each page starts.")
    meta: dict[str, Any]
    text: str = Field(description="The stored text; citation offsets point into it.")
    collections: list[str] = Field(default=[], description="The collections holding it (those the token reads).")


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def authorizer(config: Config):
    """The dependency that checks the token of an /api request and gives its grant (the collections it reads)."""
    bearer = HTTPBearer(auto_error=False, description="Set when the server has an api_token or tokens.")

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Grant:
        grant = grant_of(f"Bearer {credentials.credentials}" if credentials else "", config)
        if grant is None:
            raise HTTPException(401, "A valid API token is required: send `Authorization: Bearer <token>`.",
                                headers={"WWW-Authenticate": "Bearer"})
        return grant

    return authorize


def scoped(grant: Grant, collection: str | None, bot: Assistant) -> str | None:
    """The collection a request works in; 404 for one it may not read, as for one that does not exist."""
    try:
        return scope(grant, collection, bot)
    except CollectionError as exc:
        raise HTTPException(exc.status, str(exc)) from None


def api_router(bot: Assistant, config: Config) -> fastapi.APIRouter:
    authorize = authorizer(config)
    router = fastapi.APIRouter(prefix="/api", dependencies=[Depends(authorize)])

    @router.post("/ask", response_model=AskResponse,
                 responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or events if stream"},
                            401: {"description": "Missing or wrong API token"},
                            413: {"description": "Question or history over its limit"},
                            422: {"description": "Malformed request, or text that is not valid Unicode"}})
    def ask(request: AskRequest, http: fastapi.Request, grant: Grant = Depends(authorize)):
        """Answer a question from the library, citing the exact source text (or decline).

        With the question log on, each answer has an `id` (for POST /api/feedback) and a `conversation_id`:
        send that with the next question to continue the conversation without resending its history."""
        try:
            question = check_question(request.question, config)
            history = check_history([m.model_dump() for m in request.history], config)
        except Refused as refused:
            raise HTTPException(refused.status, in_language(refused, request.question)) from None
        collection = scoped(grant, request.collection, bot)
        conversation = None
        if bot.questions is not None:
            conversation = request.conversation_id or new_id()
            if request.conversation_id is not None:
                if history:
                    raise HTTPException(422, "Send either `history` or `conversation_id`, not both.")
                turns = bot.conversation(request.conversation_id)
                if not turns:
                    raise HTTPException(404, f"No conversation {request.conversation_id!r}: it is unknown, or "
                                        "older than the server keeps conversations. Start a new one.")
                history = [m for turn in turns for m in turn.messages()]
        elif request.conversation_id is not None:
            raise HTTPException(409, "Conversations are not kept: the server's question log is off "
                                "(question_log = false). Send the conversation as `history`.")
        options = {"history": history, "surface": "rest", "conversation": conversation, "client": client_of(http),
                   "collection": collection}
        if not request.stream:
            return answer_json(bot.ask(question, **options))

        def events() -> Iterator[str]:
            try:
                for piece in bot.ask_stream(question, **options):
                    if isinstance(piece, Answer):
                        yield _sse("answer", answer_json(piece))
                    else:
                        yield _sse("delta", {"text": piece})
            except Exception as exc:  # the response has started: report the failure as an event
                log.exception("streaming answer failed")
                yield _sse("error", {"detail": f"The answer failed ({type(exc).__name__}); see the server log."})

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/search", response_model=SearchResponse)
    def search(q: str = Query(description="The query."), k: int = Query(5, ge=1, le=MAX_SEARCH_K),
               mode: Literal["hybrid", "dense", "keyword"] = "hybrid",
               collection: str | None = Query(None, description="Search this collection only."),
               grant: Grant = Depends(authorize)):
        """The k passages that best match the query, each with its document id and offsets."""
        try:
            query = check_question(q, config, "query")
        except Refused as refused:
            raise HTTPException(refused.status, in_language(refused, q)) from None
        hits = bot.search(query, k=k, mode=mode, collection=scoped(grant, collection, bot))
        return {"query": query, "hits": [{f: getattr(h, f) for f in HitOut.model_fields} for h in hits]}

    @router.get("/documents/{doc_id}", response_model=DocumentOut, responses={404: {"description": "Unknown id"}})
    def document(doc_id: str, grant: Grant = Depends(authorize)):
        """A stored document: its text (which citation offsets point into) and metadata."""
        doc = bot.document(doc_id)
        if doc is None or not may_read_document(grant, doc_id, bot):
            raise HTTPException(404, f"No document with id {doc_id!r}.")
        return {"doc_id": doc.doc_id, "title": doc.title, "author": doc.author, "date": doc.date,
                "source": doc.source, "file": Path(doc.path).name if doc.path else "", "lang": doc.lang,
                "pages": doc.pages, "meta": doc.meta, "text": doc.text,
                "collections": [c for c in bot.collections.of(doc_id) if grant.may_read(c)]}
    return router


