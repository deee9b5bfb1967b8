"""SellerMcpClient over real HTTP: against the sandbox seller (both transports) and a reference-like seller."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from buyer.sandbox import create_app
from buyer.sellers.client import SellerRestClient, fetch_catalogs
from buyer.sellers.errors import SellerError
from buyer.sellers.mcp_client import SellerMcpClient
from buyer.sellers.types import BuyerIdentity, QuoteRequest
from tests.conftest import free_port, serve_in_thread
from tests.fixtures import SELLER_SAMPLES

SAMPLES = SELLER_SAMPLES
SECRET = "sk-live-7f3a9c1e5b2d4a6f8e0c"
KEYS = {SECRET: "agency", "key-seat": "seat"}
TRANSPORTS = ("streamable_http", "sse")


@pytest.fixture
def sandbox() -> Iterator[tuple[Any, str]]:
    """The default-catalog sandbox seller over real HTTP: (app, base URL)."""
    app = create_app(api_keys=KEYS)
    with serve_in_thread(app) as base_url:
        yield app, base_url


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _client(base_url: str, transport: str, sleeps: list[float] | None = None, **kwargs: Any) -> SellerMcpClient:
    kwargs.setdefault("sleep", (sleeps if sleeps is not None else []).append)
    return SellerMcpClient(base_url, transport=transport, **kwargs)


def _future_flight() -> tuple[date, date]:
    """A month-long flight starting in a month: never started, whatever today is."""
    start = date.today() + timedelta(days=30)
    return start, start + timedelta(days=30)


def _quote_request(product_id: str, key: str = "job-1:rec-1:quote", **overrides: Any) -> QuoteRequest:
    start, end = _future_flight()
    fields: dict[str, Any] = {
        "idempotency_key": key,
        "product_id": product_id,
        "deal_type": "PD",
        "impressions": 500_000,
        "flight_start": start,
        "flight_end": end,
    }
    fields.update(overrides)
    return QuoteRequest(**fields)


def _priced_pd_product(app: Any) -> str:
    return next(p.product_id for p in app.state.sandbox.catalog.products if p.priced and "PD" in p.deal_types)


# -- against the sandbox seller --------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_mcp_catalog_equals_the_rest_catalog_with_the_same_decimal_prices(sandbox, transport):
    _, base_url = sandbox

    with _client(base_url, transport) as mcp, SellerRestClient(base_url) as rest:
        over_mcp = mcp.list_products()
        over_rest = rest.list_products()

    assert over_mcp == over_rest
    assert [p.product_id for p in over_mcp] == [p.product_id for p in over_rest]
    # Same digits too, not merely equal values: 15 from micros and 15.0 from a float would compare equal.
    assert [str(p.base_cpm) for p in over_mcp] == [str(p.base_cpm) for p in over_rest]
    assert [str(p.floor_cpm) for p in over_mcp] == [str(p.floor_cpm) for p in over_rest]
    assert all(isinstance(p.base_cpm, Decimal) for p in over_mcp if p.base_cpm is not None)
    assert any(p.base_cpm is None for p in over_mcp)  # price on request stays unpriced


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_quote_book_and_read_back_round_trip(sandbox, transport):
    app, base_url = sandbox
    pid = _priced_pd_product(app)

    with _client(base_url, transport, credential=SECRET) as client:
        quote = client.request_quote(_quote_request(pid))
        deal = client.book_deal(idempotency_key="job-1:rec-1:book", quote_id=quote.quote_id)
        read_back = client.get_deal(deal.deal_id)
        quote_after = client.get_quote(quote.quote_id)
        performance = client.deal_performance(deal.deal_id)

    assert quote.buyer_tier == "agency"
    assert (quote.flight_start, quote.flight_end) == _future_flight()
    assert deal.quote_id == quote.quote_id
    assert deal.final_cpm == quote.final_cpm
    assert read_back == deal
    assert quote_after.status == "booked"
    assert performance.deal_id == deal.deal_id
    assert performance.spend == Decimal(0)  # the flight has not started


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_booking_twice_with_the_same_key_makes_one_deal(sandbox, transport):
    app, base_url = sandbox
    pid = _priced_pd_product(app)

    with _client(base_url, transport, credential=SECRET) as client:
        quote = client.request_quote(_quote_request(pid))
        first = client.book_deal(idempotency_key="book-once", quote_id=quote.quote_id)
        again = client.book_deal(idempotency_key="book-once", quote_id=quote.quote_id)
        with pytest.raises(SellerError) as refused:
            client.book_deal(idempotency_key="book-twice", quote_id=quote.quote_id)
        booked = client.get_quote(quote.quote_id)

    assert again.deal_id == first.deal_id
    assert booked.raw["deal_id"] == first.deal_id
    assert (refused.value.code, refused.value.status, refused.value.retryable) == ("quote_already_booked", 409, False)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_agency_key_quotes_over_mcp_at_the_agency_price_rest_gives(sandbox, transport):
    app, base_url = sandbox
    pid = _priced_pd_product(app)

    with _client(base_url, transport, credential=SECRET) as mcp, SellerRestClient(base_url, credential=SECRET) as rest:
        over_mcp = mcp.request_quote(_quote_request(pid, key="mcp-side"))
        over_rest = rest.request_quote(_quote_request(pid, key="rest-side"))
    with _client(base_url, transport) as anonymous:
        public = anonymous.request_quote(_quote_request(pid, key="public-side"))

    assert over_mcp.final_cpm == over_rest.final_cpm < public.final_cpm
    assert (over_mcp.buyer_tier, public.buyer_tier) == ("agency", "public")


def test_the_same_idempotency_key_replays_the_quote_across_mcp_and_rest(sandbox):
    app, base_url = sandbox
    pid = _priced_pd_product(app)
    request = _quote_request(pid, key="job-7:rec-2:quote")

    with (
        _client(base_url, "streamable_http", credential=SECRET) as mcp,
        SellerRestClient(base_url, credential=SECRET) as rest,
    ):
        assert mcp.request_quote(request).quote_id == rest.request_quote(request).quote_id


def test_what_the_mcp_tools_cannot_carry_goes_over_rest(sandbox):
    app, base_url = sandbox
    pid = _priced_pd_product(app)

    with _client(base_url, "streamable_http", credential=SECRET) as client:
        targeted = client.request_quote(_quote_request(pid, target_cpm=Decimal("0.50")))
        identified = client.request_quote(_quote_request(pid, key="k2", buyer_identity=BuyerIdentity(seat_id="s-9")))
        deal = client.book_deal(idempotency_key="b", quote_id=identified.quote_id, buyer_identity=BuyerIdentity("s-9"))

    assert targeted.buyer_tier == identified.buyer_tier == "agency"
    assert deal.openrtb_params["wseat"] == ["s-9"]  # the seat reached the seller: it went over REST


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tool_errors_keep_the_sellers_code_and_are_not_retried(sandbox, transport, sleeps):
    _, base_url = sandbox

    with _client(base_url, transport, sleeps) as client:
        with pytest.raises(SellerError) as unknown_product:
            client.request_quote(_quote_request("prod-nope"))
        with pytest.raises(SellerError) as unknown_deal:
            client.deal_performance("DEMO-NOPE")

    assert (unknown_product.value.code, unknown_product.value.status) == ("product_not_found", 404)
    assert (unknown_deal.value.code, unknown_deal.value.status) == ("deal_not_found", 404)
    assert not unknown_product.value.retryable
    assert sleeps == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unreachable_seller_is_a_retryable_connection_error_after_bounded_retries(transport, sleeps):
    client = _client(f"http://127.0.0.1:{free_port()}", transport, sleeps, max_retries=2)

    with pytest.raises(SellerError) as failed:
        client.list_products()

    assert failed.value.code == "connection_error"
    assert failed.value.retryable is True
    assert failed.value.status is None
    assert len(sleeps) == 2
    assert not client.health()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_seller_answering_503_is_retried_then_reported_retryable(transport, sleeps):
    with serve_in_thread(create_app(failure_rate=1.0)) as base_url:
        client = _client(base_url, transport, sleeps, max_retries=1)
        with pytest.raises(SellerError) as failed:
            client.list_products()

    assert (failed.value.code, failed.value.status, failed.value.retryable) == ("http_503", 503, True)
    assert len(sleeps) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_slow_seller_times_out_as_retryable(transport):
    with serve_in_thread(create_app(latency_ms=1500)) as base_url:
        client = _client(base_url, transport, timeout=0.3, max_retries=0)
        with pytest.raises(SellerError) as failed:
            client.list_products()

    assert (failed.value.code, failed.value.retryable) == ("timeout", True)


def test_a_host_the_seller_does_not_allow_is_not_retried(sleeps):
    with serve_in_thread(create_app(mcp_allowed_hosts=("seller.example:*",))) as base_url:
        client = _client(base_url, "streamable_http", sleeps)
        with pytest.raises(SellerError) as failed:
            client.list_products()

    assert (failed.value.code, failed.value.status, failed.value.retryable) == ("http_421", 421, False)
    assert sleeps == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_health_is_true_for_a_live_mcp_seller(sandbox, transport):
    _, base_url = sandbox

    assert _client(base_url, transport).health() is True


def test_fetch_catalogs_takes_mcp_and_rest_clients_alike(sandbox):
    _, base_url = sandbox
    clients: dict[str, Any] = {
        "mcp": _client(base_url, "streamable_http"),
        "sse": _client(base_url, "sse"),
        "rest": SellerRestClient(base_url),
        "down": _client(f"http://127.0.0.1:{free_port()}", "streamable_http", max_retries=0),
    }

    results = fetch_catalogs(clients, max_workers=4)

    assert results["mcp"] == results["sse"] == results["rest"]
    assert isinstance(results["down"], SellerError)
    assert results["down"].code == "connection_error"


def test_one_client_serves_many_threads_at_once(sandbox):
    _, base_url = sandbox
    client = _client(base_url, "streamable_http", credential=SECRET)

    with ThreadPoolExecutor(max_workers=6) as pool:
        catalogs = list(pool.map(lambda _: client.list_products(), range(12)))

    assert all(catalog == catalogs[0] for catalog in catalogs)
    assert len(catalogs[0]) > 10


def test_arguments_are_checked_before_anything_is_sent():
    with pytest.raises(ValueError):
        SellerMcpClient("http://seller.test", transport="websocket")
    with pytest.raises(ValueError):
        SellerMcpClient("http://seller.test", credential_scheme="basic")
    client = SellerMcpClient("http://seller.test")
    assert client.endpoint == "http://seller.test/mcp/"
    assert SellerMcpClient("http://seller.test/", transport="sse").endpoint == "http://seller.test/mcp-sse/sse"
    with pytest.raises(ValueError):
        client.book_deal(idempotency_key=" ", quote_id="qt-1")
    with pytest.raises(ValueError):
        client.list_products(max_products=0)


# -- secrets ---------------------------------------------------------------------------------------


def _echoing_seller() -> Starlette:
    """A hostile seller whose tool errors echo the caller's headers back, key included."""
    server = MCPServer("echo")

    @server.tool()
    async def list_products(ctx: Context, limit: int | None = 50) -> str:
        headers = ctx.headers or {}
        sent = headers.get("x-api-key") or headers.get("authorization")
        text = json.dumps({"error": "bad_key", "message": f"key {sent!r} refused"})
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)  # type: ignore[return-value]

    return _mcp_app(server)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("credential_scheme", ["api_key", "bearer"])
