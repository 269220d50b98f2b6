"""The OpenAI-compatible chat API under /v1: chat front-ends, bots and `openai` SDK scripts reach the assistant.

    POST /v1/chat/completions  the last user message is the question, the earlier messages its history
    GET  /v1/models            the assistant, as the one model `seller-assistant`

A thin layer over `Assistant.ask`. The reply's `content` is the answer with its [n] markers and a short
list of sources (title and an absolute link to the document page with the quote highlighted), so a UI
that shows only text keeps the citations; `citations` beside the message (and in the last streamed
chunk) carries them machine-readable. A decline lists the closest passages as related, not as an answer,
in the text and in `related` beside it. Errors come in OpenAI's shape, {"error": {message, type, param,
code}}, which the SDK turns into its exceptions.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any, Literal

import fastapi
from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..answer.compose import RELATED_LABEL, Answer
from ..config import Config
from ..core import Assistant
from ..store.collections import CollectionError, Grant
from .access import grant_of, scope
from .api import client_of
from .limits import Refused, check_history, check_question, in_language
from .outage import UNREACHABLE

log = logging.getLogger("assistant.web")

MODEL = "seller-assistant"
# /v1/models reports when the model was "created"; a fixed date keeps the listing the same on every server.
MODEL_CREATED = 1_767_225_600  # 2026-01-01
SOURCES = {"en": "Sources:", "zh": "来源："}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # the parts form: only text parts carry a question
            return "\n".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    # Sampling and tool fields (temperature, top_p, max_tokens, n, stop, seed, user, tools, …) are
    # accepted and ignored: the answer quotes the library, and a configured generator keeps its own settings.
    model_config = ConfigDict(extra="allow")
    model: str = MODEL
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    kind = ("authentication_error" if status == 401 else "server_error" if status >= 500
            else "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status,
                        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


def failure(exc: Exception) -> str:
    return f"The answer failed ({type(exc).__name__}); see the server log."


def server_root(request: Request) -> str:
    """The URL this server was reached at ("http://host:port"), for absolute links in the reply.
    `security.Guard` has checked the Host header and X-Forwarded-Proto."""
    scheme = request.headers.get("x-forwarded-proto", "").strip().lower() or request.url.scheme
    return f"{scheme}://{request.headers['host']}"


def citations(answer: Answer, root: str, *, related: bool = False) -> list[dict[str, Any]]:
    """The answer's citations (or a decline's related quotes) with absolute links, and where the answer itself
    stands inside a quote (`emphasis`, [a, b] in the document's text, or None)."""
    return [{"number": c.number, "doc_id": c.doc_id, "title": c.title, "quote": c.quote, "start": c.start,
             "end": c.end, "page": c.page, "url": root + c.to_dict()["url"], "emphasis": c.emphasis}
            for c in (answer.related if related else answer.citations)]


def content(answer: Answer, cited: list[dict[str, Any]], related: list[dict[str, Any]] | None = None) -> str:
    """The answer, then one line per source: a list item, so that Markdown renderers keep the lines apart
    and a plain-text view still reads as a list. A decline: its text, then the related quotes."""
    if related and not cited:
        lines = [f"- “{' '.join(c['quote'].split())}” — {c['title']}: {c['url']}" for c in related]
        return f"{answer.text}\n\n{RELATED_LABEL[answer.lang]}\n" + "\n".join(lines)
    if not cited:
        return answer.text
    lines = [f"- [{c['number']}] {c['title']}" + (f" (p. {c['page']})" if c["page"] else "") + f": {c['url']}"
             for c in cited]
    return f"{answer.text}\n\n{SOURCES.get(answer.lang, SOURCES['en'])}\n" + "\n".join(lines)


def _chunk(ident: str, created: int, delta: dict, finish: str | None = None, **extra) -> str:
    body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def openai_router(bot: Assistant, config: Config) -> fastapi.APIRouter:
    router = fastapi.APIRouter(prefix="/v1", tags=["openai-compatible"])

    def granted(request: Request) -> Grant | JSONResponse:
        grant = grant_of(request.headers.get("authorization", ""), config)
        if grant is not None:
            return grant
        return openai_error(401, "A valid API key is required: send `Authorization: Bearer <api_token>`.",
                            code="invalid_api_key")

    @router.get("/models")
    def models(request: Request):
        """The assistant as one model, for front-ends that list the models of an endpoint; in a library with
        collections, also each collection the key may read, as a model of its own (its id)."""
        grant = granted(request)
        if isinstance(grant, JSONResponse):
            return grant
        ids = [MODEL] + ([c.id for c in grant.readable(bot.collections.list())] if bot.collections.configured() else [])
        return {"object": "list", "data": [{"id": i, "object": "model", "created": MODEL_CREATED, "owned_by": MODEL}
                                           for i in ids]}

    @router.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}}}})
    async def chat_completions(request: Request):
        """OpenAI's chat completion: the last message (the user's) is the question, the user and assistant
        messages before it the history. The reply quotes the library with [n] markers and lists its sources;
        `citations` (beside the message, and in the last chunk when streamed) gives each quote's document,
        offsets and link. Sampling fields are accepted and ignored. Errors in OpenAI's shape."""
        grant = granted(request)
        if isinstance(grant, JSONResponse):
            return grant
        # A form or text/plain POST is one a page on another site can send without a CORS preflight.
        if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "application/json":
            return openai_error(400, "Send the request body as JSON, with Content-Type: application/json.")
        raw = await request.body()
        try:
            body = ChatRequest.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return openai_error(400, f"The request body is not a chat completion request: {exc}")
        except RecursionError:  # JSON nested thousands deep: the parser's stack, not the server's fault
            log.warning("a chat completion request of %d bytes was refused: its JSON is nested too deeply", len(raw))
            return openai_error(400, "The request body's JSON is nested too deeply; send a chat completion request "
                                "(messages of role and content).")
        if body.messages[-1].role != "user":
            return openai_error(400, "The last message must be the user's question.", "messages")
        history = [{"role": m.role, "content": m.text()} for m in body.messages[:-1] if m.role in ("user", "assistant")]
        try:
            question = check_question(body.messages[-1].text(), config)
            history = check_history(history, config)
        except Refused as refused:
            return openai_error(refused.status, in_language(refused, body.messages[-1].text()), "messages")
        try:  # the model names a collection ("seller-assistant": the key's default, see Grant.scope)
            collection = scope(grant, None if body.model in (MODEL, "") else body.model, bot)
        except CollectionError:
            return openai_error(404, f"The model {body.model!r} does not exist; GET /v1/models lists them.", "model",
                                "model_not_found")
        root = server_root(request)
        ident, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        options = {"surface": "openai", "client": client_of(request), "collection": collection}  # collection: for the log too
        if not body.stream:
            try:
                answer = await run_in_threadpool(lambda: bot.ask(question, history, **options))
            except UNREACHABLE:  # the database is away: the server's 503 (web/outage.py)
                raise
            except Exception as exc:  # in OpenAI's shape, which the SDK reports as its InternalServerError
                log.exception("chat completion failed")
                return openai_error(500, failure(exc))
            cited, related = citations(answer, root), citations(answer, root, related=True)
            message = {"role": "assistant", "content": content(answer, cited, related), "citations": cited,
                       "related": related}
            return {"id": ident, "object": "chat.completion", "created": created, "model": MODEL,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                    "citations": cited, "related": related, "declined": answer.declined}

        def chunks() -> Iterator[str]:
            yield _chunk(ident, created, {"role": "assistant", "content": ""})
            try:
                # The whole answer before its text: a generated draft streams in pieces that the final
                # Answer may change (sentences dropped, markers renumbered), and sent text cannot be taken back.
                answer = bot.ask(question, history, **options)
            except Exception as exc:  # the response has started: OpenAI's way is an error event, which the SDK raises
                log.exception("streamed chat completion failed")
                error = {"message": failure(exc), "type": "server_error", "param": None, "code": None}
                yield f"data: {json.dumps({'error': error})}\n\n"
                return
            cited, related = citations(answer, root), citations(answer, root, related=True)
            yield _chunk(ident, created, {"content": content(answer, cited, related)})
            yield _chunk(ident, created, {"citations": cited, "related": related}, "stop", citations=cited,
                         related=related, declined=answer.declined)
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router
