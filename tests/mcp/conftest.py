"""Fixtures for the MCP server: in-process calls through the official client, and the live stack."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult

from buyer.apikeys.services import Principal
from buyer.mcp.auth import acting_as
from buyer.mcp.server import build_mcp_server
from tests.e2e.conftest import brief, make_stack  # noqa: F401 - fixtures for the end-to-end tests

ADMIN = Principal(name="test admin", scopes=frozenset({"admin"}), api_key_id=1)
WRITER = Principal(name="booking bot", scopes=frozenset({"read", "write"}), api_key_id=2)
READER = Principal(name="reporting", scopes=frozenset({"read"}), api_key_id=3)


@pytest.fixture
def server() -> MCPServer:
    return build_mcp_server()


def call(server: MCPServer, name: str, arguments: dict[str, Any] | None = None, *, as_: Principal | None = ADMIN):
    """Call one tool through the official client, in process (the tool runs on the SDK's worker thread)."""

    async def run() -> CallToolResult:
        async with Client(server) as client:
            return await client.call_tool(name, arguments or {})

    if as_ is None:
        return anyio.run(run)
    with acting_as(as_):
        return anyio.run(run)


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text  # type: ignore[union-attr]


@pytest.fixture
def dispatched(monkeypatch) -> list[str]:
    """Jobs the services would hand to Celery; nothing reaches a broker in these tests."""
    from campaigns import services

    sent: list[str] = []
    monkeypatch.setattr(services, "job_dispatch", lambda job: sent.append(str(job.pk)))
    return sent
