"""The web layer: one FastAPI application with the Gradio chat mounted in it.

    /                        the chat (Gradio; its API stays usable from `gradio_client`)
    POST /api/ask            JSON answer with citations, or server-sent events with "stream": true
    GET  /api/search         the passages that best match a query
    GET  /api/documents/{id} a stored document (text and metadata), to show a citation in context
    GET  /doc/{id}           the document page: the article with text[start:end] highlighted (citations link here)
    GET  /healthz            liveness and index size
    GET  /docs               OpenAPI docs (/openapi.json)
    GET  /widget.js          the embeddable chat widget (a floating button opening the chat in an iframe)
    GET  /gradio.js          Gradio's own web-component loader, for `<gradio-app src=...>` embedding
    POST /v1/chat/completions the OpenAI-compatible chat (citations beside the message); GET /v1/models
    POST /mcp                the MCP server (streamable HTTP): search_library, ask_library, get_document, list_documents
    /library, /insights      the Library and Insights views, with their /api routes

One module per job: `render` (HTML of answers; document text is untrusted and escaped), `document`
(the document page), `limits` (bounds on what a request carries, the same on every path),
`security` (origins, Host names, body sizes, uploads, headers, the token), `api` (REST), `chat`
(Gradio), `app` (assembly and serving). Every part is a thin layer over `Assistant`: no answer logic lives here.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry from an intranet server; before gradio loads

# Imported when first used: the chat's module imports gradio (seconds), which `assistant mcp` over stdio
# never needs.
_EXPORTS = {"create_app": "app", "run_server": "app", "EXAMPLES": "chat", "plain_history": "chat",
            "render_answer": "render", "render_passage": "render"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
