"""Who may reach the server and how: origins (CSP, CORS), Host names, body sizes, uploads, headers."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable

from fastapi.responses import JSONResponse

from ..config import Config
from .tarpit import Tarpit

log = logging.getLogger("assistant.web")

# Larger request bodies are refused with 413 before they are read, on every path (the REST API,
# Gradio's API and the chat's own requests); bodies of unknown length (chunked) with 411.
MAX_BODY_BYTES = 1_000_000
# Where the page may be embedded and /api called from when `allowed_origins` is empty:
# any port of this machine, under either name, and nothing else.
LOCAL_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "https://localhost:*", "https://127.0.0.1:*")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Gradio's file upload routes: the chat takes text only, so they are closed.
UPLOAD_PATHS = ("/upload", "/gradio_api/upload")
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Uploads to the library (multipart), bounded by max_upload_mb instead of MAX_BODY_BYTES.
LIBRARY_UPLOAD_PATH = "/api/documents"

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
DOCUMENT_PATH = "/doc/"


def content_security_policy(origins: tuple[str, ...], cdn: str = "") -> str:
    # Scripts, styles, fonts and connections from this server only: the page loads nothing from a
    # CDN, and injected markup could neither load nor send anything elsewhere. Gradio needs inline
    # scripts (its config) and inline styles.
    extra = f" {cdn}" if cdn else ""
    return (f"default-src 'self'; script-src 'self' 'unsafe-inline'{extra}; style-src 'self' 'unsafe-inline'{extra}; "
            f"img-src 'self' data: blob:{extra}; font-src 'self' data:{extra}; media-src 'self' data: blob:; "
            "connect-src 'self'; worker-src 'self' blob:; frame-src 'self'; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors " + ("*" if origins == ("*",) else "'self' " + " ".join(origins)))


def document_security_policy(origins: tuple[str, ...]) -> str:
    # The document page shows untrusted article text: no inline script or style at all, its one
    # script and stylesheet from this server, nothing to connect to, submit or load in a frame.
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'none'; "
            "object-src 'none'; base-uri 'none'; form-action 'none'; frame-src 'none'; frame-ancestors "
            + ("*" if origins == ("*",) else "'self' " + " ".join(origins)))


def served_hosts(config: Config) -> tuple[str, ...] | None:
    """The Host names the server answers to, or None for any.

    `allowed_hosts` entries are names or addresses ("assistant.intranet", "10.0.0.5") or "*".
    Empty: the loopback names when the server listens on loopback, which is what stops a
    DNS-rebinding page from reaching it through a name of its own; any name otherwise (the names
    an intranet reaches it by are not known here).
    """
    hosts = tuple(h.strip().lower().strip("[]") for h in config.allowed_hosts if h.strip())
    if "*" in hosts:
        return None
    if hosts:
        return hosts
    return LOOPBACK_HOSTS if config.host in LOOPBACK_HOSTS else None


# A Host header is a name or address and an optional port, nothing else: no userinfo
# ("localhost:7881@evil.example" is not localhost), no path, no spaces. Links are built from it.
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?)"
                   r"(?::\d{1,5})?")


def _host_name(header: bytes) -> str | None:
    """The name in a Host header, without the port ("127.0.0.1:7860" → "127.0.0.1", "[::1]:80" → "::1"),
    or None when the header is not of that form."""
    host = header.decode("latin-1").strip().lower()
    if not (m := _HOST.fullmatch(host)):
        return None
    return m.group(1).strip("[]").rstrip(".")


# Request headers a proxy adds: a request that carries one came through a proxy, not from this machine.
FORWARDED_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


OPENAI_PATH = "/v1/"
# The chat's event stream. Gradio answers an unknown session there with an exception raised inside a
# response already started: ~14 KB of tracebacks in the log per 60-byte request. Refused here instead,
# with one log line a minute at most.
QUEUE_DATA_PATH = "/queue/data"


class _RateLimitedNote:
    """Counts refusals and logs one line about them at most every `seconds`."""

    def __init__(self, message: str, seconds: float = 60.0):
        self.message, self.seconds = message, seconds
        self.count, self.last = 0, -seconds

    def note(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.seconds:
            log.warning(self.message, self.count)
            self.count, self.last = 0, now


_UNKNOWN_SESSIONS = _RateLimitedNote("refused %d request(s) for unknown chat sessions (logged once a minute)")


def _query_value(scope, name: bytes) -> str:
    for pair in scope.get("query_string", b"").split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == name:
            return value.decode("latin-1")
    return ""


class Guard:
    """ASGI middleware: Host allow-list; bodies of unknown or excessive size and uploads refused before
    anything is read; security headers on every response."""

    def __init__(self, app, origins: tuple[str, ...], hosts: tuple[str, ...] | None, upload_bytes: int = MAX_BODY_BYTES,
                 known_session: Callable[[str], bool] | None = None):
        self.app = app
        self.hosts = hosts
        self.known_session = known_session  # whether the chat (Gradio) has this session's queue
        self.upload_bytes = upload_bytes  # the bound of a body sent to LIBRARY_UPLOAD_PATH
        self.csp = content_security_policy(origins).encode()
        self.docs_csp = content_security_policy(origins, DOCS_CDN).encode()
        self.document_csp = document_security_policy(origins).encode()
        self.tarpit = Tarpit()  # a client's refusals past a burst come slowly (web/tarpit.py)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("",))[0]
        if refusal := self._refusal(scope):
            status, detail = refusal
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            await self.tarpit.refused(client)
            # OpenAI's clients read their own error shape (assistant.web.openai answers in it too).
            body = ({"error": {"message": detail, "type": "invalid_request_error", "param": None, "code": None}}
                    if scope["path"].startswith(OPENAI_PATH) else {"detail": detail})
            return await JSONResponse(body, status)(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                if 400 <= message.get("status", 200) < 500:
                    await self.tarpit.refused(client)
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-security-policy", b"x-frame-options")]
                csp = (self.docs_csp if scope["path"] in DOCS_PATHS
                       else self.document_csp if scope["path"].startswith(DOCUMENT_PATH) else self.csp)
                headers += [(b"content-security-policy", csp), (b"x-content-type-options", b"nosniff")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope) -> tuple[int, str] | None:
        headers = dict(scope["headers"])
        host = _host_name(headers.get(b"host", b""))
        if host is None:
            return 400, "The Host header is not a host name with an optional port."
        if self.hosts is not None and host not in self.hosts:
            return 400, (f"This server does not answer to the host name {host!r}; add it to allowed_hosts "
                         "if it should.")
        if headers.get(b"x-forwarded-proto", b"http").strip().lower() not in (b"http", b"https"):
            return 400, "X-Forwarded-Proto must be http or https."
        if (scope["type"] == "http" and scope["method"] == "GET" and scope["path"].endswith(QUEUE_DATA_PATH)
                and self.known_session is not None and not self.known_session(_query_value(scope, b"session_hash"))):
            _UNKNOWN_SESSIONS.note()
            return 404, "No such chat session; reload the page."
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            return None
        if scope["path"].rstrip("/") in UPLOAD_PATHS:
            return 403, "File uploads are turned off: the assistant takes questions as text."
        if b"transfer-encoding" in headers:
            return 411, "Send the request body with a Content-Length header."
        length = headers.get(b"content-length", b"0")
        if not length.isdigit():
            return 400, "The Content-Length header is not a number."
        limit = self.upload_bytes if scope["path"] == LIBRARY_UPLOAD_PATH and scope["method"] == "POST" else MAX_BODY_BYTES
        if int(length) > limit:
            return 413, f"The request body is larger than {limit} bytes" + (
                " (max_upload_mb)." if limit != MAX_BODY_BYTES else ".")
        return None


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header value; '' for anything else."""
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _same(given: str, token: str) -> bool:
    return bool(token) and secrets.compare_digest(given.encode(), token.encode())


