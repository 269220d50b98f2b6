"""The web layer: one FastAPI application with the Gradio chat mounted in it.

    /                        the chat (Gradio; its API stays usable from `gradio_client`)
    POST /api/ask            JSON answer with citations, or server-sent events with "stream": true
    GET  /api/search         the passages that best match a query
    GET  /api/documents/{id} a stored document (text and metadata), to show a citation in context
    GET  /healthz            liveness and index size
    GET  /docs               OpenAPI docs (/openapi.json)
    GET  /widget.js          the embeddable chat widget (a floating button opening the chat in an iframe)
    GET  /gradio.js          Gradio's own web-component loader, for `<gradio-app src=...>` embedding

Every part is a thin layer over `Assistant`: no answer logic lives here. Document text is
untrusted: everything taken from a document is HTML-escaped before it is put into a page.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import fastapi
from fastapi import Depends, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from .answer import Answer, Citation
from .config import Config
from .core import Assistant

log = logging.getLogger("assistant.serve")

STATIC = Path(__file__).parent / "static"
# Larger /api request bodies are refused with 413 before they are read (history included); bodies
# without a Content-Length with 411.
MAX_BODY_BYTES = 1_000_000
MAX_HISTORY_MESSAGES = 100
MAX_SEARCH_K = 50
# Chat events answered at once; more wait in Gradio's queue (at most QUEUE_SIZE of them).
CHAT_CONCURRENCY = 4
QUEUE_SIZE = 64
# Where the page may be embedded and /api called from when `allowed_origins` is empty:
# any port of this machine, under either name, and nothing else.
LOCAL_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "https://localhost:*", "https://127.0.0.1:*")
# Latin letters from Gradio's bundled Source Sans Pro, Chinese from the system's CJK fonts
# (Gradio's fonts have no CJK glyphs). Nothing is fetched from a font service.
FONT_STACK = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Hiragino Sans GB",
              "Microsoft YaHei", "WenQuanYi Micro Hei", "sans-serif")
EXAMPLES = ["品牌应该all in直播带货吗？", "Should a brand go all in on live-stream selling?", "网红营销有哪些风险？"]

_LABELS = {
    "zh": {"sources": "来源", "page": "第 {} 页", "too_long": "问题太长：{n} 个字符，上限是 {max} 个。请缩短后再问。",
           "empty": "请先输入问题。", "failed": "出错了，这个问题没能回答（{kind}）。请稍后重试；详细信息在服务器日志中。"},
    "en": {"sources": "Sources", "page": "p. {}", "too_long": "The question is too long: {n} characters, the limit is "
           "{max}. Please shorten it.", "empty": "Type a question first.",
           "failed": "Something went wrong and this question could not be answered ({kind}). Please try again; "
                     "the details are in the server log."},
}


# --- HTML rendering of answers (everything from documents is escaped) ---------------------------

_BOUNDARY = re.compile(r"[。！？!?；;\n]|\.(?=\s)")
_URL = re.compile(r"^https?://[^\s\"'<>]+$", re.I)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _paragraphs(text: str) -> str:
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join("<p>" + _esc(p).replace("\n", "<br>") + "</p>" for p in paras)


def _lang(text: str) -> str:
    return "zh" if re.search(r"[\u3400-\u9fff]", text) else "en"


def context_bounds(text: str, start: int, end: int, width: int = 120) -> tuple[int, int]:
    """The passage around text[start:end]: up to `width` characters either side, cut at sentence ends."""
    a = max(0, start - width)
    if a > 0:
        m = _BOUNDARY.search(text, a, start)
        a = m.end() if m else a
    b = min(len(text), end + width)
    if b < len(text):
        last = None
        for last in _BOUNDARY.finditer(text, end, b):
            pass
        b = last.end() if last else b
    return a, b


def render_passage(text: str, start: int, end: int) -> str:
    """The quoted sentence highlighted (<mark>) inside its surrounding passage, all of it escaped."""
    a, b = context_bounds(text, start, end)

    def part(s: str) -> str:
        return _esc(re.sub(r"\s*\n\s*", "\n", s)).replace("\n", "<br>")

    before, after = text[a:start].lstrip(), text[end:b].rstrip()
    return ("…" if a > 0 else "") + part(before) + '<mark class="sa-quote">' + part(text[start:end]) + "</mark>" \
        + part(after) + ("…" if b < len(text) else "")


def render_citation(c: Citation, document_text: str | None, lang: str) -> str:
    labels = _LABELS[lang]
    meta = []
    if c.date:
        meta.append(_esc(c.date))
    if c.source:
        if _URL.match(c.source):
            meta.append(f'<a href="{_esc(c.source)}" target="_blank" rel="noopener noreferrer nofollow">'
                        f"{_esc(c.source)}</a>")
        else:
            meta.append(_esc(c.source))
    if c.page:
        meta.append(_esc(labels["page"].format(c.page)))
    if document_text is not None and document_text[c.start : c.end] == c.quote:
        passage = render_passage(document_text, c.start, c.end)
    else:  # the document changed since the answer was made: the quote alone
        passage = '<mark class="sa-quote">' + _esc(c.quote).replace("\n", "<br>") + "</mark>"
    return (f'<div class="sa-source" data-doc-id="{_esc(c.doc_id)}"><div class="sa-source-head">'
            f'<span class="sa-num">[{c.number}]</span> <strong class="sa-title">{_esc(c.title or c.doc_id)}</strong>'
            + (f' <span class="sa-meta">{" · ".join(meta)}</span>' if meta else "")
            + f'</div><blockquote class="sa-passage">{passage}</blockquote></div>')


def render_answer(answer: Answer, bot: Assistant) -> str:
    """The final chat message: the answer, then each [n] with its title, date, source, page and passage."""
    lang = answer.lang if answer.lang in _LABELS else "en"
    parts = [f'<div class="sa-answer{" sa-declined" if answer.declined else ""}">{_paragraphs(answer.text)}</div>']
    if answer.citations:
        texts: dict[str, str | None] = {}
        for c in answer.citations:
            if c.doc_id not in texts:
                doc = bot.document(c.doc_id)
                texts[c.doc_id] = doc.text if doc else None
        parts.append(f'<div class="sa-sources"><div class="sa-sources-title">{_LABELS[lang]["sources"]}</div>'
                     + "".join(render_citation(c, texts[c.doc_id], lang) for c in answer.citations) + "</div>")
    return "".join(parts)


def render_partial(text: str) -> str:
    """An answer while it is being streamed."""
    return f'<div class="sa-answer sa-streaming">{_paragraphs(text)}</div>'


def render_error(message: str) -> str:
    """A failure, shown as the assistant's message."""
    return f'<div class="sa-error" role="alert">⚠ {_esc(message)}</div>'


