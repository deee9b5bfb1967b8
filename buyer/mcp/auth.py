"""Who may reach the MCP endpoint, and how tools learn who is calling.

The MCP paths are routed before Django (see ``buyer.asgi``), so Django's middleware never sees them: the
:class:`McpGate` in front of each MCP transport does what the REST API's auth does, in this order —

1. DNS-rebinding protection: a ``Host`` not in ``ALLOWED_HOSTS`` (any port) is answered 421, a foreign
   ``Origin`` 403 (the SDK's own check, run here so it also covers the SSE connect);
2. the API key, from ``X-API-Key`` or ``Authorization: Bearer``: none or an unknown one is answered 401
   ``{"detail": "Invalid or missing API key"}`` before the SDK reads the body (without any key only an open
   development setup gets through, exactly as on REST);
3. the key's rate limit (``buyer.ratelimit``, bucket ``mcp:<name>:<key id>``): 429 with ``Retry-After``.

The caller's :class:`Principal` then travels in the ASGI scope of the HTTP request. The SDK hands tools that
request (as ``ctx.request_context.request``) for Streamable HTTP and SSE alike — for SSE it is the message
POST, not the long-lived stream — so :func:`principal_of` reads the principal of the very request that
carried the tool call. In-process callers (tests, an embedding) have no HTTP request: they name their
principal with :func:`acting_as`. Without either, tools refuse.

The principal is also set as the scope's ``user`` in the SDK's form, so an SSE session accepts messages only
from the key that opened it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from buyer.apikeys.services import Principal, api_key_authenticate, api_key_presented
from buyer.ratelimit import RateLimited, rate_limit_check
from buyer.unavailable import RETRY_AFTER_SECONDS, UNAVAILABLE, unavailable_message, unavailable_service

logger = logging.getLogger(__name__)

PRINCIPAL_SCOPE_KEY = "buyer.principal"
UNAUTHENTICATED = "Invalid or missing API key"

_in_process_principal: ContextVar[Principal | None] = ContextVar("buyer_mcp_principal", default=None)


@contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Call tools in-process (no HTTP request) as ``principal``."""
    token = _in_process_principal.set(principal)
    try:
        yield
    finally:
        _in_process_principal.reset(token)


def principal_of(ctx: Context) -> Principal | None:
    """The caller of the tool call ``ctx`` belongs to; None when nobody authenticated it."""
    try:
        request = ctx.request_context.request
    except ValueError:  # called outside any MCP request
        request = None
    scope = getattr(request, "scope", None)
    if scope is not None:
        # An HTTP request that did not come through the gate carries no principal: refuse, never fall back.
        return scope.get(PRINCIPAL_SCOPE_KEY)
    return _in_process_principal.get()


def transport_security(allowed_hosts: Iterable[str], allowed_origins: Iterable[str]) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding settings from Django's ``ALLOWED_HOSTS`` and the MCP origins.

    Each host is accepted on any port; pages served from an allowed host count as allowed origins too. Django's
    patterns (``*``, ``.example.com``) have no SDK equivalent and are skipped: list the exact names.
    """
    hosts = [h for h in dict.fromkeys(allowed_hosts) if h and h != "*" and not h.startswith(".")]
    origins = list(dict.fromkeys(allowed_origins))
    for host in hosts:
        origins += [f"{scheme}://{host}{port}" for scheme in ("http", "https") for port in ("", ":*")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[entry for host in hosts for entry in (host, f"{host}:*")],
        allowed_origins=origins,
    )


@dataclass(frozen=True)
class _Verdict:
    principal: Principal | None
    retry_after: int = 0


def _authenticate(presented: str | None) -> _Verdict:
    close_old_connections()
    try:
        principal = api_key_authenticate(presented)
        if principal is None:
            return _Verdict(None)
        allowed, retry_after = rate_limit_check(f"mcp:{principal.name}:{principal.api_key_id}")
        return _Verdict(principal, 0 if allowed else max(1, retry_after))
    finally:
        close_old_connections()


class McpGate:
    """ASGI middleware for an MCP transport app: host/origin check, API key, rate limit, then the app."""

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings) -> None:
        self.app = app
        self.security = TransportSecurityMiddleware(security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await send_json(send, 404, {"detail": "Not found"})
            return
        refusal = await self.security.validate_request(Request(scope), is_post=False)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            verdict = await sync_to_async(_authenticate, thread_sensitive=False)(
                api_key_presented(Headers(scope=scope))
            )
        except UNAVAILABLE as exc:
            # The key lookup or the rate-limit counter could not be reached: the API's 503, not a 500.
            service = unavailable_service(exc)
            if service is None:
                raise
            logger.warning("%s unavailable for %s: %s", service, scope["path"], type(exc).__name__)
            retry = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
            await send_json(send, 503, {"detail": unavailable_message(service)}, retry)
            return
        if verdict.principal is None:
            await send_json(send, 401, {"detail": UNAUTHENTICATED})
            return
        if verdict.retry_after:
            detail = str(RateLimited(verdict.retry_after))
            await send_json(send, 429, {"detail": detail}, [(b"retry-after", str(verdict.retry_after).encode())])
            return
        principal = verdict.principal
        identity = f"{principal.name}:{principal.api_key_id}"
        user = AuthenticatedUser(AccessToken(token="", client_id=identity, scopes=sorted(principal.scopes)))
        await self.app({**scope, PRINCIPAL_SCOPE_KEY: principal, "user": user}, receive, send)


async def send_json(send: Send, status: int, body: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
