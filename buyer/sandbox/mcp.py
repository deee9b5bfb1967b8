"""MCP surface of the sandbox seller, as the reference IAB seller agent (v2.4.2) serves it.

The reference seller mounts one ``FastMCP`` server twice: Streamable HTTP at ``/mcp/`` and legacy SSE at
``/mcp-sse/sse`` (messages at ``/mcp-sse/messages/``). Its buyer-facing tools return JSON *text*:

- ``list_products(limit=50)`` → ``{"products": [{product_id, name, inventory_type, base_cpm, floor_cpm,
  deal_types}], "count"}`` with prices as legacy floats (``15.0``; ``null`` for price on request) and deal
  types in the legacy words (``programmaticguaranteed``, ``preferreddeal``, ``privateauction``);
- ``get_pricing(product_id, buyer_tier, volume)`` → ``{product_id, base_cpm, final_cpm, tier_discount,
  volume_discount, rationale}`` (floats);
- ``request_quote(product_id, deal_type, impressions)`` and ``get_deal_performance(deal_id)`` proxy the REST
  endpoints and return their response body verbatim, so a quote comes back as the REST ``{"quote": ...}``
  object (Money, as ``POST /api/v1/quotes`` serves it) and performance as ``/performance`` serves it.

Every tool answers JSON text, which the SDK also wraps as ``structured_content = {"result": "<that text>"}``,
as the reference's FastMCP does. The sandbox mirrors those shapes and, unless ``dialect="reference"`` asks for
the reference's tools exactly, adds without changing any key the reference has:

- on ``list_products`` items, the fields a buyer needs to plan and that REST already serves
  (``description``, ``seller_organization_id``, ``ad_formats``, ``delivery_type``, ``pricing_model``,
  ``available_impressions``, ``minimum_impressions``), so an MCP catalog equals the REST one;
- on ``get_pricing``, ``currency`` and ``buyer_tier``;
- ``request_quote`` arguments ``flight_start``, ``flight_end`` (``YYYY-MM-DD``) and ``idempotency_key``
  (the reference has none of them, so its quotes always take the default flight and are never idempotent);
- a ``book_deal(quote_id, idempotency_key)`` tool, which the reference lacks (it books over REST only).

Every tool runs against the app's one :class:`SandboxState`, so a quote made here can be fetched or booked
over REST and the other way round; idempotency keys are scoped per API key exactly as on REST.

The caller's tier comes from its API key (``X-Api-Key`` or ``Authorization: Bearer``) on the HTTP request that
carried the MCP message, looked up in the app's key map as REST does; ``get_pricing``'s ``buyer_tier``
argument is accepted for signature compatibility but, as REST's body field, never raises the tier. Failures
are tool errors (``isError``) whose text is JSON: ``{"error": code, "message": ..., "status": <the REST
status>}``, so a client can act on the same codes REST gives (``quote_already_booked``...).

DNS-rebinding protection stays on: only the hosts in ``allowed_hosts`` (``127.0.0.1:*`` and ``localhost:*``
by default) may address the MCP endpoints; any other ``Host`` is answered 421, a foreign ``Origin`` 403.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp_types import CallToolResult, TextContent
from pydantic import ValidationError
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from buyer.logging_guard import no_basic_config
from buyer.sandbox.catalog import CatalogProduct
from buyer.sandbox.pricing import CURRENCY, legacy_float, price_product
from buyer.sandbox.schemas import DealCreate, NegotiationMessage, QuoteCreate, validation_errors
from buyer.sandbox.state import Caller, SandboxError, SandboxState, coded, unsupported

MCP_PATH = "/mcp/"
MCP_SSE_PREFIX = "/mcp-sse"
MCP_SSE_PATH = f"{MCP_SSE_PREFIX}/sse"
MCP_SSE_MESSAGES_PATH = f"{MCP_SSE_PREFIX}/messages/"
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = ("127.0.0.1:*", "localhost:*")
SERVER_NAME = "IAB Tech Lab Seller Agent"
SERVER_VERSION = "2.4.2"
DEFAULT_PRODUCT_LIMIT = 50
# ``sandbox``: the reference's tools plus what a buyer needs; ``reference``: exactly what the reference answers.
MCP_DIALECTS = ("sandbox", "reference")
# The reference seller's MCP spells deal types the legacy way (``mcp_tools_real.json``); REST says PG/PD/PA.
LEGACY_DEAL_TYPES = {"PG": "programmaticguaranteed", "PD": "preferreddeal", "PA": "privateauction"}

#: Who is calling, from the HTTP headers of the request that carried the MCP message.
CallerLookup = Callable[[Mapping[str, str]], Caller]

P = ParamSpec("P")


def _error_text(status: int, detail: Any) -> str:
    """A REST error ``detail`` → the JSON text of a tool error: ``{"error", "message", "status", ...}``."""
    if isinstance(detail, dict) and isinstance(detail.get("error"), str):
        body = {**detail, "status": status}
    else:
        code = "invalid_api_key" if status == 401 else f"http_{status}"
        body = {"error": code, "message": str(detail), "status": status}
    return json.dumps(body)


def _validation_text(exc: ValidationError) -> str:
    errors = validation_errors(exc, "arguments")
    message = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in errors)
    return json.dumps({"error": "validation_error", "message": message, "status": 422, "errors": errors})


def _tool_errors(fn: Callable[P, Awaitable[str]]) -> Callable[P, Awaitable[str]]:
    """Turn a tool's :class:`SandboxError` or argument :class:`ValidationError` into an ``isError`` result.

    Raising ``ToolError`` would work too, but the SDK prefixes its text with ``Error executing tool ...``;
    returning the result keeps the error text pure JSON. ``functools.wraps`` keeps the signature the SDK
    builds the tool's input schema from.
    """

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        try:
            return await fn(*args, **kwargs)
        except SandboxError as exc:
            text = _error_text(exc.status, exc.detail)
        except ValidationError as exc:
            text = _validation_text(exc)
        # The SDK passes a returned CallToolResult through as is; ``isError`` skips output validation.
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)  # type: ignore[return-value]

    return wrapper


def _reference_item(product: CatalogProduct) -> dict[str, Any]:
    """The reference's ``list_products`` item, key for key: legacy floats and legacy deal-type words."""
    return {
        "product_id": product.product_id,
        "name": product.name,
        "inventory_type": product.inventory_type,
        "base_cpm": legacy_float(product.base_cpm),
        "floor_cpm": legacy_float(product.floor_cpm),
        "deal_types": [LEGACY_DEAL_TYPES.get(d, d) for d in product.deal_types],
    }