def plain_history(history: list[dict] | None) -> list[dict]:
    """Gradio's chat history as the plain {"role", "content"} messages `Assistant.ask` takes.

    Gradio 6 gives content as a list of {"type": "text", "text": ...}; assistant messages are the
    HTML this module rendered, so only their answer text is kept (without the sources). A question
    that failed is left out with its error, so that it does not become the context of the next one.
    """
    out: list[dict] = []
    for m in history or []:
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            continue
        content = m.get("content")
        items = content if isinstance(content, list) else [content]
        text = "\n".join(i if isinstance(i, str) else str(i.get("text") or "") if isinstance(i, dict) else ""
                         for i in items).strip()
        if role == "assistant" and text.startswith('<div class="sa-error"'):
            if out and out[-1]["role"] == "user":
                out.pop()
            continue
        if role == "assistant":
            text = text.split('<div class="sa-sources"', 1)[0]
            text = re.sub(r"<br\s*/?>", "\n", text)
            text = re.sub(r"</p\s*>", "\n\n", text)
            text = html.unescape(re.sub(r"<[^>]*>", "", text)).strip()
        if text:
            out.append({"role": role, "content": text})
    return out


# --- Security settings ------------------------------------------------------------------------

_ORIGIN = re.compile(r"^(https?)://(\*\.)?([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}|\*))?$")


