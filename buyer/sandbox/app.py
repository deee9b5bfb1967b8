"""HTTP routes of the sandbox seller: the reference IAB seller agent's REST subset, as a Starlette app.

Shapes follow the reference seller responses captured in ``tests/fixtures/seller-samples``. Three error envelopes occur,
as on the real seller: ``{"detail": {"error", "message"}}``, ``{"detail": "text"}`` and pydantic's 422
``{"detail": [...]}``.

Fault injection (``latency_ms``, ``failure_rate``, ``garbage``) wraps every route except ``/health``, so a
harness can always tell a live-but-faulty seller from a dead one. That includes the MCP endpoints, which
``buyer.sandbox.mcp`` mounts on the same state (``/mcp/``, ``/mcp-sse/sse``).
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from buyer.sandbox.catalog import CATALOG_NAMES, Catalog, Package, build_catalog
from buyer.sandbox.delivery import DEFAULT_PROFILE, parse_profile
from buyer.sandbox.mcp import DEFAULT_ALLOWED_HOSTS, MCP_DIALECTS, build_sandbox_mcp
from buyer.sandbox.pricing import TIER_DISCOUNTS, legacy_float, price_product, round_cents
from buyer.sandbox.schemas import (
    DealCreate,
    DeliveryProfileRequest,
    MediaKitPackagesQuery,
    MediaKitSearchRequest,
    NegotiationMessage,
    PerformanceQuery,
    PricingRequest,
    ProductsQuery,
    QuoteCreate,
    RequestValidationFailed,
    parse_body,
    parse_query,
)
from buyer.sandbox.state import Caller, SandboxError, SandboxState, coded, unsupported

API_KEY_TIERS: tuple[str, ...] = ("seat", "agency", "advertiser")
MAX_BODY_BYTES = 1_048_576
# The public tier sees a ±20 % price range instead of exact prices, like the reference seller's media kit.
PUBLIC_PRICE_VARIANCE = Decimal("0.2")
GARBAGE_BODY = b"<html><body><h1>502 Bad Gateway</h1><p>sandbox garbage: this body is not JSON</p></body></html>"
GARBAGE_PREFIXES: tuple[str, ...] = ("/products", "/api/v1/quotes")

Handler = Callable[[Request], Awaitable[Response]]


# --------------------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------------------


class FaultInjection:
    """Pure ASGI middleware: delay, fail or garble responses, deterministically.

    Whether a request fails comes from ``random.Random(seed)`` drawn once per non-health request, so the
    same seed and request order always fail the same requests.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        latency_ms: int = 0,
        failure_rate: float = 0.0,
        garbage: bool = False,
        seed: int = 0,
    ) -> None:
        self.app = app
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        self.garbage = garbage
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def _should_fail(self) -> bool:
        if self.failure_rate <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < self.failure_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        if self.latency_ms > 0:
            await anyio.sleep(self.latency_ms / 1000)
        response: Response | None = None
        if self._should_fail():
            response = JSONResponse(
                {"detail": "Service temporarily unavailable"}, status_code=503, headers={"Retry-After": "1"}
            )
        elif self.garbage and scope["path"].startswith(GARBAGE_PREFIXES):
            # Claims JSON but is not: the buyer must not trust the content type.
            response = Response(GARBAGE_BODY, status_code=200, media_type="application/json")
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _api_key(headers: Mapping[str, str]) -> str | None:
    """``X-Api-Key`` first, then ``Authorization: Bearer <key>``, as the reference seller reads them.

    ``headers`` must look names up case-insensitively (Starlette's ``Headers`` does).
    """
    key = headers.get("x-api-key")
    if key:
        return key
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def _caller(request: Request, api_keys: Mapping[str, str]) -> Caller:
    return _caller_from_headers(request.headers, api_keys)


def _caller_from_headers(headers: Mapping[str, str], api_keys: Mapping[str, str]) -> Caller:
    """The caller's tier comes only from a valid key; an unknown key is 401, no key is ``public``.

    REST and MCP share this, so one key means one tier and one idempotency scope on both.
    """
    key = _api_key(headers)
    if key is None:
        return Caller()
    tier = api_keys.get(key)
    if tier is None:
        raise SandboxError(401, "Invalid API key", headers={"WWW-Authenticate": "Bearer"})
    # Idempotency keys are scoped per caller; the scope names the key by hash, never in clear.
    return Caller(tier=tier, scope="key:" + hashlib.sha256(key.encode()).hexdigest()[:16])