def test_the_credential_never_shows_in_errors_repr_or_logs(sandbox, caplog, transport, credential_scheme):
    app, base_url = sandbox
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and httpx2's included
    client = _client(base_url, transport, credential=SECRET, credential_scheme=credential_scheme)
    unreachable = _client(
        f"http://127.0.0.1:{free_port()}", transport, credential=SECRET, credential_scheme=credential_scheme
    )

    quote = client.request_quote(_quote_request(_priced_pd_product(app)))
    client.book_deal(idempotency_key="book", quote_id=quote.quote_id)
    with pytest.raises(SellerError) as refused:
        client.book_deal(idempotency_key="again", quote_id=quote.quote_id)
    with pytest.raises(SellerError) as down:
        unreachable.list_products()

    assert quote.buyer_tier == "agency"  # the key was sent
    for text in (str(refused.value), repr(refused.value), str(down.value), repr(client), repr(unreachable)):
        assert SECRET not in text
    assert "credential='***'" in repr(client)
    assert SECRET not in caplog.text
    assert all(SECRET not in str(record.args) for record in caplog.records)


@pytest.mark.parametrize("credential_scheme", ["api_key", "bearer"])
def test_a_credential_the_seller_echoes_back_is_scrubbed_from_the_error(credential_scheme):
    with serve_in_thread(_echoing_seller()) as base_url:
        client = SellerMcpClient(base_url, credential=SECRET, credential_scheme=credential_scheme)
        with pytest.raises(SellerError) as echoed:
            client.list_products()

    assert echoed.value.code == "bad_key"
    assert "***" in str(echoed.value)  # the seller did echo it back
    assert SECRET not in str(echoed.value)
    assert SECRET not in repr(echoed.value)