def embed_origins(config: Config) -> tuple[str, ...]:
    """The origins allowed to embed the chat and call /api from a browser, as CSP source expressions.

    `allowed_origins` entries are "*", or origins such as "https://intranet.example.com",
    "http://10.0.0.5:8080", "https://*.example.com" or "http://localhost:*". Empty: this machine only.
    """
    origins = []
    for raw in config.allowed_origins:
        origin = raw.strip().rstrip("/")
        if origin == "*":
            return ("*",)
        if not _ORIGIN.match(origin):
            raise ValueError(f"allowed_origins: {raw!r} is not an origin such as https://intranet.example.com, "
                             "http://10.0.0.5:8080, https://*.example.com or *")
        origins.append(origin)
    return tuple(origins) or LOCAL_ORIGINS


def origin_regex(origins: tuple[str, ...]) -> str:
    """The CORS allow-list as one regular expression matching the same origins as the CSP."""
    if origins == ("*",):
        return ".*"
    alternatives = []
    for o in origins:
        scheme, wildcard, host, port = _ORIGIN.match(o).groups()  # type: ignore[union-attr]
        rx = re.escape(scheme) + "://" + (r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\." if wildcard else "") + re.escape(host)
        rx += r"(?::\d+)?" if port == "*" else (":" + port if port else "")
        alternatives.append(rx)
    return "(?:" + "|".join(alternatives) + ")"


# FastAPI's /docs (Swagger UI) and /redoc pages load their scripts from this CDN; nothing else does.
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")


def content_security_policy(origins: tuple[str, ...], cdn: str = "") -> str:
    # Scripts, styles, fonts and connections from this server only: the page loads nothing from a
    # CDN, and injected markup could neither load nor send anything elsewhere. Gradio needs inline
    # scripts (its config) and inline styles.
    extra = f" {cdn}" if cdn else ""
    return (f"default-src 'self'; script-src 'self' 'unsafe-inline'{extra}; style-src 'self' 'unsafe-inline'{extra}; "
            f"img-src 'self' data: blob:{extra}; font-src 'self' data:{extra}; media-src 'self' data: blob:; "
            "connect-src 'self'; worker-src 'self' blob:; frame-src 'self'; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors " + ("*" if origins == ("*",) else "'self' " + " ".join(origins)))


class _Guard:
    """ASGI middleware: security headers on every response; /api bodies of unknown or excessive size refused."""

    def __init__(self, app, origins: tuple[str, ...]):
        self.app = app
        self.csp = content_security_policy(origins).encode()
        self.docs_csp = content_security_policy(origins, DOCS_CDN).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"].startswith("/api/") and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            length = dict(scope["headers"]).get(b"content-length")
            if length is None or not length.isdigit():
                response = JSONResponse({"detail": "Send the request body with a Content-Length header."}, 411)
                return await response(scope, receive, send)
            if int(length) > MAX_BODY_BYTES:
                response = JSONResponse({"detail": f"The request body is larger than {MAX_BODY_BYTES} bytes."}, 413)
                return await response(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-security-policy", b"x-frame-options")]
                csp = self.docs_csp if scope["path"] in DOCS_PATHS else self.csp
                headers += [(b"content-security-policy", csp), (b"x-content-type-options", b"nosniff")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- REST API -----------------------------------------------------------------------------------


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    question: str = Field(description="The question, in Chinese or English.")
    history: list[Message] = Field(default_factory=list, max_length=MAX_HISTORY_MESSAGES,
                                   description="The conversation so far, for follow-up questions.")
    stream: bool = Field(False, description="Answer as server-sent events: `delta` events with text pieces, "
                                            "then one `answer` event with the full answer JSON.")


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


class AskResponse(BaseModel):
    answer: str
    declined: bool = Field(description="True when the library has nothing on the question.")
    lang: str
    citations: list[CitationOut]
    meta: dict[str, Any] = {}


class HitOut(BaseModel):
    chunk_id: int
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    page: int | None
    score: float


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


def _check_question(question: str, config: Config, what: str = "question") -> str:
    q = question.strip()
    if not q:
        raise HTTPException(422, f"The {what} is empty.")
    if len(q) > config.max_question_chars:
        raise HTTPException(413, f"The {what} is {len(q)} characters long; the limit is "
                                 f"{config.max_question_chars} (max_question_chars).")
    return q


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def api_router(bot: Assistant, config: Config) -> fastapi.APIRouter:
    bearer = HTTPBearer(auto_error=False, description="Set when the server has an api_token.")

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not config.api_token:
            return
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), config.api_token.encode()):
            raise HTTPException(401, "A valid API token is required: send `Authorization: Bearer <token>`.",
                                headers={"WWW-Authenticate": "Bearer"})

    router = fastapi.APIRouter(prefix="/api", dependencies=[Depends(authorize)])

    @router.post("/ask", response_model=AskResponse,
                 responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or events if stream"},
                            401: {"description": "Missing or wrong API token"},
                            413: {"description": "Question longer than max_question_chars"}})
    def ask(request: AskRequest):
        """Answer a question from the library, citing the exact source text (or decline)."""
        question = _check_question(request.question, config)
        history = [m.model_dump() for m in request.history]
        if not request.stream:
            return bot.ask(question, history).to_dict()

        def events() -> Iterator[str]:
            try:
                for piece in bot.ask_stream(question, history):
                    if isinstance(piece, Answer):
                        yield _sse("answer", piece.to_dict())
                    else:
                        yield _sse("delta", {"text": piece})
            except Exception as exc:  # the response has started: report the failure as an event
                log.exception("streaming answer failed")
                yield _sse("error", {"detail": f"The answer failed ({type(exc).__name__}); see the server log."})

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/search", response_model=SearchResponse)
    def search(q: str = Query(description="The query."), k: int = Query(5, ge=1, le=MAX_SEARCH_K),
               mode: Literal["hybrid", "dense", "keyword"] = "hybrid"):
        """The k passages that best match the query, each with its document id and offsets."""
        query = _check_question(q, config, "query")
        hits = bot.search(query, k=k, mode=mode)
        return {"query": query, "hits": [{f: getattr(h, f) for f in HitOut.model_fields} for h in hits]}

    @router.get("/documents/{doc_id}", response_model=DocumentOut, responses={404: {"description": "Unknown id"}})
    def document(doc_id: str):
        """A stored document: its text (which citation offsets point into) and metadata."""
        doc = bot.document(doc_id)
        if doc is None:
            raise HTTPException(404, f"No document with id {doc_id!r}.")
        return {"doc_id": doc.doc_id, "title": doc.title, "author": doc.author, "date": doc.date,
                "source": doc.source, "file": Path(doc.path).name if doc.path else "", "lang": doc.lang,
                "pages": doc.pages, "meta": doc.meta, "text": doc.text}

    return router


