"""The application: the REST API, health, docs, widget and the Gradio chat in one FastAPI app; serving it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import fastapi
import gradio as gr
from fastapi import Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from ..config import Config
from ..core import Assistant
from ..ingest.library import Jobs
from ..store.collections import open_grant
from .access import grant_of, may_read_document
from .api import api_router, authorizer
from .chat import CSS, HEAD, create_chat, theme
from .collections_api import collections_router
from .document import PAGE_IMAGE_PATH, document_page, missing_page, page_image
from .insights import insights_router
from .library_api import library_router
from .mcp import mount_mcp
from .openai import openai_router
from .outage import UNREACHABLE, Outage, OutageGuard, checked
from .security import LOOPBACK_HOSTS, Guard, embed_origins, origin_regex, served_hosts

if TYPE_CHECKING:
    from ..ingest.jobs import JobQueue

log = logging.getLogger("assistant.web")

STATIC = Path(__file__).parent.parent / "static"
PAGE_ASSETS = ("document.css", "document.js", "pages.css", "pages.js", "library.css", "library.js", "insights.css",
               "insights.js", "collections.js")
# Room for a multipart body's boundaries and part headers beyond max_upload_mb of files.
UPLOAD_OVERHEAD = 64_000


def job_queue(bot: Assistant, config: Config, ingest: bool = True) -> JobQueue:
    """Where library changes go: this server's own background run, or (`ingest` off, PostgreSQL only)
    the database, for `assistant worker` processes to do."""
    if ingest:
        return Jobs(bot.library)
    if not config.store.startswith("postgresql"):
        raise ValueError("--no-ingest needs a PostgreSQL store (--store postgresql://…), which workers share; "
                         "a folder store indexes in its server")
    from ..ingest.jobs import PostgresJobs

    return PostgresJobs(config.store)


def create_app(bot: Assistant, config: Config, jobs: JobQueue | None = None) -> fastapi.FastAPI:
    """The FastAPI application: REST API, health, docs, widget, and the Gradio chat at /. Library changes
    go to `jobs` (default: this process's background run, see `job_queue`)."""
    origins = embed_origins(config)
    app = fastapi.FastAPI(
        title="Seller Assistant API",
        description="Answers cross-border e-commerce sellers' questions from the article library, with verifiable "
                    "citations. The chat is at `/`, the embeddable widget at `/widget.js`."
                    + (" `/api/*` requires `Authorization: Bearer <token>`." if config.api_token else ""),
        version="1",
    )
    # CORS is added last, so it is outermost: refusals by Guard (411, 413) carry CORS headers too.
    # Gradio sees this CORSMiddleware and leaves CORS to it (its own would allow any origin when
    # the server is reached under a non-local name). Credentials: there are no cookies to send (the
    # API token is a header a browser never adds by itself); Gradio's web component asks for them.
    outage = Outage(lambda: (bot.index.store.counts(), checked(bot.index.store, app.state.jobs,
                                                               getattr(bot.questions, "store", None))))
    app.add_middleware(OutageGuard, outage=outage)  # innermost: its 503s pass Guard's checks and get CORS headers
    app.add_middleware(Guard, origins=origins, hosts=served_hosts(config),
                       upload_bytes=int(config.max_upload_mb * 1_000_000) + UPLOAD_OVERHEAD,
                       known_session=lambda session: _chat_session_known(app, session))
    app.add_middleware(CORSMiddleware, allow_origin_regex=origin_regex(origins), allow_credentials=True,
                       allow_methods=["GET", "POST", "DELETE", "OPTIONS"], allow_headers=["*"], max_age=600)

    async def unreachable(request: Request, exc: Exception):
        outage.begin(exc)
        return outage.response(request.url.path)

    for kind in UNREACHABLE:
        app.add_exception_handler(kind, unreachable)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"The server failed ({type(exc).__name__}); see the server log."}, 500)

    app.include_router(api_router(bot, config))
    app.state.jobs = jobs or Jobs(bot.library)
    app.include_router(library_router(bot, config, app.state.jobs, origins, authorizer(config), STATIC))
    app.include_router(collections_router(bot, config, app.state.jobs, origins, authorizer(config)))
    app.include_router(insights_router(bot, config, origins, authorizer(config), STATIC))
    app.include_router(openai_router(bot, config))
    mount_mcp(app, bot, config)

    @app.get("/healthz", tags=["health"])
    def healthz():
        """Liveness: the index answers and how big it is."""
        try:
            counts = bot.index.store.counts()
        except Exception as exc:
            log.exception("health check failed")
            return JSONResponse({"status": "error", "detail": type(exc).__name__}, 503)
        return {"status": "ok", "documents": counts["documents"], "chunks": counts["chunks"]}

    def readable(request: Request, doc_id: str):
        """The document, when the request's token (or none: open_collections) reads a collection holding it."""
        doc = bot.document(doc_id)
        grant = grant_of(request.headers.get("authorization", ""), config) or open_grant(config)
        return doc if doc is not None and may_read_document(grant, doc_id, bot) else None

    @app.get("/doc/{doc_id:path}", response_class=HTMLResponse, tags=["documents"],
             responses={404: {"description": "Unknown id"}})
    def document(request: Request, doc_id: str, start: int | None = None, end: int | None = None,
                 answer_start: int | None = None, answer_end: int | None = None):
        """The document page: the whole stored article with text[start:end] highlighted (where citations link),
        and text[answer_start:answer_end] inside it, the answer itself, emphasised.

        Open like the chat (no token): a citation must be followable from the widget. A document in no
        collection that may be read without a token (open_collections) is answered as unknown."""
        doc = readable(request, doc_id)
        if doc is None:
            return HTMLResponse(missing_page(doc_id), 404)
        return HTMLResponse(document_page(doc, start, end, (answer_start, answer_end)))

    @app.get(PAGE_IMAGE_PATH + "/{page}/{doc_id:path}", include_in_schema=False)
    def page_image_of(request: Request, page: int, doc_id: str):
        """The image of a page read by OCR (a screenshot, a scanned PDF page): the document page shows
        the quoted lines on it. Open like the document page."""
        doc = readable(request, doc_id)
        found = page_image(doc, page) if doc is not None else None
        if found is None:
            return JSONResponse({"detail": f"No page image {page} of document {doc_id!r}."}, 404)
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    # The document and library pages' stylesheets and scripts (the pages hold nothing inline).
    for name in PAGE_ASSETS:
        app.add_api_route(f"/{name}", _asset(name), methods=["GET"], include_in_schema=False)

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
        pwa=False, theme=theme(), css=CSS, head=HEAD,
    )
    chat_app = next(r.app for r in app.routes if isinstance(getattr(r, "app", None), gr.routes.App))
    # Setting this event ends the open chat pages' heartbeat streams (see run_server).
    app.state.gradio_stop_event = chat_app.stop_event
    app.state.chat_app = chat_app
    return app


