"""End to end over both MCP transports with the official client: real uvicorn web (the ASGI dispatcher), a real
Celery worker and the sandbox seller, each its own process (``make_stack``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from tests.e2e.conftest import API_KEY
from tests.mcp.test_tools import EXPECTED_TOOLS

pytestmark = pytest.mark.stack

Work = Callable[[ClientSession], Awaitable[Any]]


async def _in_session(transport: str, base_url: str, key: str | None, work: Work) -> Any:
    headers = {"X-API-Key": key} if key else {}
    with anyio.fail_after(180):
        if transport == "sse":
            async with (
                sse_client(f"{base_url}/mcp/sse", headers=headers) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await work(session)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(f"{base_url}/mcp", http_client=http) as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await work(session)


def in_session(transport: str, base_url: str, key: str | None, work: Work) -> Any:
    return anyio.run(_in_session, transport, base_url, key, work)


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def wait_for(session: ClientSession, job_id: str, *statuses: str, timeout: float = 90) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            job = data(await session.call_tool("get_booking", {"job_id": job_id}))
            if job["status"] in statuses:
                return job
            await anyio.sleep(0.3)


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
def test_an_assistant_books_a_brief_over_mcp_through_the_real_worker(make_stack, brief, transport):
    stack = make_stack()
    url = stack.web_url

    # Refused before MCP without a key, and the official client cannot even initialize.
    assert httpx.post(f"{url}/mcp", json={}).status_code == 401
    assert httpx.get(f"{url}/mcp/sse").json() == {"detail": "Invalid or missing API key"}
    with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the 401 differently per transport
        in_session(transport, url, None, lambda s: s.list_tools())

    # A read-only key reads but cannot book.
    _, reader = api_key_create(name="reporting", scopes=[Scope.READ])

    async def read_only(session: ClientSession) -> tuple[CallToolResult, CallToolResult]:
        return await session.call_tool("list_bookings", {}), await session.call_tool("create_booking", {"brief": brief})

    listed, refused = in_session(transport, url, reader, read_only)
    assert not listed.is_error
    assert refused.is_error and refused.content[0].text == "This API key lacks the 'write' scope"

    async def assistant(session: ClientSession) -> dict[str, Any]:
        seen: dict[str, Any] = {"tools": {t.name for t in (await session.list_tools()).tools}}
        for name in ("get_setup_status", "health_check", "get_config", "review_budgets", "list_deals"):
            seen[name] = data(await session.call_tool(name, {}))
        seen["search_products"] = data(await session.call_tool("search_products", {"channel": "ctv", "limit": 3}))

        created = data(await session.call_tool("create_booking", {"brief": brief}))
        job_id = created["job_id"]
        waiting = await wait_for(session, job_id, "awaiting_approval", "failed")
        assert waiting["status"] == "awaiting_approval", waiting
        seen["waiting"] = waiting
        seen["campaigns"] = data(await session.call_tool("list_campaigns", {"status": "awaiting_approval"}))
        seen["bookings"] = data(await session.call_tool("list_bookings", {"status": "awaiting_approval"}))
        seen["approval"] = data(
            await session.call_tool("approve_recommendations", {"job_id": job_id, "approve_all": True})
        )
        seen["done"] = await wait_for(session, job_id, "completed", "failed")
        seen["campaign"] = data(await session.call_tool("get_campaign_status", {"campaign_id": job_id}))
        seen["pacing"] = data(await session.call_tool("check_pacing", {"campaign_id": job_id}))
        seen["budgets"] = data(await session.call_tool("review_budgets", {}))
        seen["deals"] = data(await session.call_tool("list_deals", {}))
        seen["events"] = data(await session.call_tool("list_events", {"flow_id": job_id, "limit": 500}))
        seen["again"] = await session.call_tool("approve_recommendations", {"job_id": job_id, "approve_all": True})
        return seen

    seen = in_session(transport, url, API_KEY, assistant)
    assert seen["tools"] == EXPECTED_TOOLS

    assert seen["get_setup_status"]["setup_complete"] is True
    health = seen["health_check"]
    assert health["services"]["database"]["status"] == "healthy"
    assert health["services"]["broker"]["status"] == "healthy"
    assert health["services"]["seller_connections"]["status"] == "configured"
    # The workers' heartbeats, on either broker.
    assert health["services"]["worker"]["status"] == "healthy" and health["services"]["worker"]["workers"]
    assert health["status"] == "healthy"
    assert API_KEY not in str(seen["get_config"])
    assert seen["search_products"]["sellers_searched"] == 1 and seen["search_products"]["results"]
    assert seen["review_budgets"]["campaign_count"] == 0 and seen["list_deals"]["total"] == 0

    waiting = seen["waiting"]
    assert waiting["recommendations"] and sum(r["cost"] for r in waiting["recommendations"]) <= brief["budget"]
    assert [c["campaign_id"] for c in seen["campaigns"]["campaigns"]] == [waiting["job_id"]]
    assert [j["job_id"] for j in seen["bookings"]["jobs"]] == [waiting["job_id"]]
    assert seen["approval"]["status"] == "booking"
    assert seen["approval"]["approved_count"] == len(waiting["recommendations"])

    done = seen["done"]
    assert done["status"] == "completed", done
    assert len(done["booked_lines"]) == len(waiting["recommendations"])
    deal_ids = {line["deal_id"] for line in done["booked_lines"]}
    assert {d["deal_id"] for d in seen["deals"]["deals"]} == deal_ids
    seller = httpx.Client(base_url=stack.seller_url)
    assert all(seller.get(f"/api/v1/deals/{deal_id}").status_code == 200 for deal_id in deal_ids)

    assert seen["campaign"]["status"] == "completed" and seen["campaign"]["pacing"]["status"] == "no_data"
    assert seen["campaign"]["booked"] == pytest.approx(done["total_cost"])
    assert seen["pacing"]["status"] == "no_data"
    assert seen["budgets"]["totals"]["booked"] == pytest.approx(done["total_cost"])
    kinds = {e["event_type"] for e in seen["events"]["events"]}
    assert {"campaign.created", "approval.requested", "approval.granted", "deal.booked"} <= kinds
    assert seen["again"].is_error and "only a job awaiting approval" in seen["again"].content[0].text

    # What MCP answered is what REST answers.
    rest = httpx.get(f"{url}/bookings/{done['job_id']}", headers={"X-API-Key": API_KEY}).json()
    assert rest["booked_lines"] == done["booked_lines"] and rest["status"] == "completed"