def token_ok(given: str, config: Config) -> bool:
    """True when no api_token is set, or `given` is the api_token or the admin_token (whoever may change
    the library may read it); compared in constant time."""
    return not config.api_token or _same(given, config.api_token) or _same(given, config.admin_token)


def write_refusal(headers: dict[str, str], client_host: str, same_origin: str, config: Config,
                  origins: tuple[str, ...]) -> tuple[int, str] | None:
    """Why a request may not change the library, or None when it may.

    With `admin_token` (else `api_token`) set, it must carry that token. With neither, only this
    machine may write (loopback clients). In both cases a browser request must come from this
    server's own pages or an allowed origin: a form on another site posting to a server on the
    user's machine (no CORS preflight for a multipart POST) is refused.
    """
    origin = headers.get("origin")
    if origin and origin != same_origin and not re.fullmatch(origin_regex(origins), origin):
        return 403, f"Changing the library from a page of {origin} is not allowed (allowed_origins)."
    token = config.admin_token or config.api_token
    if token:
        if not _same(bearer_token(headers.get("authorization", "")), token):
            name = "admin_token" if config.admin_token else "api_token"
            return 401, f"Changing the library needs the {name}: send `Authorization: Bearer <token>`."
        return None
    # A request a proxy forwarded is not from this machine, whatever address the proxy connects from.
    forwarded = any(h in headers for h in FORWARDED_HEADERS)
    if forwarded or (client_host.strip("[]") not in LOOPBACK_HOSTS and not client_host.startswith("127.")):
        return 403, ("Without an admin_token (or api_token), the library can only be changed from this machine "
                     "(not through a proxy); set ASSISTANT_ADMIN_TOKEN to allow it from others.")
    return None