def _chat_session_known(app: fastapi.FastAPI, session: str) -> bool:
    """Whether Gradio's event stream has a queue for `session`: the check it makes itself (gradio 6.31's
    internals), made before a response starts."""
    return session in app.state.chat_app.get_blocks()._queue.pending_messages_per_session


def _asset(name: str):
    media = "text/css; charset=utf-8" if name.endswith(".css") else "text/javascript; charset=utf-8"
    return lambda: FileResponse(STATIC / name, media_type=media, headers={"Cache-Control": "no-cache"})


def run_server(bot: Assistant, config: Config, ingest: bool = True) -> None:
    """Serve `create_app` with uvicorn until Ctrl-C (or SIGTERM), then close the index. `ingest` off:
    library changes are queued for `assistant worker` (see `job_queue`)."""
    import click
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
    try:
        app = create_app(bot, config, job_queue(bot, config, ingest))
    except ValueError as exc:  # a configuration mistake, e.g. in allowed_origins
        bot.close()
        raise click.ClickException(str(exc)) from exc
    loopback = config.host in LOOPBACK_HOSTS
    if not loopback and not config.api_token:
        log.warning("listening on %s without an api_token: anyone who can reach this port can use /api", config.host)
    if not loopback and not config.allowed_hosts:
        log.info("allowed_hosts is empty: the server answers to any host name; set ASSISTANT_ALLOWED_HOSTS to the "
                 "names your intranet reaches it by")
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

    # proxy_headers=False: the client address is the peer's. uvicorn would otherwise take it from
    # X-Forwarded-For when a proxy on this machine connects, and nothing here needs the remote address;
    # a forwarded request is never "this machine" for library writes (security.write_refusal).
    server = Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="info",
                                   timeout_graceful_shutdown=5, proxy_headers=False))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        app.state.jobs.close()  # a running indexing run finishes (it is one transaction either way)
        bot.close()
