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

One module per job: `render` (HTML of answers; document text is untrusted and escaped), `document`
(the document page), `limits` (bounds on what a request carries, the same on every path),
`security` (origins, Host names, body sizes, uploads, headers, the token), `api` (REST), `chat`
(Gradio), `app` (assembly and serving). Every part is a thin layer over `Assistant`: no answer logic lives here.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry from an intranet server; before gradio loads

from .app import create_app, run_server  # noqa: E402
from .chat import EXAMPLES, plain_history  # noqa: E402
from .render import render_answer, render_passage  # noqa: E402

__all__ = ["EXAMPLES", "create_app", "plain_history", "render_answer", "render_passage", "run_server"]
