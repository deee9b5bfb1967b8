"""ASGI entry point, served by Granian (``python -m granian --interface asgi buyer.asgi:application``; the
stack and ``make run`` do so) or any ASGI server with lifespan.

A small dispatcher sits in front of everything. It owns the ASGI lifespan, which runs the MCP session manager,
and sends each request to one of three places:

- ``GET``/``HEAD /health`` is answered here, without Django: the liveness check the operations guide documents
  (the same body as the API's ``/health`` route, which the OpenAPI schema describes), cheap enough for every
  load balancer probe;
- exactly the MCP paths (``/mcp``, ``/mcp/``, ``/mcp/sse``, ``/mcp/messages/``) go to the MCP transports, which
  are asynchronous (an SSE stream holds no thread); ``buyer.mcp.auth.McpGate`` authenticates them;
- ``GET /bookings`` and ``GET /bookings/{id}`` are answered in the event loop when they are ordinary
  (``buyer.fastpath``: the same SQL, presenters and JSON as Django's, on PostgreSQL); otherwise, and
- everything else goes to Django's WSGI handlers (``buyer.web``: the lean API stack or the pages' full one) in a
  pool of ``WEB_THREADS`` threads per process. Django's own ASGI handler would run every sync view on one
  thread per process; the views are sync (the ORM is), so a pool of threads serves them in parallel while
  each waits on the database.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import django
from starlette.types import ASGIApp, Receive, Scope, Send

from buyer.metrics.http import http_observe, observed

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")

logger = logging.getLogger(__name__)


def health_body(version: str) -> bytes:
    """What ``/health`` answers while the process serves: the API route's body, byte for byte."""
    return json.dumps({"status": "healthy", "version": version}).encode()


class Dispatcher:
    """Exact paths to their apps, everything else to ``default``; ``lifespan`` runs for the server's lifetime.

    ``health`` (a body) answers ``GET``/``HEAD /health`` here; other methods on it reach ``default``."""

    def __init__(
        self,
        default: ASGIApp,
        routes: Mapping[str, ASGIApp],
        lifespan: Callable[[], AbstractAsyncContextManager[None]],
        health: bytes | None = None,
    ) -> None:
        self.default = default
        self.routes = dict(routes)
        self.lifespan = lifespan
        self.started = False
        self.health = health
        self.health_headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(health or b"")).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"cache-control", b"no-store"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            await self.default(scope, receive, send)
            return
        if self.health is not None and scope["path"] == "/health" and scope["method"] in ("GET", "HEAD"):
            started = time.perf_counter()
            await send({"type": "http.response.start", "status": 200, "headers": self.health_headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self.health})
            http_observe(route="/health", method=scope["method"], status=200, seconds=time.perf_counter() - started)
            return
        # Every other answer is counted by route and status (``buyer.metrics.http``): an MCP path is its own route.
        app = self.routes.get(scope["path"])
        await observed(self._route, scope, receive, send, route=None if app is None else scope["path"])

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.routes.get(scope["path"])
        if app is None:
            await self.default(scope, receive, send)
        elif not self.started:
            # Served without lifespan (Granian --interface asginl, a bare test server): the MCP session manager is
            # not running, so say why instead of failing inside the SDK.
            from buyer.mcp.auth import send_json

            await send_json(send, 503, {"detail": "MCP needs the ASGI lifespan: serve with granian --interface asgi"})
        else:
            await app(scope, receive, send)

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        phase = "startup"
        try:
            async with self.lifespan():
                self.started = True
                await send({"type": "lifespan.startup.complete"})
                phase = "shutdown"
                await receive()  # lifespan.shutdown
                self.started = False
        except BaseException:
            self.started = False
            logger.exception("ASGI lifespan %s failed", phase)
            await send({"type": f"lifespan.{phase}.failed", "message": traceback.format_exc()})
            raise
        await send({"type": "lifespan.shutdown.complete"})


class ThreadedWSGI:
    """A WSGI callable served from a pool of threads (a2wsgi), for any ASGI server.

    a2wsgi reads the body with ``run_coroutine_threadsafe(receive())``, which takes only coroutines; Granian's
    ``receive`` returns an awaitable of its own, so it is wrapped in one."""

    def __init__(self, wsgi: Callable[..., object], threads: int) -> None:
        from a2wsgi import WSGIMiddleware

        self.app = WSGIMiddleware(wsgi, workers=threads)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_coroutine() -> object:
            return await receive()

        await self.app(scope, receive_coroutine, send)  # type: ignore[arg-type]


def build_application() -> Dispatcher:
    """Django (in a thread pool) plus a fresh MCP server (its session manager runs once per application)."""
    django.setup(set_prefix=False)
    # Imported after django.setup(): Django's handlers and the MCP tools use the models.
    from django.conf import settings

    from buyer.fastpath import FastReads
    from buyer.mcp.server import build_mcp_endpoints
    from buyer.web import build_wsgi
    from campaigns.fast_reads import ROUTES

    django_app = ThreadedWSGI(build_wsgi(), threads=settings.WEB_THREADS)
    web = FastReads(django_app, ROUTES, connections=settings.WEB_FAST_READ_CONNECTIONS)
    mcp = build_mcp_endpoints()

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with web.lifespan(), mcp.lifespan():
            yield

    return Dispatcher(web, mcp.routes, lifespan, health=health_body(settings.VERSION))


application = build_application()
