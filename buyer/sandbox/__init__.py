"""Sandbox seller: a standalone HTTP server speaking the reference IAB seller agent's REST protocol.

It lets the buyer run and be tested offline: a seeded, deterministic catalog, tiered quotes, deals,
negotiation, simulated delivery and optional fault injection. It has no Django dependency.

    from buyer.sandbox import create_app
    app = create_app(catalog="premium-video", api_keys={"k-agency": "agency"})

or from a shell: ``python -m buyer.sandbox --port 8010``.
"""

from __future__ import annotations

from buyer.sandbox.app import create_app

__all__ = ["create_app"]