def _price_range(base: Decimal) -> str:
    low = base * (1 - PUBLIC_PRICE_VARIANCE)
    high = base * (1 + PUBLIC_PRICE_VARIANCE)
    return f"${low:.0f}-${high:.0f} CPM"


def _audience_summary() -> dict[str, Any]:
    return {
        "standard_taxonomy_version": "1.1",
        "contextual_taxonomy_version": "3.1",
        "supports_standard": False,
        "supports_contextual": False,
        "supports_agentic": False,
        "agentic_spec_version": None,
    }


def _package_public(package: Package) -> dict[str, Any]:
    """PublicPackageView: price ranges only, no placements (reference ``media_kit`` models)."""
    return {
        "package_id": package.package_id,
        "name": package.name,
        "description": package.description,
        "ad_formats": package.ad_formats,
        "device_types": package.device_types,
        "cat": list(package.cat),
        "cattax": 2,
        "audience_capabilities": _audience_summary(),
        "geo_targets": ["US"],
        "tags": list(package.tags),
        "price_range": _price_range(package.base_price),
        "rate_type": "cpm",
        "is_featured": package.is_featured,
    }


def _package_authenticated(package: Package, tier: str) -> dict[str, Any]:
    """AuthenticatedPackageView: adds the tier's exact price, the floor and the placements."""
    exact = round_cents(package.base_price * (1 - TIER_DISCOUNTS[tier]))
    view = _package_public(package)
    view.update(
        {
            "price_range": f"${exact:.0f} CPM",
            "audience_capabilities": {
                "standard_segment_ids": [],
                "standard_taxonomy_version": "1.1",
                "contextual_segment_ids": [],
                "contextual_taxonomy_version": "3.1",
                "agentic_capabilities": None,
            },
            "exact_price": float(exact),
            "floor_price": float(package.floor_price),
            "currency": "USD",
            "placements": [
                {
                    "product_id": p.product_id,
                    "product_name": p.name,
                    "ad_formats": package.ad_formats,
                    "device_types": package.device_types,
                    "weight": 1.0,
                }
                for p in package.products
            ],
            "negotiation_enabled": True,
            "volume_discounts_available": True,
        }
    )
    return view


def _search_score(package: Package, tokens: set[str]) -> float:
    """Keyword score as the reference media kit computes it: one point per token found, featured x 1.5."""
    corpus = " ".join(
        [
            package.name.lower(),
            package.description.lower(),
            " ".join(t.lower() for t in package.tags),
            " ".join(c.lower() for c in package.cat),
            " ".join(package.ad_formats),
            " ".join(p.name.lower() for p in package.products),
        ]
    )
    score = float(sum(1 for token in tokens if token in corpus))
    return score * 1.5 if package.is_featured and score > 0 else score


