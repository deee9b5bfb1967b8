"""Fault injection for the buyer's error tests: latency before every task, and answers that break the schemas.

Both plug into the library's server hooks: latency is a skill middleware (it wraps every tool dispatch), the
malformed answers a response enhancer (it runs on each success payload before it is sent). A seller built
with ``malformed`` also turns off the library's response validation, which would otherwise refuse to send
them: the point is that the *buyer's* client must catch them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from adcp.server import SkillMiddleware, ToolContext


def latency(latency_ms: int) -> SkillMiddleware:
    """A skill middleware that waits ``latency_ms`` before every task."""

    async def delay(
        skill_name: str, params: dict[str, Any], context: ToolContext, call_next: Callable[[], Awaitable[Any]]
    ) -> Any:
        await anyio.sleep(latency_ms / 1000)
        return await call_next()

    return delay


def malform(method_name: str, result: dict[str, Any], context: ToolContext | None) -> None:
    """Break a success payload so it fails the AdCP response schema (mutates ``result`` in place).

    Capabilities stay intact so a buyer can still connect; error envelopes are left alone.
    """
    if "adcp_error" in result:
        return
    if method_name == "get_products":
        for product in result.get("products", []):
            product.pop("pricing_options", None)
            product["delivery_type"] = "sometimes"
    elif method_name == "create_media_buy":
        if "media_buy_id" in result:
            result.pop("packages", None)
            result["revision"] = "first"
        else:
            result.pop("task_id", None)
    elif method_name == "update_media_buy":
        result.pop("media_buy_id", None)
    elif method_name == "get_media_buys":
        for buy in result.get("media_buys", []):
            buy["status"] = "live"
            buy.pop("currency", None)
    elif method_name == "get_media_buy_delivery":
        result.pop("reporting_period", None)
    elif method_name == "get_task_status":
        result["status"] = "in_progress"
        result.pop("task_type", None)
    elif method_name == "list_creative_formats":
        for entry in result.get("formats", []):
            entry.pop("name", None)


__all__ = ["latency", "malform"]
