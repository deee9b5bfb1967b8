"""Helpers shared by the sandbox seller tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.fixtures import SELLER_SAMPLES

if TYPE_CHECKING:
    from starlette.testclient import TestClient

SAMPLES = SELLER_SAMPLES
API_KEYS = {"key-seat": "seat", "key-agency": "agency", "key-advertiser": "advertiser"}
FLIGHT = {"flight_start": "2026-12-01", "flight_end": "2026-12-31"}


def sample(name: str) -> Any:
    """A captured reference-seller response (tests/fixtures/seller-samples)."""
    return json.loads((SAMPLES / name).read_text())


def usd(dollars: str) -> dict[str, Any]:
    """Money from a dollar literal, exact."""
    return {"amount_micros": int(Decimal(dollars) * 1_000_000), "currency": "USD"}


def micros(dollars: str) -> int:
    return int(Decimal(dollars) * 1_000_000)


class Clock:
    """A settable UTC clock to install as ``app.state.sandbox.clock``."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def product_id(client: TestClient, name_prefix: str) -> str:
    """The id of the catalog product whose name starts with ``name_prefix``."""
    products = client.app.state.sandbox.catalog.products  # type: ignore[attr-defined]
    matches = [p.product_id for p in products if p.name.startswith(name_prefix)]
    assert len(matches) == 1, f"{name_prefix!r} matches {len(matches)} products"
    return matches[0]


def quote_body(pid: str, key: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "idempotency_key": key,
        "product_id": pid,
        "deal_type": "PD",
        "impressions": 500_000,
        **FLIGHT,
    }
    body.update(overrides)
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
