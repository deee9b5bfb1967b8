"""The sandbox seller over MCP, with the official MCP client over real HTTP, on both transports.

Streamable HTTP at ``/mcp/`` (and ``/mcp``) and legacy SSE at ``/mcp-sse/sse``, on the same state as REST.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent
from starlette.testclient import TestClient

from buyer.sandbox import create_app
from tests.conftest import serve_in_thread

from ._support import API_KEYS, FLIGHT, free_port, sample

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
TRANSPORTS = ("streamable_http", "sse")
REFERENCE_PRODUCT_KEYS = ["product_id", "name", "inventory_type", "base_cpm", "floor_cpm", "deal_types"]


@pytest.fixture
def seller() -> Iterator[tuple[Any, str]]:
    """A default-catalog sandbox seller that knows ``API_KEYS``, served over real HTTP: (app, base URL)."""
    app = create_app(api_keys=API_KEYS)
    with serve_in_thread(app) as base_url:
        yield app, base_url


def mcp(
    base_url: str,
    transport: str,
    work: Callable[[ClientSession], Awaitable[T]],
    *,
    key: str | None = None,
    path: str | None = None,
) -> T:
    """Open one MCP session with the official client and run ``work`` in it.

    The key goes as ``X-Api-Key`` on Streamable HTTP and as ``Authorization: Bearer`` on SSE, so both
    header spellings are exercised.
    """

    async def run() -> T:
        if transport == "sse":
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            streams = sse_client(base_url + (path or "/mcp-sse/sse"), headers=headers, timeout=10)
        else:
            headers = {"X-Api-Key": key} if key else {}
            http_client = httpx2.AsyncClient(headers=headers, timeout=10)
            streams = streamable_http_client(base_url + (path or "/mcp/"), http_client=http_client)
        async with streams as (read_stream, write_stream), ClientSession(read_stream, write_stream) as session:
            await session.initialize()
            return await work(session)

    return anyio.run(run)


def call(base_url: str, transport: str, tool: str, args: dict[str, Any], **kwargs: Any) -> tuple[bool, Any]:
    """One tool call in its own session: (is_error, the JSON its text holds)."""

    async def work(session: ClientSession) -> tuple[bool, Any]:
        result = await session.call_tool(tool, args)
        text = "".join(block.text for block in result.content if isinstance(block, TextContent))
        return bool(result.is_error), json.loads(text)

    return mcp(base_url, transport, work, **kwargs)


def ok(base_url: str, transport: str, tool: str, args: dict[str, Any], **kwargs: Any) -> Any:
    is_error, body = call(base_url, transport, tool, args, **kwargs)
    assert not is_error, body
    return body


def priced_pd_product(app: Any) -> str:
    return next(p.product_id for p in app.state.sandbox.catalog.products if p.priced and "PD" in p.deal_types)


# -- tools -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_it_lists_the_reference_buyer_tools_plus_book_deal_and_negotiate(seller, transport):
    _, base_url = seller

    async def work(session: ClientSession) -> dict[str, Any]:
        return {tool.name: tool.input_schema for tool in (await session.list_tools()).tools}

    schemas = mcp(base_url, transport, work)

    params = {name: list(schema["properties"]) for name, schema in schemas.items()}
    assert params == {
        "list_products": ["limit"],
        "get_pricing": ["product_id", "buyer_tier", "volume"],
        "request_quote": [
            "product_id",
            "deal_type",
            "impressions",
            "flight_start",
            "flight_end",
            "idempotency_key",
        ],
        "book_deal": ["quote_id", "idempotency_key"],
        "negotiate": ["idempotency_key", "action", "quote_id", "buyer_price", "round_number", "rationale"],
        "get_deal_performance": ["deal_id"],
    }
    assert schemas["negotiate"]["required"] == ["idempotency_key", "action", "quote_id"]
    assert schemas["request_quote"]["required"] == ["product_id"]
    assert schemas["book_deal"]["required"] == ["quote_id", "idempotency_key"]
    assert schemas["list_products"]["properties"]["limit"]["default"] == 50


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_list_products_answers_the_reference_shape_with_float_prices(seller, transport):
    app, base_url = seller
    catalog = app.state.sandbox.catalog.products

    body = ok(base_url, transport, "list_products", {})

    assert body["count"] == len(body["products"]) == min(50, len(catalog))
    item = body["products"][0]
    assert list(item)[: len(REFERENCE_PRODUCT_KEYS)] == REFERENCE_PRODUCT_KEYS
    assert isinstance(item["base_cpm"], float)
    assert isinstance(item["floor_cpm"], float)
    rest = httpx.get(f"{base_url}/products", params={"limit": 500}, timeout=5).json()["products"]
    assert [p["product_id"] for p in body["products"]] == [p["product_id"] for p in rest]
    by_id = {p["product_id"]: p for p in rest}
    for product in body["products"]:
        money = by_id[product["product_id"]]["base_price"]
        if money is None:
            assert product["base_cpm"] is None  # price on request stays unpriced
        else:
            assert round(product["base_cpm"] * 1_000_000) == money["amount_micros"]
    assert any(p["base_cpm"] is None for p in body["products"])
    assert ok(base_url, transport, "list_products", {"limit": 3})["count"] == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_agency_key_prices_over_mcp_exactly_as_over_rest(seller, transport):
    app, base_url = seller
    pid = priced_pd_product(app)

    agency = ok(base_url, transport, "get_pricing", {"product_id": pid, "volume": 6_000_000}, key="key-agency")
    public = ok(base_url, transport, "get_pricing", {"product_id": pid, "volume": 6_000_000})
    # The argument cannot raise the tier: only a key can, as on REST.
    claimed = ok(base_url, transport, "get_pricing", {"product_id": pid, "buyer_tier": "advertiser"})

    rest = httpx.post(
        f"{base_url}/pricing",
        json={"product_id": pid, "volume": 6_000_000},
        headers={"X-Api-Key": "key-agency"},
        timeout=5,
    ).json()
    assert agency["buyer_tier"] == "agency"
    assert agency["final_cpm"] == rest["final_price"]
    assert agency["base_cpm"] == rest["base_price"]
    assert (agency["tier_discount"], agency["volume_discount"]) == (rest["tier_discount"], rest["volume_discount"])
    assert agency["final_cpm"] < public["final_cpm"]
    assert claimed["buyer_tier"] == "public"
    assert set(agency) >= {"product_id", "base_cpm", "final_cpm", "tier_discount", "volume_discount", "rationale"}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_quote_made_over_mcp_is_fetched_and_booked_over_rest(seller, transport):
    app, base_url = seller
    pid = priced_pd_product(app)

    made = ok(
        base_url,
        transport,
        "request_quote",
        {"product_id": pid, "deal_type": "PD", "impressions": 500_000, "idempotency_key": "q-1", **FLIGHT},
        key="key-seat",
    )["quote"]

    fetched = httpx.get(f"{base_url}/api/v1/quotes/{made['quote_id']}", timeout=5).json()["quote"]
    assert fetched == made
    assert made["buyer_tier"] == "seat"
    assert (made["terms"]["flight_start"], made["terms"]["flight_end"]) == (
        FLIGHT["flight_start"],
        FLIGHT["flight_end"],
    )
    deal = httpx.post(
        f"{base_url}/api/v1/deals",
        json={"idempotency_key": "d-1", "quote_id": made["quote_id"]},
        headers={"X-Api-Key": "key-seat"},
        timeout=5,
    )
    assert deal.status_code == 200
    assert deal.json()["deal"]["quote_id"] == made["quote_id"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_quote_made_over_rest_is_booked_over_mcp_and_its_delivery_read_over_mcp(seller, transport):
    app, base_url = seller
    moment = app.state.sandbox.now()
    app.state.sandbox.clock = lambda: moment  # delivery grows with time: both reads see the same moment
    pid = priced_pd_product(app)
    quote = httpx.post(
        f"{base_url}/api/v1/quotes",
        json={"idempotency_key": "rq", "product_id": pid, "deal_type": "PD", "impressions": 500_000, **FLIGHT},
        timeout=5,
    ).json()["quote"]

    deal = ok(base_url, transport, "book_deal", {"quote_id": quote["quote_id"], "idempotency_key": "bk"})["deal"]
    performance = ok(base_url, transport, "get_deal_performance", {"deal_id": deal["deal_id"]})

    assert httpx.get(f"{base_url}/api/v1/deals/{deal['deal_id']}", timeout=5).json()["deal"] == deal
    over_rest = httpx.get(f"{base_url}/api/v1/deals/{deal['deal_id']}/performance", timeout=5).json()
    performance.pop("as_of"), over_rest.pop("as_of")  # the moment each was measured
    assert performance == over_rest
    assert httpx.get(f"{base_url}/api/v1/quotes/{quote['quote_id']}", timeout=5).json()["quote"]["status"] == "booked"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_booking_twice_with_the_same_key_is_one_deal_and_a_new_key_is_refused(seller, transport):
    app, base_url = seller
    pid = priced_pd_product(app)
    quote = ok(base_url, transport, "request_quote", {"product_id": pid, "impressions": 500_000})["quote"]
    book = {"quote_id": quote["quote_id"], "idempotency_key": "once"}

    first = ok(base_url, transport, "book_deal", book, key="key-agency")["deal"]
    again = ok(base_url, transport, "book_deal", book, key="key-agency")["deal"]
    is_error, refused = call(base_url, transport, "book_deal", {**book, "idempotency_key": "twice"}, key="key-agency")

    assert again["deal_id"] == first["deal_id"]
    assert is_error
    assert (refused["error"], refused["status"]) == ("quote_already_booked", 409)


def test_the_same_quote_key_replays_across_mcp_and_rest(seller):
    app, base_url = seller
    pid = priced_pd_product(app)
    args = {"product_id": pid, "deal_type": "PD", "impressions": 500_000, "idempotency_key": "shared", **FLIGHT}

    over_mcp = ok(base_url, "streamable_http", "request_quote", args, key="key-agency")["quote"]
    over_rest = httpx.post(
        f"{base_url}/api/v1/quotes", json=args, headers={"Authorization": "Bearer key-agency"}, timeout=5
    ).json()["quote"]

    assert over_rest["quote_id"] == over_mcp["quote_id"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("tool", "args", "key", "code", "status"),
    [
        ("request_quote", {"product_id": "prod-nope"}, None, "product_not_found", 404),
        ("request_quote", {"product_id": "x", "deal_type": "XX"}, None, "validation_error", 422),
        ("request_quote", {"product_id": "x"}, "not-a-key", "invalid_api_key", 401),
        ("get_pricing", {"product_id": "prod-nope"}, None, "product_not_found", 404),
        ("book_deal", {"quote_id": "qt-nope", "idempotency_key": "k"}, None, "quote_not_found", 404),
        ("get_deal_performance", {"deal_id": "DEMO-NOPE"}, None, "deal_not_found", 404),
    ],
)
def test_failures_are_tool_errors_carrying_the_rest_code(seller, transport, tool, args, key, code, status):
    _, base_url = seller

    is_error, body = call(base_url, transport, tool, args, key=key)

    assert is_error
    assert (body["error"], body["status"]) == (code, status)
    assert body["message"]


def test_a_price_on_request_product_has_no_price_over_mcp(seller):
    app, base_url = seller
    pid = next(p.product_id for p in app.state.sandbox.catalog.products if not p.priced)

    is_error, body = call(base_url, "streamable_http", "get_pricing", {"product_id": pid})

    assert is_error
    assert body["error"] == "unsupported_capability"


# -- transport -------------------------------------------------------------------------------------


def test_streamable_http_answers_without_the_trailing_slash_too(seller):
    _, base_url = seller

    body = ok(base_url, "streamable_http", "list_products", {"limit": 1}, path="/mcp")

    assert body["count"] == 1


@pytest.mark.parametrize(("method", "path"), [("POST", "/mcp/"), ("POST", "/mcp"), ("GET", "/mcp-sse/sse")])
def test_an_unlisted_host_is_refused_421_and_a_foreign_origin_403(seller, method, path):
    _, base_url = seller
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    body = json.dumps(initialize) if method == "POST" else None

    rebound = httpx.request(method, base_url + path, content=body, headers={**headers, "Host": "evil.example"})
    foreign = httpx.request(method, base_url + path, content=body, headers={**headers, "Origin": "http://evil.example"})

    assert rebound.status_code == 421
    assert foreign.status_code == 403


def test_localhost_is_an_allowed_host(seller):
    _, base_url = seller

    body = ok(base_url.replace("127.0.0.1", "localhost"), "streamable_http", "list_products", {"limit": 1})

    assert body["count"] == 1


def test_every_app_has_its_own_mcp_server_and_state():
    first, second = create_app(), create_app()
    assert first.state.mcp is not second.state.mcp
    with serve_in_thread(first) as first_url, serve_in_thread(second) as second_url:
        pid = priced_pd_product(first)
        quote = ok(first_url, "streamable_http", "request_quote", {"product_id": pid})["quote"]
        assert httpx.get(f"{second_url}/api/v1/quotes/{quote['quote_id']}", timeout=5).status_code == 404
        assert httpx.get(f"{first_url}/api/v1/quotes/{quote['quote_id']}", timeout=5).status_code == 200


def test_the_agent_card_lists_mcp_beside_opendirect(client: TestClient):
    card = client.get("/.well-known/agent.json").json()

    assert card["capabilities"]["protocols"] == ["opendirect21", "mcp"]


def test_the_command_line_seller_serves_mcp_with_its_lifespan() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-m", "buyer.sandbox", "--port", str(port), "--api-key", "cli-key:agency"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # generous: a loaded CI box imports slowly
        while True:
            assert proc.poll() is None, "sandbox exited early"
            assert time.monotonic() < deadline, "sandbox did not start"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        pid = ok(base_url, "sse", "list_products", {"limit": 1})["products"][0]["product_id"]
        priced = ok(base_url, "streamable_http", "get_pricing", {"product_id": pid}, key="cli-key")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    assert priced["buyer_tier"] == "agency"
    assert proc.returncode in (0, -signal.SIGTERM), stderr.decode(errors="replace")
    assert b"cli-key" not in stderr


# -- the reference dialect: exactly what the reference seller's MCP answers -----------------------------


@pytest.fixture
def reference_seller() -> Iterator[tuple[Any, str]]:
    app = create_app(api_keys=API_KEYS, mcp_dialect="reference")
    with serve_in_thread(app) as base_url:
        yield app, base_url


def _raw_result(base_url: str, tool: str, args: dict[str, Any]) -> Any:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool(tool, args)

    return mcp(base_url, "streamable_http", work)


def test_the_reference_dialect_lists_the_reference_buyer_tools_and_no_booking_tool(reference_seller):
    _, base_url = reference_seller

    async def work(session: ClientSession) -> dict[str, Any]:
        return {tool.name: list(tool.input_schema["properties"]) for tool in (await session.list_tools()).tools}

    assert mcp(base_url, "streamable_http", work) == {
        "list_products": ["limit"],
        "get_pricing": ["product_id", "buyer_tier", "volume"],
        "request_quote": ["product_id", "deal_type", "impressions"],
        "get_deal_performance": ["deal_id"],
    }


def test_the_reference_dialect_answers_like_the_captured_reference_tools(reference_seller):
    app, base_url = reference_seller
    captured = sample("mcp_tools_real.json")

    products = _raw_result(base_url, "list_products", {"limit": 3})
    start = datetime.now(UTC).date() + timedelta(days=10)
    quote = httpx.post(
        f"{base_url}/api/v1/quotes",
        json={
            "idempotency_key": "q",
            "product_id": priced_pd_product(app),
            "deal_type": "PD",
            "impressions": 500_000,
            "flight_start": start.isoformat(),
            "flight_end": (start + timedelta(days=30)).isoformat(),
        },
    ).json()["quote"]
    deal = httpx.post(f"{base_url}/api/v1/deals", json={"idempotency_key": "d", "quote_id": quote["quote_id"]}).json()
    performance = _raw_result(base_url, "get_deal_performance", {"deal_id": deal["deal"]["deal_id"]})

    for result, name in ((products, "list_products"), (performance, "get_deal_performance")):
        text = "".join(block.text for block in result.content if isinstance(block, TextContent))
        # The JSON comes as text, and the same text as a string inside structured_content.result.
        assert result.structured_content == {"result": text}
        ours, theirs = json.loads(text), json.loads(captured[name]["content_text"][0])
        if name == "list_products":
            assert set(ours) == set(theirs)
            assert [set(item) for item in ours["products"]] == [set(item) for item in theirs["products"]]
            words = {word for item in ours["products"] for word in item["deal_types"]}
            assert words <= {"programmaticguaranteed", "preferreddeal", "privateauction"}
        else:
            assert set(ours) == set(theirs)
            assert ours["delivery_pacing"] == "not_started"  # the flight starts in ten days
            assert (ours["impressions_served"], ours["avg_cpm_actual"]) == (0, 0.0)