def _product_item(product: CatalogProduct) -> dict[str, Any]:
    """The reference's ``list_products`` item, then the sandbox's additive fields."""
    return _reference_item(product) | {
        # Extensions: what REST's Product carries and a buyer plans with.
        "description": product.description,
        "seller_organization_id": product.publisher.org_id,
        "ad_formats": [product.inventory_type],
        "delivery_type": product.delivery_type,
        "pricing_model": "cpm",
        "available_impressions": product.available_impressions,
        "minimum_impressions": product.minimum_impressions,
    }


def _headers(ctx: Context) -> Mapping[str, str]:
    return ctx.headers or {}


def build_mcp_server(state: SandboxState, caller_for: CallerLookup, *, dialect: str = "sandbox") -> MCPServer:
    """A fresh MCP server whose tools read and write ``state``; ``caller_for`` maps headers to a caller.

    ``dialect="reference"`` serves the reference seller's buyer tools exactly: its ``list_products`` items,
    ``request_quote(product_id, deal_type, impressions)`` with no flight or idempotency key, no ``book_deal``,
    and ``get_deal_performance`` in its shape (``impressions_served``, ``avg_cpm_actual``, no spend)."""
    if dialect not in MCP_DIALECTS:
        raise ValueError(f"unknown MCP dialect {dialect!r}; choose one of {', '.join(MCP_DIALECTS)}")
    reference = dialect == "reference"
    cat = state.catalog
    with no_basic_config():
        server: MCPServer = MCPServer(
            SERVER_NAME,
            version=SERVER_VERSION,
            instructions=(
                f"Sandbox seller agent {cat.seller_name!r} ({cat.seller_id}). Buyer tools: list_products, "
                "get_pricing, request_quote, book_deal, get_deal_performance. Results are JSON text."
            ),
        )

    @server.tool()
    @_tool_errors
    async def list_products(limit: int | None = DEFAULT_PRODUCT_LIMIT) -> str:
        """List products in the catalog. These are the inventory items available for deals."""
        limit = limit or DEFAULT_PRODUCT_LIMIT
        if limit < 0:
            raise SandboxError(422, coded("validation_error", "limit must not be negative"))
        item = _reference_item if reference else _product_item
        products = [item(p) for p in cat.products[:limit]]
        return json.dumps({"products": products, "count": len(products)}, indent=2)

    @server.tool()
    @_tool_errors
    async def get_pricing(product_id: str, ctx: Context, buyer_tier: str = "public", volume: int = 0) -> str:
        """Calculate tiered pricing for a product based on buyer identity (the API key's tier)."""
        caller = caller_for(_headers(ctx))
        product = cat.product(product_id)
        if product is None:
            raise SandboxError(404, coded("product_not_found", f"Product '{product_id}' not found"))
        if product.base_cpm is None:
            raise unsupported(
                f"Product '{product.product_id}' is priced on request only; contact the seller.",
                "price_on_request",
                "product_id",
            )
        if volume < 0:
            raise SandboxError(422, coded("validation_error", "volume must not be negative"))
        decision = price_product(base=product.base_cpm, floor=product.floor_cpm, tier=caller.tier, impressions=volume)
        return json.dumps(
            {
                "product_id": product.product_id,
                "base_cpm": legacy_float(decision.base),
                "final_cpm": legacy_float(decision.final),
                "tier_discount": float(decision.tier_discount),
                "volume_discount": float(decision.volume_discount),
                "rationale": decision.rationale,
                "currency": CURRENCY,
                "buyer_tier": caller.tier,
            },
            indent=2,
        )

    if reference:

        @server.tool(name="request_quote")
        @_tool_errors
        async def request_quote_reference(
            product_id: str, ctx: Context, deal_type: str = "PD", impressions: int = 0
        ) -> str:
            """Request a non-binding price quote for a product (the default 30-day flight from today)."""
            caller = caller_for(_headers(ctx))
            body = QuoteCreate.model_validate(
                {
                    # The reference posts without a key of the caller's, so its quotes are never idempotent.
                    "idempotency_key": f"mcp-{uuid.uuid4().hex}",
                    "product_id": product_id,
                    "deal_type": deal_type,
                    "impressions": impressions or None,
                }
            )
            return json.dumps(state.create_quote(body, caller))

    else:

        @server.tool()
        @_tool_errors
        async def request_quote(
            product_id: str,
            ctx: Context,
            deal_type: str = "PD",
            impressions: int = 0,
            flight_start: str = "",
            flight_end: str = "",
            idempotency_key: str = "",
        ) -> str:
            """Request a non-binding price quote for a product.

            Extensions over the reference tool: ``flight_start``/``flight_end`` (YYYY-MM-DD, default: a 30-day flight
            from today) and ``idempotency_key`` (the same key and arguments return the same quote; without one every
            call makes a new quote).
            """
            caller = caller_for(_headers(ctx))
            body = QuoteCreate.model_validate(
                {
                    "idempotency_key": idempotency_key or f"mcp-{uuid.uuid4().hex}",
                    "product_id": product_id,
                    "deal_type": deal_type,
                    # The reference sends impressions only when non-zero; 0 means "none committed".
                    "impressions": impressions or None,
                    "flight_start": flight_start or None,
                    "flight_end": flight_end or None,
                }
            )
            return json.dumps(state.create_quote(body, caller))

    if not reference:

        @server.tool()
        @_tool_errors
        async def book_deal(quote_id: str, idempotency_key: str, ctx: Context) -> str:
            """Book an available quote as a deal (extension: the reference books over REST only).

            The same key and quote return the same deal; a second booking of a booked quote is
            ``quote_already_booked``.
            """
            caller = caller_for(_headers(ctx))
            body = DealCreate.model_validate({"idempotency_key": idempotency_key, "quote_id": quote_id})
            return json.dumps(state.book_deal(body, caller))

    if not reference:

        @server.tool()
        @_tool_errors
        async def negotiate(
            idempotency_key: str,
            action: str,
            quote_id: str,
            ctx: Context,
            buyer_price: dict | None = None,
            round_number: int | None = None,
            rationale: str = "",
        ) -> str:
            """Negotiate a quote's price (extension: the reference negotiates over REST only). Same body and
            answer as ``POST /api/v1/negotiations/messages``; continue by ``quote_id``."""
            caller = caller_for(_headers(ctx))
            body = NegotiationMessage.model_validate(
                {
                    "idempotency_key": idempotency_key,
                    "action": action,
                    "quote_id": quote_id,
                    "buyer_price": buyer_price,
                    "round_number": round_number,
                    "rationale": rationale,
                }
            )
            return json.dumps(state.negotiate(body, caller))

    @server.tool()
    @_tool_errors
    async def get_deal_performance(deal_id: str) -> str:
        """Get delivery and performance metrics for a deal."""
        if reference:
            return json.dumps(state.deal_performance_reference(deal_id), indent=2)
        return json.dumps(state.deal_performance(deal_id))

    return server