# -- against a seller shaped like the reference seller ---------------------------------------------


def _mcp_app(server: MCPServer, routes: list[Any] | None = None) -> Starlette:
    """``server`` mounted as the reference mounts it: Streamable HTTP under ``/mcp``, SSE under ``/mcp-sse``."""
    security = TransportSecuritySettings(allowed_hosts=["127.0.0.1:*"], allowed_origins=["http://127.0.0.1:*"])
    streamable = server.streamable_http_app(streamable_http_path="/", transport_security=security)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    return Starlette(
        routes=[*(routes or []), Mount("/mcp", app=streamable), Mount("/mcp-sse", app=server.sse_app())],
        lifespan=lifespan,
    )


REFERENCE_PRODUCTS = [
    {
        "product_id": "prod-91ddc363",
        "name": "Premium Display - Homepage",
        "inventory_type": "display",
        "base_cpm": 15.0,
        "floor_cpm": 10.0,
        # The reference seller's MCP words (mcp_tools_real.json), not REST's PG/PD/PA.
        "deal_types": ["programmaticguaranteed", "preferreddeal"],
    },
    {
        "product_id": "prod-por",
        "name": "Price on request",
        "inventory_type": "ctv",
        "base_cpm": None,
        "floor_cpm": None,
        "deal_types": ["programmaticguaranteed"],
    },
    {"name": "no id: skipped"},
]


