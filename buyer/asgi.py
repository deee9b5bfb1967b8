"""ASGI entry point. Serve with uvicorn (lifespan on): ``uvicorn buyer.asgi:application --lifespan on``.

A small dispatcher sits in front of Django. It owns the ASGI lifespan, which runs the MCP session manager
(Django's handler refuses lifespan), routes exactly the MCP paths (``/mcp``, ``/mcp/``, ``/mcp/sse``,
``/mcp/messages/``) to the MCP transports and everything else to Django. MCP requests therefore skip
Django's middleware: ``buyer.mcp.auth.McpGate`` authenticates them.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager

from django.core.asgi import get_asgi_application
from starlette.types import ASGIApp, Receive, Scope, Send

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")

logger = logging.getLogger(__name__)


class Dispatcher:
    """Exact paths to their apps, everything else to ``default``; ``lifespan`` runs for the server's lifetime."""

    def __init__(
        self,
        default: ASGIApp,
        routes: Mapping[str, ASGIApp],
        lifespan: Callable[[], AbstractAsyncContextManager[None]],
    ) -> None:
        self.default = default
        self.routes = dict(routes)
        self.lifespan = lifespan
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
            return
        app = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if app is None:
            await self.default(scope, receive, send)
        elif not self.started:
            # Served without lifespan (uvicorn --lifespan off, a bare test server): the MCP session manager is
            # not running, so say why instead of failing inside the SDK.
            from buyer.mcp.auth import send_json

            await send_json(send, 503, {"detail": "MCP needs the ASGI lifespan: serve with uvicorn --lifespan on"})
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


def build_application() -> Dispatcher:
    """Django plus a fresh MCP server (its session manager runs once per application)."""
    django_app = get_asgi_application()
    # Imported after get_asgi_application(): the MCP tools use Django models.
    from buyer.mcp.server import build_mcp_endpoints

    mcp = build_mcp_endpoints()
    return Dispatcher(django_app, mcp.routes, mcp.lifespan)


application = build_application()
