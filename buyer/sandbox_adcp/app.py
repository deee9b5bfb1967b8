"""The AdCP sandbox seller as an ASGI app: the library's MCP server over Streamable HTTP, plus control routes.

``create_app`` builds the handler on a fresh :class:`SandboxAdcpState` and hands it to
``adcp.server.create_mcp_server``, which registers the AdCP tools, validates requests and responses against the
bundled schemas, negotiates the buyer's AdCP version and serves Streamable HTTP at ``/mcp``. Beside it, routes
no real seller has (``unauthenticated_routes`` of the library, so they bypass the MCP session):

=====================================  ===============================================================
``GET /health``                        ``{"status": "healthy"}``
``GET /.well-known/agent.json``        its name, and ``adcp`` among its protocols (off: ``agent_card=False``)
``GET /_sandbox/tasks``                every task with its status, for demos
``POST /_sandbox/tasks/{id}/approve``  the seller's trafficker approves an order in ``input-required``
``POST /_sandbox/tasks/{id}/reject``   the seller turns an order down (``{"reason": "..."}`` optional)
``POST /_sandbox/webhooks/send``       send the task webhooks due now (``{"sent": n}``)
=====================================  ===============================================================

The sandbox authenticates nobody. A credential, when sent (``x-adcp-auth``, ``Authorization: Bearer`` or
``X-Api-Key``), only names the caller's scope: media buys, tasks and idempotency keys are private to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from json import JSONDecodeError
from typing import Any

import anyio
from adcp.server import IdempotencyStore, MemoryBackend, RequestMetadata, ToolContext, create_mcp_server
from adcp.server.signed_requests import RequestSignatureVerification, SignedRequestVerificationMiddleware
from adcp.signing import StaticSignerKeys
from adcp.validation.client_hooks import SERVER_DEFAULT_VALIDATION, ValidationHookConfig
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from buyer.sandbox_adcp import faults
from buyer.sandbox_adcp.catalog import CATALOG_NAMES, build_catalog
from buyer.sandbox_adcp.handler import (
    ANONYMOUS,
    OWNER_KEY,
    SIGNED_OPERATIONS,
    SandboxAdcpHandler,
)
from buyer.sandbox_adcp.state import DEFAULT_INPUT_MESSAGE, SandboxAdcpError, SandboxAdcpState, TaskRecord
from buyer.sandbox_adcp.webhooks import WebhookSender

MCP_PATH = "/mcp"
#: AdCP releases served. 3.0 is left out: its named-format (pre-canonical) shapes do not survive the library's
#: down-conversion of these products, and the reference sales agent speaks 3.1 and 3.2.
SUPPORTED_VERSIONS: tuple[str, ...] = ("3.1", "3.2")
#: How long an idempotency key replays, on the sandbox clock: the spec's recommended floor, 24 hours.
REPLAY_TTL_SECONDS = 86_400
_ERROR_STATUS = {"REFERENCE_NOT_FOUND": 404, "PRODUCT_NOT_FOUND": 404, "INVALID_STATE": 409}


def caller_identity(headers: Mapping[str, str]) -> str:
    """The caller's scope from its credential, hashed so no credential is ever kept; ``anonymous`` without.

    ``headers`` must look names up case-insensitively (Starlette's ``Headers`` does).
    """
    token = headers.get("x-adcp-auth") or headers.get("x-api-key")
    if not token:
        scheme, _, value = (headers.get("authorization") or "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else ""
    if not token:
        return ANONYMOUS
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:16]


def create_app(
    *,
    catalog: str = "default",
    approval_delay: float = 0.0,
    input_required: bool = False,
    stuck: bool = False,
    malformed: bool = False,
    latency_ms: int = 0,
    clock: Callable[[], datetime] | None = None,
    input_message: str = DEFAULT_INPUT_MESSAGE,
    allowed_hosts: Sequence[str] = (),
    agent_card: bool = True,
    id_prefix: str = "",
    webhook_interval: float = 0.0,
    signed_by: Mapping[str, Mapping[str, Any]] | None = None,
    compact: bool = False,
    legacy_formats: bool = False,
) -> Starlette:
    """Build one AdCP sandbox seller with its own catalog and empty state.

    ``approval_delay`` is in seconds on ``clock`` (default: the real UTC time): 0 books ``create_media_buy``
    synchronously, more answers ``submitted`` with a ``task_id`` that ``get_task_status`` reports
    ``completed`` (with the media buy as its ``result``) once the clock has passed the delay.
    ``input_required`` holds every task in ``input-required`` with ``input_message`` until
    ``POST /_sandbox/tasks/{id}/approve``; ``stuck`` keeps every task ``working``; ``malformed`` answers
    payloads that fail the AdCP schemas; ``latency_ms`` delays every task. ``allowed_hosts`` are ``Host``
    values MCP accepts besides 127.0.0.1/localhost (DNS-rebinding protection; Starlette's ``TestClient``
    sends ``testserver``). ``agent_card`` serves ``/.well-known/agent.json``; ``id_prefix`` goes into every
    media buy and task id (the CLI gives each run its own, so a restart never reissues a recorded id).
    Tasks whose order carried a ``push_notification_config`` are notified of their status changes, signed
    (``app.state.webhooks``, a :class:`~buyer.sandbox_adcp.webhooks.WebhookSender`): every ``webhook_interval``
    seconds from a daemon thread when positive, and on ``POST /_sandbox/webhooks/send``. ``signed_by`` (agent URL
    → its JWKS) makes the seller demand RFC 9421 signed ``create_media_buy`` and ``update_media_buy`` calls by one
    of those keys (advertised under ``request_signing``; an unsigned or wrongly signed call is a 401).
    ``compact`` adds AdCP 3.2's compact lifecycle (``list_products``, ``buy_products``, advertised under
    ``media_buy.lifecycle_tools``; signed too under ``signed_by``); ``POST /_sandbox/products/{id}/reprice``
    then publishes a new price (new feed version: purchases naming the old one are refused).
    ``legacy_formats`` answers ``get_products`` as an AdCP 3.0/3.1 seller with its own creative agent does: each
    product names its formats only by id (``format_ids``), defined by ``list_creative_formats``.

    The state is reachable as ``app.state.sandbox`` (tests may replace its ``clock`` or change the knobs
    between orders). MCP needs the ASGI lifespan (uvicorn's default). Raises ``ValueError`` on an unknown
    catalog or a negative delay or latency.
    """
    if catalog not in CATALOG_NAMES:
        raise ValueError(f"unknown catalog {catalog!r}; choose one of {', '.join(CATALOG_NAMES)}")
    if approval_delay < 0:
        raise ValueError("approval_delay must not be negative")
    if latency_ms < 0:
        raise ValueError("latency_ms must not be negative")
    state = SandboxAdcpState(
        build_catalog(catalog),
        clock=clock,
        approval_delay=approval_delay,
        input_required=input_required,
        stuck=stuck,
        input_message=input_message,
        id_prefix=id_prefix,
    )

    def epoch() -> float:
        return state.now().timestamp()

    # Replays expire on the sandbox clock too, so a test that moves time a day sees keys expire.
    idempotency = IdempotencyStore(MemoryBackend(clock=epoch), ttl_seconds=REPLAY_TTL_SECONDS, clock=epoch)
    signed = (*SIGNED_OPERATIONS, "buy_products") if compact else SIGNED_OPERATIONS
    handler = SandboxAdcpHandler(
        state, idempotency, request_signing=signed if signed_by else (), compact=compact, legacy_formats=legacy_formats
    )
    sender = WebhookSender(state)

    def context_factory(meta: RequestMetadata) -> ToolContext:
        request = meta.request_context
        headers = request.headers if isinstance(request, Request) else {}
        who = caller_identity(headers)
        # The owner of what the caller books stays its credential's even when a signature names the caller
        # (a verified signer replaces caller_identity): signed orders and unsigned read-backs are one account's.
        return ToolContext(caller_identity=who, metadata={OWNER_KEY: who})

    validation: ValidationHookConfig = SERVER_DEFAULT_VALIDATION
    if malformed:
        # The library refuses to send a payload that fails its schemas; this seller must send them anyway.
        validation = ValidationHookConfig(requests="strict", responses="off")
    mcp = create_mcp_server(
        handler,
        name=f"adcp-sandbox-{catalog}",
        host="127.0.0.1",
        instructions=f"{state.catalog.seller_name}: a sandbox AdCP sales agent with mock inventory.",
        context_factory=context_factory,
        middleware=[faults.latency(latency_ms)] if latency_ms else None,
        validation=validation,
        response_enhancer=faults.malform if malformed else None,
        allowed_hosts=list(allowed_hosts) or None,
        unauthenticated_routes=_control_routes(state, sender),
        supported_versions=SUPPORTED_VERSIONS,
    )
    app: Starlette = mcp.streamable_http_app(streamable_http_path=MCP_PATH)
    if agent_card:
        app.router.routes.insert(0, _agent_card_route(state))
    if signed_by:
        verification = RequestSignatureVerification(
            signer_keys=StaticSignerKeys(signed_by), required_for=frozenset(signed)
        )
        app.add_middleware(SignedRequestVerificationMiddleware, config=verification, transport="mcp")
    app.state.sandbox = state
    app.state.webhooks = sender
    if webhook_interval > 0:
        sender.start(webhook_interval)
    return app


def _agent_card_route(state: SandboxAdcpState) -> Route:
    """``/.well-known/agent.json`` as buyers read it: the seller's name, and AdCP over MCP among its protocols.
    Added to the built app: the library keeps ``/.well-known`` paths off its operational routes."""

    async def card(request: Request) -> Response:
        return JSONResponse(
            {
                "name": state.catalog.seller_name,
                "description": "A sandbox AdCP sales agent with mock inventory (media-buy tasks over MCP at /mcp).",
                "capabilities": {"protocols": [{"name": "adcp", "transport": "mcp", "path": MCP_PATH}]},
            }
        )

    return Route("/.well-known/agent.json", card, methods=["GET"])


def _control_routes(state: SandboxAdcpState, sender: WebhookSender) -> list[Route]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def list_tasks(request: Request) -> Response:
        return JSONResponse({"tasks": [_task_wire(t) for t in state.all_tasks()]})

    async def approve(request: Request) -> Response:
        try:
            task = state.approve(request.path_params["task_id"])
        except SandboxAdcpError as exc:
            return _control_error(exc)
        return JSONResponse(_task_wire(task))

    async def reject(request: Request) -> Response:
        reason = "declined by the seller"
        if await request.body():
            try:
                body = await request.json()
            except JSONDecodeError:
                return JSONResponse({"detail": "body must be JSON"}, status_code=400)
            if isinstance(body, dict) and isinstance(body.get("reason"), str) and body["reason"].strip():
                reason = body["reason"].strip()
        try:
            task = state.reject(request.path_params["task_id"], reason)
        except SandboxAdcpError as exc:
            return _control_error(exc)
        return JSONResponse(_task_wire(task))

    async def reprice(request: Request) -> Response:
        try:
            body = await request.json()
        except JSONDecodeError:
            return JSONResponse({"detail": "body must be JSON"}, status_code=400)
        prices: dict[str, Decimal | None] = {}
        for name in ("fixed_price", "floor_price"):
            value = body.get(name) if isinstance(body, dict) else None
            if value is None:
                prices[name] = None
                continue
            try:
                price = Decimal(str(value))
            except InvalidOperation:
                return JSONResponse({"detail": f"{name} must be a number"}, status_code=400)
            if not (price.is_finite() and price > 0):
                return JSONResponse({"detail": f"{name} must be above zero"}, status_code=400)
            prices[name] = price
        option = body.get("pricing_option_id") if isinstance(body, dict) else None
        if not isinstance(option, str) or (prices["fixed_price"] is None) == (prices["floor_price"] is None):
            detail = "send pricing_option_id and one of fixed_price or floor_price"
            return JSONResponse({"detail": detail}, status_code=400)
        try:
            state.reprice(
                request.path_params["product_id"], option, fixed=prices["fixed_price"], floor=prices["floor_price"]
            )
        except SandboxAdcpError as exc:
            return _control_error(exc)
        feed, pricing = state.feed_versions()
        return JSONResponse({"feed_version": feed, "pricing_version": pricing})

    async def send_webhooks(request: Request) -> Response:
        sent = await anyio.to_thread.run_sync(sender.send_due)
        return JSONResponse({"sent": sent})

    return [
        Route("/health", health, methods=["GET"]),
        Route("/_sandbox/webhooks/send", send_webhooks, methods=["POST"]),
        Route("/_sandbox/tasks", list_tasks, methods=["GET"]),
        Route("/_sandbox/products/{product_id}/reprice", reprice, methods=["POST"]),
        Route("/_sandbox/tasks/{task_id}/approve", approve, methods=["POST"]),
        Route("/_sandbox/tasks/{task_id}/reject", reject, methods=["POST"]),
    ]


def _control_error(exc: SandboxAdcpError) -> Response:
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=_ERROR_STATUS.get(exc.code, 400))


def _task_wire(task: TaskRecord) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "task_type": task.task_type,
        "status": task.status,
        "message": task.message,
        "created_at": task.created_at.isoformat(),
        "media_buy_id": task.media_buy_id,
    }


__all__ = ["MCP_PATH", "caller_identity", "create_app"]
