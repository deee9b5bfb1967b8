"""Sandbox AdCP seller: a standalone AdCP 3.x sales agent over MCP (Streamable HTTP) with mock inventory.

It lets the buyer book at an AdCP seller offline and be tested against one: a seeded, deterministic catalog
(every pricing shape: fixed and floor-only CPM, vCPM, CPCV, flat rate), ``create_media_buy`` answered at once
or as an asynchronous task (``submitted``, polled with ``get_task_status``) that completes after a delay on its
clock, may wait in ``input-required`` until approved, or never finishes; delivery that accrues over the flight;
idempotency keys on every mutation; fault knobs for latency and malformed answers. It is built on the official
``adcp`` library's server kit and has no Django dependency.

    from buyer.sandbox_adcp import create_app
    app = create_app(catalog="premium-video", approval_delay=30)

or from a shell: ``python -m buyer.sandbox_adcp --port 8020`` (MCP at ``http://127.0.0.1:8020/mcp``).
"""

from __future__ import annotations

from buyer.sandbox_adcp.app import create_app

__all__ = ["create_app"]