class _CheckedSseConnect:
    """Answer a forbidden SSE connect (421/403) here, before the SDK's SSE app.

    The SDK's app sends the same answer but then raises, which the server logs as a crash; message POSTs are
    checked by the SDK without raising, so they pass straight through.
    """

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings) -> None:
        self.app = app
        self.security = TransportSecurityMiddleware(security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            refusal = await self.security.validate_request(Request(scope, receive), is_post=False)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class SandboxMcp:
    """One app's MCP server with its routes and the lifespan that runs its session manager."""

    server: MCPServer
    routes: list[BaseRoute]

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run the Streamable HTTP session manager (once per app: the SDK forbids a second run)."""
        async with self.server.session_manager.run():
            yield


def build_sandbox_mcp(
    state: SandboxState,
    caller_for: CallerLookup,
    *,
    allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
    dialect: str = "sandbox",
) -> SandboxMcp:
    """The MCP server for ``state`` and its routes: ``/mcp/`` (and ``/mcp``), ``/mcp-sse/sse``, its messages."""
    if isinstance(allowed_hosts, str):
        allowed_hosts = (allowed_hosts,)
    server = build_mcp_server(state, caller_for, dialect=dialect)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(allowed_hosts),
        allowed_origins=[f"http://{host}" for host in allowed_hosts] + [f"https://{host}" for host in allowed_hosts],
    )
    # Called for its side effect: it creates the server's session manager with these settings. The routes
    # below point at that manager directly, so ``/mcp`` and ``/mcp/`` both answer without a redirect.
    server.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=security)
    streamable = StreamableHTTPASGIApp(server.session_manager)
    routes: list[BaseRoute] = [
        Route(MCP_PATH, endpoint=streamable),
        Route(MCP_PATH.rstrip("/"), endpoint=streamable),
        # The SDK's SSE app under its own mount, as the reference mounts it: the endpoint event it sends
        # names the messages path with the mount prefix.
        Mount(
            MCP_SSE_PREFIX,
            app=_CheckedSseConnect(
                server.sse_app(
                    sse_path=MCP_SSE_PATH.removeprefix(MCP_SSE_PREFIX),
                    message_path=MCP_SSE_MESSAGES_PATH.removeprefix(MCP_SSE_PREFIX),
                    transport_security=security,
                ),
                security,
            ),
        ),
    ]
    return SandboxMcp(server=server, routes=routes)


__all__ = [
    "DEFAULT_ALLOWED_HOSTS",
    "MCP_DIALECTS",
    "MCP_PATH",
    "MCP_SSE_MESSAGES_PATH",
    "MCP_SSE_PATH",
    "SandboxMcp",
    "build_mcp_server",
    "build_sandbox_mcp",
]