def _agent_card(catalog: Catalog, base_url: str) -> dict[str, Any]:
    """Shape of agent_card.json, filled with this seller's name, address and inventory."""
    wire_deal_types = {"PG": "pg", "PD": "preferred_deal", "PA": "private_auction"}
    deal_types = {wire_deal_types[d] for d in catalog.deal_types}
    if deal_types & {"preferred_deal", "private_auction"}:
        deal_types.add("pmp")
    return {
        "name": catalog.seller_name,
        "description": (
            "Sandbox seller agent speaking the IAB seller agent REST protocol, for offline buyer runs and "
            "tests. Supports product discovery, tiered pricing, multi-round negotiation and deal execution."
        ),
        "url": base_url,
        "version": "2.4.2",
        "provider": {
            "name": catalog.seller_name,
            "url": base_url,
            "description": f"seller_id {catalog.seller_id}",
        },
        "capabilities": {"protocols": ["opendirect21", "mcp"], "streaming": False, "push_notifications": False},
        "skills": [
            {
                "id": "discovery",
                "name": "Inventory Discovery",
                "description": "Search and browse available inventory, media kits, and packages",
                "tags": ["inventory", "search", "media-kit"],
            },
            {
                "id": "pricing",
                "name": "Tiered Pricing",
                "description": "Get pricing based on buyer identity with volume discounts",
                "tags": ["pricing", "cpm", "negotiation"],
            },
            {
                "id": "negotiation",
                "name": "Multi-Round Negotiation",
                "description": "Engage in automated price negotiation with strategy-based responses",
                "tags": ["negotiation", "deals"],
            },
            {
                "id": "deals",
                "name": "Deal Execution",
                "description": "Generate OpenRTB-compatible deal IDs for DSP activation",
                "tags": ["deals", "openrtb", "execution"],
            },
        ],
        "authentication": {"schemes": ["api_key", "bearer"], "credentials_url": None},
        "inventory_types": catalog.inventory_types,
        "supported_deal_types": sorted(deal_types),
        "contact": None,
        "tos_url": None,
        "audience_capabilities": {
            "schema_version": "1",
            "standard_taxonomy_versions": ["1.1"],
            "contextual_taxonomy_versions": ["3.1"],
            "agentic": {"supported": False},
            "supports_constraints": False,
            "supports_extensions": False,
            "supports_exclusions": False,
            "max_refs_per_role": {"primary": 1, "constraints": 0, "extensions": 0, "exclusions": 0},
            # The reference seller's taxonomy lock hashes: the sandbox pins the same taxonomy versions.
            "taxonomy_lock_hashes": {
                "audience": "sha256:0216547402f3dc028f5ec1bb78c648eed68a81ea3b3b94862e6f6caa9db3ad3b",
                "content": "sha256:7212cdc496ba347a03e703b1932bdcdd4fd29089b058f4edeb4d3da1f1222ea7",
            },
        },
    }


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