# --- Gradio chat --------------------------------------------------------------------------------

CSS = """
.sa-answer p { margin: 0 0 .55em; }
.sa-answer p:last-child { margin-bottom: 0; }
.sa-declined { border-left: 3px solid #f59e0b; padding-left: .7em; }
.sa-error { color: #b91c1c; border-left: 3px solid #dc2626; padding-left: .7em; font-weight: 600; }
.sa-sources { margin-top: .9em; padding-top: .5em; border-top: 1px solid var(--border-color-primary); font-size: .93em; }
.sa-sources-title { font-weight: 600; margin-bottom: .35em; }
.sa-source { margin: .55em 0; }
.sa-source-head { line-height: 1.45; }
.sa-num { font-weight: 600; color: var(--color-accent); }
.sa-meta { color: var(--body-text-color-subdued); margin-left: .3em; word-break: break-word; }
.sa-passage { margin: .3em 0 0 !important; padding: .45em .75em !important; border-left: 3px solid var(--color-accent) !important;
  background: var(--background-fill-secondary); line-height: 1.55; font-style: normal; }
.sa-passage mark, mark.sa-quote { background: #fde68a; color: #111827; padding: 0 .1em; border-radius: 2px; }
.sa-header h1 { margin: .2em 0 0; font-size: 1.45em; }
.sa-header p { margin: .2em 0 .3em; color: var(--body-text-color-subdued); }
html.sa-widget .sa-header, html.sa-widget footer { display: none !important; }
html.sa-widget .gradio-container, html.sa-widget .gradio-container .main { padding: 4px !important; }
"""

