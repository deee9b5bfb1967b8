"""``list_bookings`` answered from the fast reads when the web process runs them (PostgreSQL): the same result as
the tool's own query, and the tool's own way whenever the fast read leaves it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult

from buyer import fastpath
from buyer.fastpath import FastReads, Route
from buyer.mcp.auth import acting_as
from buyer.mcp.server import build_mcp_server
from campaigns.fast_reads import ROUTES
from campaigns.models import JobStatus
from campaigns.schemas import JOB_OFFSET_MAX
from tests.factories import BookingJobFactory
from tests.mcp.conftest import READER, call, ok

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("needs_postgres")]

ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"limit": 2},
    {"limit": 2, "offset": 1},
    {"status": "failed"},
    {"status": "running", "limit": 200},
    {"offset": JOB_OFFSET_MAX},
    {"offset": 7},  # the fast read leaves this one (LEFT_TO_THE_TOOL): the tool's own query
]
LEFT_TO_THE_TOOL = "7"


def _leaving(route: Route) -> Route:
    """The route, leaving one offset to its caller as it leaves whatever it cannot answer."""

    async def handler(request: Any) -> bytes | None:
        return None if request.query.get("offset") == LEFT_TO_THE_TOOL else await route.handler(request)

    return replace(route, handler=handler)


async def _unexpected(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no HTTP request in this test")


def test_the_fast_answer_is_the_tools_own(settings):
    settings.WEB_FAST_READS = True
    BookingJobFactory.create_batch(3, status=JobStatus.FAILED)
    BookingJobFactory.create_batch(2, status=JobStatus.COMPLETED)
    expected = [ok(call(build_mcp_server(), "list_bookings", arguments, as_=READER)) for arguments in ARGUMENTS]
    reads = FastReads(_unexpected, [_leaving(route) for route in ROUTES], connections=2)

    async def run() -> list[CallToolResult]:
        async with reads.lifespan():
            assert fastpath.running() is reads and reads.db is not None
            await reads.db.pool.wait()
            async with Client(build_mcp_server()) as client:
                return [await client.call_tool("list_bookings", arguments) for arguments in ARGUMENTS]

    with acting_as(READER):
        results = anyio.run(run)
    assert [ok(result) for result in results] == expected
    assert (
        [result.content[0].text for result in results[:-1]]
        == [  # type: ignore[union-attr]
            result.content[0].text  # type: ignore[union-attr]
            for result in (
                call(build_mcp_server(), "list_bookings", arguments, as_=READER) for arguments in ARGUMENTS[:-1]
            )
        ]
    )
    assert len(reads.answers.entries) == len(ARGUMENTS) - 1  # every call but the last was the fast read's
    assert fastpath.running() is None
    assert expected[3]["total"] == 3 and expected[4]["jobs"] == []