def create_app(
    *,
    catalog: str = "default",
    seller_id: str | None = None,
    latency_ms: int = 0,
    failure_rate: float = 0.0,
    garbage: bool = False,
    api_keys: dict[str, str] | None = None,
    seed: int = 0,
    mcp_allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
    delivery_profiles: Mapping[str, str] | None = None,
    mcp_dialect: str = "sandbox",
    overbook_pct: float = 0.0,
    overprice_pct: float = 0.0,
) -> Starlette:
    """Build one sandbox seller with its own catalog and empty state.

    ``api_keys`` maps an API key to the tier it grants (``seat``, ``agency`` or ``advertiser``). The state
    is reachable as ``app.state.sandbox`` (a :class:`SandboxState`; tests may replace its ``clock``).
    Raises ``ValueError`` on an unknown catalog, tier or an out-of-range fault setting.

    The app also serves MCP on the same state (see ``buyer.sandbox.mcp``): Streamable HTTP at ``/mcp/``
    (and ``/mcp``), legacy SSE at ``/mcp-sse/sse``. MCP needs the ASGI lifespan, which runs its session
    manager once per app (uvicorn's default ``lifespan="auto"`` or ``"on"``); REST works without it.
    ``mcp_allowed_hosts`` are the ``Host`` values MCP accepts (``host:port`` or ``host:*``), others get 421
    (DNS-rebinding protection): add yours when serving beyond 127.0.0.1/localhost (Starlette's
    ``TestClient`` sends ``testserver``).

    ``delivery_profiles`` maps ``"*"`` (every deal) or a product id to a delivery profile (``under:0.7``…, see
    ``buyer.sandbox.delivery``); ``seed`` also seeds the default ``scatter`` profile. ``mcp_dialect``
    ``"reference"`` makes the MCP tools answer exactly as the reference seller's do (legacy deal-type words, no
    planning fields, no booking tool, its performance shape); ``"sandbox"`` (default) adds what a buyer needs.
    The ``/_sandbox/delivery`` routes change profiles while the seller runs. ``overbook_pct`` and
    ``overprice_pct`` make it misbehave as real sellers have: deals book that many percent more impressions,
    or at a CPM that many percent higher, than the quote they book.
    """
    if catalog not in CATALOG_NAMES:
        raise ValueError(f"unknown catalog {catalog!r}; choose one of {', '.join(CATALOG_NAMES)}")
    if not 0.0 <= failure_rate <= 1.0:
        raise ValueError("failure_rate must be within [0, 1]")
    if latency_ms < 0:
        raise ValueError("latency_ms must not be negative")
    keys = dict(api_keys or {})
    for tier in keys.values():
        if tier not in API_KEY_TIERS:
            raise ValueError(f"unknown tier {tier!r}; an API key grants one of {', '.join(API_KEY_TIERS)}")

    if mcp_dialect not in MCP_DIALECTS:
        raise ValueError(f"unknown MCP dialect {mcp_dialect!r}; choose one of {', '.join(MCP_DIALECTS)}")
    profiles = {target: parse_profile(text) for target, text in (delivery_profiles or {}).items()}
    state = SandboxState(
        build_catalog(catalog, seller_id), delivery_default=profiles.pop("*", DEFAULT_PROFILE), delivery_seed=seed
    )
    if not (0 <= overbook_pct <= 1000 and 0 <= overprice_pct <= 1000):
        raise ValueError("overbook_pct and overprice_pct must be within [0, 1000]")
    state.overbook_pct, state.overprice_pct = Decimal(str(overbook_pct)), Decimal(str(overprice_pct))
    cat = state.catalog
    for product, profile in profiles.items():
        if cat.product(product) is None:
            raise ValueError(f"delivery profile for unknown product {product!r}")
        state.product_profiles[product] = profile
    sandbox_mcp = build_sandbox_mcp(
        state,
        lambda headers: _caller_from_headers(headers, keys),
        allowed_hosts=mcp_allowed_hosts,
        dialect=mcp_dialect,
    )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def agent_card(request: Request) -> Response:
        return JSONResponse(_agent_card(cat, str(request.base_url).rstrip("/")))

    async def list_products(request: Request) -> Response:
        query = parse_query(dict(request.query_params), ProductsQuery)
        page = cat.products[query.offset : query.offset + query.limit]
        return JSONResponse(
            {
                "products": [p.to_wire() for p in page],
                "total_count": len(cat.products),
                "limit": query.limit,
                "offset": query.offset,
            }
        )

    async def get_product(request: Request) -> Response:
        product = cat.product(request.path_params["product_id"])
        if product is None:
            raise SandboxError(404, "Product not found")
        return JSONResponse(product.to_wire())

    async def pricing(request: Request) -> Response:
        """Legacy float preview (pricing.json); the tier comes from the API key, never the body."""
        caller = _caller(request, keys)
        body = parse_body(await request.body(), PricingRequest)
        product = cat.product(body.product_id)
        if product is None:
            raise SandboxError(404, "Product not found")
        if product.base_cpm is None:
            raise unsupported(
                f"Product '{product.product_id}' is priced on request only; contact the seller.",
                "price_on_request",
                "product_id",
            )
        decision = price_product(
            base=product.base_cpm, floor=product.floor_cpm, tier=caller.tier, impressions=body.volume
        )
        return JSONResponse(
            {
                "product_id": product.product_id,
                "base_price": legacy_float(decision.base),
                "final_price": legacy_float(decision.final),
                "currency": "USD",
                "tier_discount": float(decision.tier_discount),
                "volume_discount": float(decision.volume_discount),
                "rationale": decision.rationale,
            }
        )

    async def create_quote(request: Request) -> Response:
        caller = _caller(request, keys)
        body = parse_body(await request.body(), QuoteCreate)
        return JSONResponse(state.create_quote(body, caller))

    async def get_quote(request: Request) -> Response:
        return JSONResponse(state.get_quote(request.path_params["quote_id"]))

    async def book_deal(request: Request) -> Response:
        caller = _caller(request, keys)
        body = parse_body(await request.body(), DealCreate)
        return JSONResponse(state.book_deal(body, caller))

    async def get_deal(request: Request) -> Response:
        return JSONResponse(state.get_deal(request.path_params["deal_id"]))

    async def deal_performance(request: Request) -> Response:
        query = parse_query(dict(request.query_params), PerformanceQuery)
        return JSONResponse(state.deal_performance(request.path_params["deal_id"], at=query.as_of))

    async def delivery_profiles_get(request: Request) -> Response:
        return JSONResponse(state.delivery_profiles())

    def delivery_profile_put(target: str) -> Handler:
        """``PUT`` a profile for every deal (``default``), one product's deals or one deal."""

        async def put(request: Request) -> Response:
            body = parse_body(await request.body(), DeliveryProfileRequest)
            try:
                profile = parse_profile(body.profile)
            except ValueError as exc:
                raise SandboxError(422, coded("invalid_profile", str(exc))) from None
            key = request.path_params.get("key")
            state.set_delivery_profile(
                profile,
                deal_id=key if target == "deals" else None,
                product_id=key if target == "products" else None,
            )
            return JSONResponse(state.delivery_profiles())

        return put

    async def negotiation_message(request: Request) -> Response:
        caller = _caller(request, keys)
        body = parse_body(await request.body(), NegotiationMessage)
        return JSONResponse(state.negotiate(body, caller))

    def _packages(layer: str | None = None, featured_only: bool = False) -> list[Package]:
        if layer is not None and layer not in ("synced", "curated", "dynamic"):
            raise SandboxError(400, f"Invalid layer: {layer}")
        # Every sandbox package is a seller-curated bundle.
        if layer not in (None, "curated"):
            return []
        return [p for p in cat.packages if p.is_featured or not featured_only]

    async def media_kit(request: Request) -> Response:
        packages = _packages()
        featured = [p for p in packages if p.is_featured]
        return JSONResponse(
            {
                "total_packages": len(packages),
                "featured_count": len(featured),
                "featured": [_package_public(p) for p in featured],
                "all_packages": [_package_public(p) for p in packages],
            }
        )

    async def media_kit_packages(request: Request) -> Response:
        query = parse_query(dict(request.query_params), MediaKitPackagesQuery)
        packages = _packages(query.layer, query.featured_only)
        return JSONResponse({"packages": [_package_public(p) for p in packages]})

    async def media_kit_package(request: Request) -> Response:
        package = cat.package(request.path_params["package_id"])
        if package is None:
            raise SandboxError(404, "Package not found")
        return JSONResponse(_package_public(package))

    async def media_kit_search(request: Request) -> Response:
        caller = _caller(request, keys)
        body = parse_body(await request.body(), MediaKitSearchRequest)
        tokens = set(body.query.lower().split())
        scored = [(score, p) for p in cat.packages if (score := _search_score(p, tokens)) > 0]
        scored.sort(key=lambda item: item[0], reverse=True)
        authenticated = caller.tier != "public"
        results = [_package_authenticated(p, caller.tier) if authenticated else _package_public(p) for _, p in scored]
        return JSONResponse({"results": results})

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/.well-known/agent.json", agent_card, methods=["GET"]),
        Route("/products", list_products, methods=["GET"]),
        Route("/products/{product_id}", get_product, methods=["GET"]),
        Route("/pricing", pricing, methods=["POST"]),
        Route("/api/v1/quotes", create_quote, methods=["POST"]),
        Route("/api/v1/quotes/{quote_id}", get_quote, methods=["GET"]),
        Route("/api/v1/deals", book_deal, methods=["POST"]),
        Route("/api/v1/deals/{deal_id}/performance", deal_performance, methods=["GET"]),
        Route("/api/v1/deals/{deal_id}", get_deal, methods=["GET"]),
        Route("/api/v1/negotiations/messages", negotiation_message, methods=["POST"]),
        Route("/media-kit", media_kit, methods=["GET"]),
        Route("/media-kit/packages", media_kit_packages, methods=["GET"]),
        Route("/media-kit/packages/{package_id}", media_kit_package, methods=["GET"]),
        Route("/media-kit/search", media_kit_search, methods=["POST"]),
        # Sandbox extensions, not part of any seller protocol: how deals deliver.
        Route("/_sandbox/delivery", delivery_profiles_get, methods=["GET"]),
        Route("/_sandbox/delivery/default", delivery_profile_put("default"), methods=["PUT"]),
        Route("/_sandbox/delivery/deals/{key}", delivery_profile_put("deals"), methods=["PUT"]),
        Route("/_sandbox/delivery/products/{key}", delivery_profile_put("products"), methods=["PUT"]),
        *sandbox_mcp.routes,
    ]

    async def sandbox_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SandboxError)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationFailed)
        return JSONResponse({"detail": exc.errors}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own 404/405 (unknown path, wrong method) in FastAPI's JSON envelope.
        assert isinstance(exc, HTTPException)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with sandbox_mcp.lifespan():
            yield

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(
                FaultInjection,
                latency_ms=latency_ms,
                failure_rate=failure_rate,
                garbage=garbage,
                seed=seed,
            )
        ],
        exception_handlers={
            SandboxError: sandbox_error,
            RequestValidationFailed: validation_error,
            HTTPException: http_error,
        },
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.sandbox = state
    app.state.mcp = sandbox_mcp.server
    return app


__all__ = ["API_KEY_TIERS", "FaultInjection", "create_app"]
