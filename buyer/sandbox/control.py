"""A client for the sandbox seller's own control routes (``/_sandbox/...``), which no real seller has.

Only demos and tests use it: it tells a sandbox seller how a deal should deliver. The buyer's seller clients
(``buyer.sellers``) never call these routes.
"""

from __future__ import annotations

from typing import Any

import httpx

TIMEOUT = 5.0


class NotASandbox(Exception):
    """The address does not answer as a sandbox seller."""


def delivery_profiles(base_url: str) -> dict[str, Any]:
    """The seller's delivery profiles; ``NotASandbox`` when it has no control routes."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/_sandbox/delivery", timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise NotASandbox(f"{base_url}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise NotASandbox(f"{base_url}: no sandbox control routes (HTTP {response.status_code})")
    return response.json()


def set_deal_profile(base_url: str, deal_id: str, profile: str) -> None:
    """Make one deal deliver by ``profile`` (``under:0.7``, ``over:1.15``, ``on_pace``…)."""
    response = httpx.put(
        f"{base_url.rstrip('/')}/_sandbox/delivery/deals/{deal_id}", json={"profile": profile}, timeout=TIMEOUT
    )
    if response.status_code != 200:
        raise NotASandbox(
            f"{base_url}: profile for {deal_id} refused (HTTP {response.status_code}: {response.text[:200]})"
        )
