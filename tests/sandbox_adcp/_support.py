"""Helpers shared by the AdCP sandbox seller tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
from adcp import ADCPClient, AgentConfig
from adcp.types import CreateMediaBuyRequest, GetTaskStatusRequest, UpdateMediaBuyRequest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

T = TypeVar("T")

ACCOUNT = {"brand": {"domain": "acme.example"}, "operator": "acme.example"}
BRAND = {"domain": "acme.example"}


class Clock:
    """A settable UTC clock for ``create_app(clock=...)``; starts at the current second, so dates follow today."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Seller:
    """A sandbox seller served on 127.0.0.1: its app, base URL and clock."""

    app: Any
    url: str
    clock: Clock

    @property
    def state(self) -> Any:
        return self.app.state.sandbox

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    def run(self, work: Callable[[ADCPClient], Awaitable[T]], *, token: str | None = "buyer-token", **kw: Any) -> T:
        """Open the library's client on this seller and run ``work`` with it."""

        async def session() -> T:
            config = AgentConfig(id="sandbox", agent_uri=self.mcp_url, protocol="mcp", auth_token=token, timeout=10)
            # account_policy stated so the library does not warn that its default will change.
            async with ADCPClient(config, account_policy="off", **kw) as client:
                return await work(client)

        return anyio.run(session)

    def raw_call(self, tool: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """One tool call with the bare MCP client, bypassing everything the AdCP client adds or checks."""

        async def session() -> tuple[bool, dict[str, Any]]:
            http_client = httpx2.AsyncClient(headers={"x-adcp-auth": "buyer-token"}, timeout=10)
            async with (
                streamable_http_client(self.mcp_url, http_client=http_client) as (read, write),
                ClientSession(read, write) as mcp,
            ):
                await mcp.initialize()
                result = await mcp.call_tool(tool, args)
            body = result.structured_content
            if body is None:
                text = "".join(block.text for block in result.content if isinstance(block, TextContent))
                body = json.loads(text)
            return bool(result.is_error), body

        return anyio.run(session)

    def control(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """A sandbox control route (``/_sandbox/...``): POST with a body, GET without."""
        if body is None and not path.endswith(("/approve", "/reject")):
            return httpx.get(f"{self.url}{path}", timeout=5)
        return httpx.post(f"{self.url}{path}", json=body, timeout=5)


def key() -> str:
    """A fresh idempotency key (32 characters, as the spec asks: unique per request)."""
    return uuid.uuid4().hex


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def package(product_id: str, option_id: str, budget: float, **extra: Any) -> dict[str, Any]:
    return {"product_id": product_id, "pricing_option_id": option_id, "budget": budget, **extra}


def buy_request(
    clock: Clock,
    *packages: dict[str, Any],
    start: timedelta = timedelta(0),
    days: float = 10,
    idempotency_key: str | None = None,
    **extra: Any,
) -> CreateMediaBuyRequest:
    """A create_media_buy request whose flight starts ``start`` after the sandbox's now and runs ``days``."""
    begins = clock.now + start
    return CreateMediaBuyRequest.model_validate(
        {
            "idempotency_key": idempotency_key or key(),
            "account": ACCOUNT,
            "brand": BRAND,
            "start_time": iso(begins),
            "end_time": iso(begins + timedelta(days=days)),
            "packages": list(packages),
            **extra,
        }
    )


def update_request(media_buy_id: str, **fields: Any) -> UpdateMediaBuyRequest:
    return UpdateMediaBuyRequest.model_validate(
        {"idempotency_key": key(), "account": ACCOUNT, "media_buy_id": media_buy_id, **fields}
    )


def status_request(task_id: str) -> GetTaskStatusRequest:
    return GetTaskStatusRequest(task_id=task_id, include_result=True)