@pytest.fixture
def reference_like() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """The reference seller's buyer tools and shapes (no booking tool), plus its REST quote and deal routes."""
    rest_calls: list[tuple[str, Any]] = []
    server = MCPServer("IAB Tech Lab Seller Agent")

    @server.tool()
    async def list_products(limit: int | None = 50) -> str:
        products = REFERENCE_PRODUCTS[: limit or 50]
        return json.dumps({"products": products, "count": len(products)}, indent=2)

    @server.tool()
    async def get_pricing(product_id: str, buyer_tier: str = "public", volume: int = 0) -> str:
        return json.dumps({"error": f"Product '{product_id}' not found"})

    @server.tool()
    async def request_quote(product_id: str, deal_type: str = "PD", impressions: int = 0) -> str:
        raise AssertionError("cannot carry flight dates or an idempotency key: must not be used")

    @server.tool()
    async def get_deal_performance(deal_id: str) -> str:
        if deal_id != "DEMO-B0412BC0DFFA":  # the REST error body, passed through as a successful result
            return json.dumps({"detail": {"error": "deal_not_found", "message": f"Deal '{deal_id}' not found."}})
        return json.dumps({"deal_id": deal_id, "impressions_served": 10_000, "avg_cpm_actual": 12.5})

    async def post_quote(request: Request) -> JSONResponse:
        rest_calls.append(("quote", await request.json()))
        return JSONResponse(json.loads((SAMPLES / "quote_pd.json").read_text()))

    async def post_deal(request: Request) -> JSONResponse:
        rest_calls.append(("deal", await request.json()))
        return JSONResponse(json.loads((SAMPLES / "deal_book.json").read_text()))

    app = _mcp_app(
        server,
        [Route("/api/v1/quotes", post_quote, methods=["POST"]), Route("/api/v1/deals", post_deal, methods=["POST"])],
    )
    with serve_in_thread(app) as base_url:
        yield base_url, rest_calls


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_reference_catalog_maps_legacy_floats_to_exact_decimals(reference_like, transport):
    base_url, _ = reference_like

    products = _client(base_url, transport).list_products()

    assert [p.product_id for p in products] == ["prod-91ddc363", "prod-por"]  # the malformed entry is skipped
    display, on_request = products
    assert display.base_cpm == Decimal("15") and str(display.base_cpm) == "15"
    assert display.floor_cpm == Decimal("10.0")
    assert display.deal_types == ("PG", "PD")
    assert display.inventory_type == "display"
    assert on_request.base_cpm is None and on_request.floor_cpm is None