# The widget's iframe opens /?embed=widget: a compact chat without the page header and footer.
HEAD = """<script>
if (new URLSearchParams(location.search).get("embed") === "widget") document.documentElement.classList.add("sa-widget");
</script>"""


def create_chat(bot: Assistant, config: Config):
    """The Gradio Blocks of the chat: streaming answers, sources with passages, examples, visible errors."""
    import gradio as gr

    def respond(message: str, history: list[dict]):
        # Failures are shown as a message in the chat, not raised: a raised gr.Error leaves Gradio's
        # chat input disabled. The message says what happened; the traceback goes to the server log.
        question = (message or "").strip()
        labels = _LABELS[_lang(question)]
        if not question:
            yield render_error(labels["empty"])
            return
        if len(question) > config.max_question_chars:
            yield render_error(labels["too_long"].format(n=len(question), max=config.max_question_chars))
            return
        try:
            text = ""
            for piece in bot.ask_stream(question, plain_history(history)):
                if isinstance(piece, Answer):
                    yield render_answer(piece, bot)
                    return
                text += piece
                yield render_partial(text)
        except Exception as exc:
            log.exception("answering in the chat failed")
            yield render_error(labels["failed"].format(kind=type(exc).__name__))

    def ask(question: str, history: list[dict] | None = None) -> dict:
        """Answer a question from the library: {answer, declined, lang, citations, meta}, as POST /api/ask does.

        history: earlier messages, [{"role": "user" | "assistant", "content": "..."}], for follow-up questions.
        """
        q = (question or "").strip()
        if not q:
            raise gr.Error(_LABELS[_lang(q)]["empty"], print_exception=False)
        if len(q) > config.max_question_chars:
            raise gr.Error(_LABELS[_lang(q)]["too_long"].format(n=len(q), max=config.max_question_chars),
                           print_exception=False)
        return bot.ask(q, plain_history(history)).to_dict()

    with gr.Blocks(title="Seller Assistant · 卖家助手", fill_height=True, analytics_enabled=False) as demo:
        # Markdown, not gr.HTML: gr.HTML evaluates templates with `new Function`, which the CSP forbids.
        gr.Markdown("# Seller Assistant · 卖家助手\nAnswers quote your article library, with sources. "
                    "回答引用资料库原文，并注明出处。", elem_classes="sa-header")
        gr.ChatInterface(
            respond,
            chatbot=gr.Chatbot(
                show_label=False, scale=1, height="100%", min_height=320,
                render_markdown=False,  # messages are HTML made here, everything from documents escaped
                sanitize_html=True, allow_tags=False, latex_delimiters=[], feedback_options=None,
                buttons=["copy"],
                placeholder="<strong>Ask about your library</strong><br>问一个关于资料库的问题",
            ),
            textbox=gr.Textbox(placeholder="Ask a question… 输入问题…", show_label=False, lines=1, max_lines=6,
                               submit_btn=True, stop_btn=True),
            examples=EXAMPLES,
            run_examples_on_click=True,
            cache_examples=False,
            api_name="chat",
            api_description="Answer a question; returns the chat message (HTML with the sources).",
            fill_height=True,
            analytics_enabled=False,
        )
        gr.api(ask, api_name="ask")
    demo.queue(default_concurrency_limit=CHAT_CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def _theme():
    import gradio as gr

    return gr.themes.Default(
        primary_hue="orange",
        font=(gr.themes.LocalFont("Source Sans Pro"), *FONT_STACK),
        font_mono=(gr.themes.LocalFont("IBM Plex Mono"), "Noto Sans Mono CJK SC", "monospace"),
    )


# --- The application ------------------------------------------------------------------------------


def create_app(bot: Assistant, config: Config) -> fastapi.FastAPI:
    """The FastAPI application: REST API, health, docs, widget, and the Gradio chat at /."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry from an intranet server
    import gradio as gr

    origins = embed_origins(config)
    app = fastapi.FastAPI(
        title="Seller Assistant API",
        description="Answers cross-border e-commerce sellers' questions from the article library, with verifiable "
                    "citations. The chat is at `/`, the embeddable widget at `/widget.js`."
                    + (" `/api/*` requires `Authorization: Bearer <token>`." if config.api_token else ""),
        version="1",
    )
    # CORS is added last, so it is outermost: refusals by _Guard (411, 413) carry CORS headers too.
    # Gradio sees this CORSMiddleware and leaves CORS to it (its own would allow any origin when
    # the server is reached under a non-local name). Credentials: there are no cookies to send (the
    # API token is a header a browser never adds by itself); Gradio's web component asks for them.
    app.add_middleware(_Guard, origins=origins)
    app.add_middleware(CORSMiddleware, allow_origin_regex=origin_regex(origins), allow_credentials=True,
                       allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"], max_age=600)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"The server failed ({type(exc).__name__}); see the server log."}, 500)

    app.include_router(api_router(bot, config))

    @app.get("/healthz", tags=["health"])
    def healthz():
        """Liveness: the index answers and how big it is."""
        try:
            counts = bot.index.store.counts()
        except Exception as exc:
            log.exception("health check failed")
            return JSONResponse({"status": "error", "detail": type(exc).__name__}, 503)
        return {"status": "ok", "documents": counts["documents"], "chunks": counts["chunks"]}

    @app.get("/widget.js", include_in_schema=False)
    def widget():
        return FileResponse(STATIC / "widget.js", media_type="text/javascript; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/gradio.js", include_in_schema=False)
    def gradio_js():
        # Gradio's web-component loader: it imports the hashed bundle under ./assets/ of this server.
        return FileResponse(Path(gr.__file__).parent / "templates" / "frontend" / "gradio.js",
                            media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"})

    demo = create_chat(bot, config)
    gr.mount_gradio_app(
        app, demo, path="/", server_name=config.host, server_port=config.port,
        footer_links=["api", "settings"], run_history=False, show_error=True, ssr_mode=False, mcp_server=False,
        pwa=False, theme=_theme(), css=CSS, head=HEAD,
    )
    # Setting this event ends the open chat pages' heartbeat streams (see run_server).
    app.state.gradio_stop_event = next(r.app.stop_event for r in app.routes
                                       if isinstance(getattr(r, "app", None), gr.routes.App))
    return app


def run_server(bot: Assistant, config: Config) -> None:
    """Serve `create_app` with uvicorn until Ctrl-C (or SIGTERM), then close the index."""
    import click
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
    try:
        app = create_app(bot, config)
    except ValueError as exc:  # a configuration mistake, e.g. in allowed_origins
        bot.close()
        raise click.ClickException(str(exc)) from exc
    loopback = config.host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not config.api_token:
        log.warning("listening on %s without an api_token: anyone who can reach this port can use /api", config.host)
    if not loopback and not config.allowed_origins:
        log.info("allowed_origins is empty: only pages on this machine (localhost, 127.0.0.1) can embed the chat "
                 "or call /api from a browser; set ASSISTANT_ALLOWED_ORIGINS for your intranet's origins")
    host = "localhost" if config.host in ("0.0.0.0", "::") else config.host
    url = f"http://{f'[{host}]' if ':' in host else host}:{config.port}"
    print(f"Seller Assistant: chat {url}/  API {url}/docs  widget {url}/widget.js  (Ctrl-C to stop)",
          file=sys.stderr, flush=True)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # Open chat pages hold a heartbeat stream each; end them, or Ctrl-C waits for the
            # graceful-shutdown timeout and then cancels them with a traceback each.
            app.state.gradio_stop_event.set()
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="info",
                                   timeout_graceful_shutdown=5))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        bot.close()
