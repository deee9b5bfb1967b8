"""The ASGI application over real HTTP (uvicorn in a thread, lifespan on): routing, the gate, both transports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from buyer.asgi import build_application
from buyer.mcp.tools import TOOLS
from tests.conftest import serve_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "http-test-key"
PATHS = ("/mcp", "/mcp/", "/mcp/sse", "/mcp/messages/")
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
RPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def base_url(settings, fresh_rate_limits) -> Iterator[str]:
    settings.API_KEY = KEY
    settings.MCP_ALLOWED_ORIGINS = ["http://assistant.example:*"]
    with serve_in_thread(build_application()) as url:
        yield url


def rpc(url: str, *, key: str | None = KEY, **headers: str) -> httpx.Response:
    if key is not None:
        headers["X-API-Key"] = key
    return httpx.post(f"{url}/mcp", json=LIST_TOOLS, headers=RPC_HEADERS | headers, timeout=10)


async def _session(transport: str, url: str, headers: dict[str, str], work):
    if transport == "sse":
        async with sse_client(f"{url}/mcp/sse", headers=headers) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            return await work(s)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, *_),
        ClientSession(read, write) as s,
    ):
        await s.initialize()
        return await work(s)


def session(transport: str, url: str, headers: dict[str, str], work) -> Any:
    return anyio.run(_session, transport, url, headers, work)


def test_without_a_valid_key_every_mcp_path_answers_401_before_mcp(base_url):
    for path in PATHS:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
            method = "GET" if path == "/mcp/sse" else "POST"
            response = httpx.request(method, base_url + path, json=LIST_TOOLS, headers=headers, timeout=10)
            assert response.status_code == 401, (path, headers)
            assert response.json() == {"detail": "Invalid or missing API key"}


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_a_key_in_either_header_opens_a_session_on_either_transport(base_url, transport, header):
    value = KEY if header == "X-API-Key" else f"Bearer {KEY}"

    async def work(s: ClientSession):
        return len((await s.list_tools()).tools), (await s.call_tool("list_bookings", {})).structured_content

    count, bookings = session(transport, base_url, {header: value}, work)
    assert count == len(TOOLS) and bookings == {"jobs": [], "total": 0}


def test_a_read_only_key_reads_but_cannot_create_or_approve(base_url):
    _, reader = api_key_create(name="reporting", scopes=[Scope.READ])

    async def work(s: ClientSession):
        listed = await s.call_tool("list_bookings", {})
        created = await s.call_tool("create_booking", {"brief": {"name": "x"}})
        approved = await s.call_tool("approve_recommendations", {"job_id": "x", "approve_all": True})
        return listed, created, approved

    listed, created, approved = session("streamable_http", base_url, {"X-API-Key": reader}, work)
    assert not listed.is_error
    # The scope is checked before anything else the tool does.
    assert created.is_error and approved.is_error is True
    assert created.content[0].text == approved.content[0].text == "This API key lacks the 'write' scope"


def test_a_foreign_host_or_origin_is_refused(base_url):
    assert rpc(base_url, Host="evil.example").status_code == 421
    assert rpc(base_url, Host="evil.example:8001").status_code == 421
    assert rpc(base_url, Origin="http://evil.example").status_code == 403
    assert rpc(base_url, Origin="http://assistant.example:3000").status_code == 200
    port = base_url.rsplit(":", 1)[1]
    assert rpc(base_url, Host=f"localhost:{port}", Origin=f"http://localhost:{port}").status_code == 200
    connect = httpx.get(f"{base_url}/mcp/sse", headers={"X-API-Key": KEY, "Origin": "http://evil.example"})
    assert connect.status_code == 403


def test_each_key_has_a_rate_limit_with_retry_after(base_url, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    _, other = api_key_create(name="other", scopes=[Scope.READ])
    assert [rpc(base_url).status_code for _ in range(4)] == [200, 200, 200, 429]
    limited = rpc(base_url)
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "per minute" in limited.json()["detail"]
    assert rpc(base_url, key=other).status_code == 200
    # REST counts separately.
    assert httpx.get(f"{base_url}/bookings", headers={"X-API-Key": KEY}).status_code == 200


@pytest.mark.parametrize(
    ("where", "error", "service"),
    [
        ("buyer.mcp.auth.api_key_authenticate", "psycopg.OperationalError", "database"),
        ("buyer.mcp.auth.rate_limit_check", "redis.exceptions.ConnectionError", "broker"),
    ],
)
def test_a_service_down_while_the_key_is_checked_answers_503_json_on_every_path(
    base_url, monkeypatch, where, error, service
):
    import importlib

    module, name = error.rsplit(".", 1)
    failure = getattr(importlib.import_module(module), name)

    def down(*args, **kwargs):
        raise failure("connection refused")

    monkeypatch.setattr(where, down)
    for path in PATHS:
        response = httpx.post(
            f"{base_url}{path}", json=LIST_TOOLS, headers=RPC_HEADERS | {"X-API-Key": KEY}, timeout=10
        )
        assert response.status_code == 503, (path, response.text)
        assert response.json() == {"detail": f"The {service} is unavailable; try again in a few seconds"}
        assert response.headers["retry-after"] == "5"


def test_an_sse_session_takes_messages_only_from_the_key_that_opened_it(base_url):
    _, other = api_key_create(name="other", scopes=[Scope.ADMIN])
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    with (
        httpx.Client(base_url=base_url, timeout=10) as http,
        http.stream("GET", "/mcp/sse", headers={"X-API-Key": KEY}) as stream,
    ):
        lines = stream.iter_lines()  # kept: closing the iterator would close the stream
        endpoint = next(line for line in lines if line.startswith("data: "))[6:]
        assert endpoint.startswith("/mcp/messages/?session_id=")
        assert http.post(endpoint, json=initialize, headers={"X-API-Key": other}).status_code == 404
        assert http.post(endpoint, json=initialize, headers={"X-API-Key": KEY}).status_code == 202


def test_open_development_needs_no_key_and_other_environments_do(base_url, settings):
    settings.API_KEY = ""
    assert rpc(base_url, key=None).status_code == 200
    settings.ENVIRONMENT = "production"
    assert rpc(base_url, key=None).status_code == 401


def test_everything_else_is_django(base_url):
    assert httpx.get(f"{base_url}/health").json()["status"] == "healthy"
    assert httpx.get(f"{base_url}/bookings").status_code == 401
    assert httpx.get(f"{base_url}/bookings", headers={"X-API-Key": KEY}).json() == {"jobs": [], "total": 0}
    for path in ("/mcp/other", "/mcpx", "/mcp/sse/extra"):
        assert httpx.post(f"{base_url}{path}", headers={"X-API-Key": KEY}).status_code == 404, path


def test_served_without_lifespan_mcp_says_why_and_django_still_answers():
    async def requests() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=build_application())  # runs no lifespan
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.post("/mcp", json=LIST_TOOLS), await client.get("/health")

    mcp_answer, health = anyio.run(requests)
    assert mcp_answer.status_code == 503 and "lifespan" in mcp_answer.json()["detail"]
    assert health.status_code == 200


def test_a_second_response_to_one_request_is_dropped_after_finishing_the_first():
    from buyer.mcp.server import _SingleResponse

    async def sse_then_stray_response(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"event: endpoint\n\n", "more_body": True})
        # The stream ends without finishing (server shutdown); the SDK then answers once more.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    anyio.run(_SingleResponse(sse_then_stray_response), {"type": "http"}, None, send)
    assert [(m["type"], m.get("more_body", False)) for m in sent] == [
        ("http.response.start", False),
        ("http.response.body", True),
        ("http.response.body", False),
    ]