def test_a_reference_seller_quotes_and_books_over_rest(reference_like):
    base_url, rest_calls = reference_like

    with _client(base_url, "streamable_http", credential=SECRET) as client:
        quote = client.request_quote(_quote_request("prod-91ddc363"))
        deal = client.book_deal(idempotency_key="job-1:rec-1:book", quote_id=quote.quote_id)

    assert [kind for kind, _ in rest_calls] == ["quote", "deal"]
    assert rest_calls[0][1]["idempotency_key"] == "job-1:rec-1:quote"
    assert rest_calls[0][1]["flight_start"] == _future_flight()[0].isoformat()
    assert rest_calls[1][1] == {"idempotency_key": "job-1:rec-1:book", "quote_id": "qt-ead80acf065f"}
    assert quote.final_cpm == Decimal("15")
    assert deal.deal_id == "DEMO-B0412BC0DFFA"


def test_a_reference_performance_result_and_its_error_envelope(reference_like):
    base_url, _ = reference_like
    client = _client(base_url, "sse")

    performance = client.deal_performance("DEMO-B0412BC0DFFA")
    with pytest.raises(SellerError) as missing:
        client.deal_performance("DEMO-NOPE")

    assert performance.impressions_delivered == 10_000
    assert performance.spend == Decimal("125.00")
    assert missing.value.code == "deal_not_found"
    assert not missing.value.retryable


def test_a_result_that_is_not_json_is_an_invalid_response():
    server = MCPServer("garbage")

    @server.tool()
    async def list_products(limit: int | None = 50) -> str:
        return "<html>502 Bad Gateway</html>"

    with serve_in_thread(_mcp_app(server)) as base_url, pytest.raises(SellerError) as failed:
        _client(base_url, "streamable_http").list_products()

    assert (failed.value.code, failed.value.retryable) == ("invalid_response", False)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_reference_dialect_catalog_equals_the_rest_catalog(transport):
    """The reference seller's sparse, legacy-worded MCP catalog is mapped and completed from its REST catalog."""
    app = create_app(mcp_dialect="reference")
    with serve_in_thread(app) as base_url, _client(base_url, transport) as mcp, SellerRestClient(base_url) as rest:
        over_mcp = mcp.list_products()
        over_rest = rest.list_products()

    assert over_mcp == over_rest
    assert {kind for p in over_mcp for kind in p.deal_types} <= {"PG", "PD", "PA"}


def test_a_sparse_catalog_stays_usable_when_the_seller_has_no_rest_catalog(reference_like):
    base_url, _ = reference_like  # serves MCP, and REST quotes and deals, but no /products

    products = _client(base_url, "streamable_http").list_products()

    assert [p.deal_types for p in products] == [("PG", "PD"), ("PG",)]
    assert products[0].minimum_impressions == 0 and products[0].available_impressions is None


def test_a_result_carried_only_in_structured_content_is_read():
    server = MCPServer("structured only")

    @server.tool()
    async def list_products(limit: int | None = 50) -> CallToolResult:
        text = json.dumps({"products": REFERENCE_PRODUCTS[:1], "count": 1})
        return CallToolResult(content=[], structured_content={"result": text})

    with serve_in_thread(_mcp_app(server)) as base_url:
        products = _client(base_url, "streamable_http").list_products()

    assert [(p.product_id, p.deal_types) for p in products] == [("prod-91ddc363", ("PG", "PD"))]


def test_a_seller_that_pages_its_tools_is_listed_to_the_last_page():
    """``tools/list`` with the next page's cursor (the SDK takes it in ``params``; a ``cursor=`` keyword raised a
    TypeError as soon as a seller paginated)."""
    import anyio
    import mcp_types
    from mcp import Client
    from mcp.server.lowlevel.server import Server

    from buyer.sellers.mcp_client import _list_tools

    pages = {None: (["list_products", "get_product"], "page-2"), "page-2": (["request_quote"], None)}
    asked: list[str | None] = []

    async def list_tools(ctx, params):
        cursor = params.cursor if params is not None else None
        asked.append(cursor)
        names, following = pages[cursor]
        tools = [mcp_types.Tool(name=name, input_schema={"type": "object"}) for name in names]
        return mcp_types.ListToolsResult(tools=tools, next_cursor=following)

    async def listed() -> list[str]:
        async with Client(Server("paging-seller", on_list_tools=list_tools)) as client:
            return [tool.name for tool in await _list_tools(client.session)]

    assert anyio.run(listed) == ["list_products", "get_product", "request_quote"]
    assert asked == [None, "page-2"]
