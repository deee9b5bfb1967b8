"""GET /api/v1/deals/{id}/performance: deterministic simulated delivery."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_FLOOR, Decimal

import pytest
from starlette.testclient import TestClient

from buyer.sandbox.delivery import delivery_factor, elapsed_fraction, simulate_delivery

from ._support import Clock, product_id, quote_body, usd

HOMEPAGE = "Meridian News - Homepage Takeover"  # $18.00 public


def _book(client: TestClient, key: str, impressions: int | None = 1_000_000) -> dict:
    body = quote_body(product_id(client, HOMEPAGE), f"q-{key}", impressions=impressions)
    quote = client.post("/api/v1/quotes", json=body).json()["quote"]
    return client.post("/api/v1/deals", json={"idempotency_key": f"d-{key}", "quote_id": quote["quote_id"]}).json()[
        "deal"
    ]


def _expected(deal_id: str, booked: int, fraction: Decimal) -> int:
    return int((Decimal(booked) * fraction * delivery_factor(deal_id)).to_integral_value(rounding=ROUND_FLOOR))


def test_nothing_delivers_before_the_flight(client: TestClient, clock: Clock) -> None:
    deal = _book(client, "before")
    perf = client.get(f"/api/v1/deals/{deal['deal_id']}/performance").json()
    assert perf == {
        "deal_id": deal["deal_id"],
        "impressions_delivered": 0,
        "impressions_booked": 1_000_000,
        "spend": usd("0"),
        "cpm": usd("18.00"),
        "pacing_pct": 0.0,
        "status": "not_started",
        "delivery_pacing": "not_started",
        "flight_start": "2026-12-01",
        "flight_end": "2026-12-31",
        "as_of": "2026-11-23T15:00:00.000000Z",
    }


def test_mid_flight_delivery_and_spend(client: TestClient, clock: Clock) -> None:
    deal = _book(client, "mid")
    deal_id = deal["deal_id"]
    clock.now = datetime(2026, 12, 16, 12, 0, tzinfo=UTC)  # 15.5 of 31 days: exactly half
    perf = client.get(f"/api/v1/deals/{deal_id}/performance").json()
    delivered = _expected(deal_id, 1_000_000, Decimal("0.5"))
    assert perf["impressions_delivered"] == delivered
    assert 350_000 <= delivered <= 650_000
    assert perf["spend"] == {"amount_micros": (delivered * 18_000_000 + 500) // 1000, "currency": "USD"}
    factor = delivery_factor(deal_id)
    assert perf["pacing_pct"] == pytest.approx(float(factor * 100), abs=0.06)
    # Deterministic: asking again at the same instant gives the same answer.
    assert client.get(f"/api/v1/deals/{deal_id}/performance").json() == perf


def test_after_the_flight_everything_due_has_delivered(client: TestClient, clock: Clock) -> None:
    deal = _book(client, "after")
    clock.now = datetime(2027, 1, 5, tzinfo=UTC)
    perf = client.get(f"/api/v1/deals/{deal['deal_id']}/performance").json()
    assert perf["impressions_delivered"] == _expected(deal["deal_id"], 1_000_000, Decimal(1))
    assert 700_000 <= perf["impressions_delivered"] <= 1_300_000


def test_delivery_uses_the_negotiated_cpm(client: TestClient, clock: Clock) -> None:
    body = quote_body(product_id(client, HOMEPAGE), "q-neg")
    quote = client.post("/api/v1/quotes", json=body).json()["quote"]
    client.post(
        "/api/v1/negotiations/messages",
        json={"idempotency_key": "n", "action": "counter", "quote_id": quote["quote_id"], "buyer_price": usd("16")},
    )
    deal = client.post("/api/v1/deals", json={"idempotency_key": "d-neg", "quote_id": quote["quote_id"]}).json()["deal"]
    assert deal["pricing"]["final_cpm"] == usd("16.00")
    clock.now = datetime(2027, 1, 5, tzinfo=UTC)
    perf = client.get(f"/api/v1/deals/{deal['deal_id']}/performance").json()
    assert perf["cpm"] == usd("16.00")
    assert perf["spend"]["amount_micros"] == (perf["impressions_delivered"] * 16_000_000 + 500) // 1000


def test_factors_spread_over_the_range() -> None:
    factors = [delivery_factor(f"DEMO-{i:012X}") for i in range(400)]
    assert all(Decimal("0.7") <= f <= Decimal("1.3") for f in factors)
    assert min(factors) < Decimal("0.8")
    assert max(factors) > Decimal("1.2")
    assert delivery_factor("DEMO-ABC") == delivery_factor("DEMO-ABC")


@pytest.mark.parametrize(
    ("now", "fraction"),
    [
        (datetime(2026, 11, 30, 23, 59, tzinfo=UTC), Decimal(0)),
        (datetime(2026, 12, 1, tzinfo=UTC), Decimal(0)),
        (datetime(2026, 12, 2, tzinfo=UTC), Decimal(1) / Decimal(31)),
        (datetime(2027, 1, 1, tzinfo=UTC), Decimal(1)),
        (datetime(2030, 1, 1, tzinfo=UTC), Decimal(1)),
    ],
)
def test_elapsed_fraction(now: datetime, fraction: Decimal) -> None:
    assert elapsed_fraction(date(2026, 12, 1), date(2026, 12, 31), now) == fraction


def test_delivery_is_capped_and_spend_is_exact() -> None:
    result = simulate_delivery(
        deal_id="DEMO-X",
        booked=1_234_567,
        cpm_micros=12_345_678,
        flight_start=date(2026, 1, 1),
        flight_end=date(2026, 1, 31),
        now=datetime(2026, 6, 1, tzinfo=UTC),
    )
    assert result.impressions <= 1_234_567 * 13 // 10
    assert result.spend_micros == (result.impressions * 12_345_678 + 500) // 1000
