"""While the library's database is away (a PostgreSQL restart, a failover): answer 503 at once rather than
each request waiting out the connection pool's timeout for a 500; say so in one log line when it goes and
one when it is back; and find out by itself that it is back.

The first request that meets the outage (an OperationalError, the pool's PoolTimeout) starts it: from then
on, requests for what needs the database (`NEEDS_DATABASE`) are answered 503 without touching it, while a
thread asks the database every `PROBE_EVERY` seconds until it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg_pool import PoolTimeout
from starlette.responses import JSONResponse

log = logging.getLogger("assistant.web")

UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
NEEDS_DATABASE = ("/api/", "/v1/", "/mcp", "/doc/", "/healthz")
PROBE_EVERY = 1.0
RETRY_AFTER = 5  # seconds, told to clients
MESSAGE = ("数据库暂时无法连接（可能正在重启），请稍后再试。The library's database cannot be reached right now "
           "(a restart?); try again in a minute.")


def checked(*holders: object) -> None:
    """Drop the broken connections a restart left idle in the pools of these stores (PostgresStore,
    PostgresJobs, PostgresQuestions), so that the first requests after it do not meet them."""
    for holder in holders:
        pool = getattr(holder, "_pool", None)
        if pool is not None and hasattr(pool, "check"):
            pool.check()


class Outage:
    def __init__(self, probe: Callable[[], object]):
        self.probe = probe  # raises while the database is away; when it is back, leaves the pools ready
        self.since: float | None = None
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self.since is not None

    def begin(self, exc: BaseException) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("the library's database cannot be reached (%s); answering 503 until it is back", reason)
        threading.Thread(target=self._watch, name="database-outage", daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(PROBE_EVERY)
            try:
                self.probe()
            except Exception:  # still away
                continue
            with self._lock:
                took, self.since = time.monotonic() - (self.since or time.monotonic()), None
            log.info("the library's database is back after %.0f s", took)
            return

    @staticmethod
    def response(path: str) -> JSONResponse:
        body = ({"error": {"message": MESSAGE, "type": "server_error", "param": None, "code": "database_unavailable"}}
                if path.startswith("/v1/") else {"detail": MESSAGE})
        return JSONResponse(body, 503, headers={"Retry-After": str(RETRY_AFTER)})


class OutageGuard:
    """ASGI middleware: during an outage, 503 at once for the paths that need the database."""

    def __init__(self, app, outage: Outage):
        self.app, self.outage = app, outage

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.outage.down and scope["path"].startswith(NEEDS_DATABASE):
            await self.outage.response(scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)
