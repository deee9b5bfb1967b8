"""Delivery profiles: how a sandbox deal delivers, chosen per deal, per product or for the whole seller."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from buyer.sandbox.delivery import DEFAULT_PROFILE, parse_profile

from ._support import Clock, product_id, quote_body

HOMEPAGE = "Meridian News - Homepage Takeover"
BOOKED = 1_000_000
MID_FLIGHT = datetime(2026, 12, 16, 12, 0, tzinfo=UTC)  # half of the 31-day FLIGHT


def _book(client: TestClient, key: str) -> str:
    body = quote_body(product_id(client, HOMEPAGE), f"q-{key}", impressions=BOOKED)
    quote = client.post("/api/v1/quotes", json=body).json()["quote"]
    deal = client.post("/api/v1/deals", json={"idempotency_key": f"d-{key}", "quote_id": quote["quote_id"]})
    return deal.json()["deal"]["deal_id"]


def _performance(client: TestClient, deal_id: str, **params: str) -> dict:
    response = client.get(f"/api/v1/deals/{deal_id}/performance", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("text", "name", "factor", "cap", "status"),
    [
        ("under", "under", Decimal("0.7"), Decimal(1), ""),
        ("under:0.6", "under", Decimal("0.6"), Decimal(1), ""),
        ("OVER:1.2", "over", Decimal("1.2"), Decimal(1), ""),
        ("on-pace", "on_pace", Decimal(1), Decimal(1), ""),
        ("makegood", "makegood", Decimal("0.5"), Decimal(1), "makegood_pending"),
        ("partial_cancel", "partial_cancel", Decimal(1), Decimal("0.5"), "partially_canceled"),
        ("scatter", "scatter", None, Decimal("1.3"), ""),
    ],
)
def test_profiles_parse_with_their_paces_caps_and_statuses(text, name, factor, cap, status):
    profile = parse_profile(text)
    assert (profile.name, profile.factor, profile.cap, profile.status) == (name, factor, cap, status)


@pytest.mark.parametrize("text", ["fast", "under:x", "under:-1", "under:11", "stalled:0.5", ""])
def test_an_unknown_profile_or_pace_is_refused(text):
    with pytest.raises(ValueError):
        parse_profile(text)


def test_profiles_apply_per_deal_then_per_product_then_the_default(make_client):
    client = make_client(delivery_profiles={"*": "stalled"})
    clock = Clock(MID_FLIGHT.replace(month=11, day=23))
    client.app.state.sandbox.clock = clock
    pid = product_id(client, HOMEPAGE)
    first, second, third = _book(client, "a"), _book(client, "b"), _book(client, "c")
    client.put(f"/_sandbox/delivery/products/{pid}", json={"profile": "under:0.5"})
    client.put(f"/_sandbox/delivery/deals/{first}", json={"profile": "over"})
    other = make_client()  # a seller without profiles keeps its scatter default
    assert other.get("/_sandbox/delivery").json()["default"] == DEFAULT_PROFILE.label

    clock.now = MID_FLIGHT
    delivered = {deal: _performance(client, deal)["impressions_delivered"] for deal in (first, second, third)}

    assert delivered[first] == int(BOOKED * Decimal("0.5") * Decimal("1.15"))
    assert delivered[second] == delivered[third] == int(BOOKED * Decimal("0.5") * Decimal("0.5"))
    assert client.get("/_sandbox/delivery").json() == {
        "default": "stalled",
        "products": {pid: "under:0.5"},
        "deals": {first: "over:1.15"},
        "seed": 0,
    }


def test_over_delivery_stops_at_the_booked_impressions_and_reports_completion(client, clock):
    deal = _book(client, "over")
    client.put(f"/_sandbox/delivery/deals/{deal}", json={"profile": "over:1.15"})

    clock.now = datetime(2026, 12, 28, tzinfo=UTC)  # 27 of 31 days x 1.15 is past the goal
    perf = _performance(client, deal)

    assert perf["impressions_delivered"] == BOOKED
    assert (perf["status"], perf["delivery_pacing"]) == ("completed", "completed")


def test_makegood_and_partial_cancel_report_the_sellers_status(client, clock):
    makegood, partial = _book(client, "mg"), _book(client, "pc")
    client.put(f"/_sandbox/delivery/deals/{makegood}", json={"profile": "makegood"})
    client.put(f"/_sandbox/delivery/deals/{partial}", json={"profile": "partial_cancel"})
    clock.now = datetime(2027, 1, 5, tzinfo=UTC)

    assert _performance(client, makegood)["status"] == "makegood_pending"
    partial_perf = _performance(client, partial)
    assert (partial_perf["status"], partial_perf["impressions_delivered"]) == ("partially_canceled", BOOKED // 2)


def test_the_fault_profiles_answer_what_a_broken_seller_would(client, clock):
    backwards, negative = _book(client, "bw"), _book(client, "neg")
    client.put(f"/_sandbox/delivery/deals/{backwards}", json={"profile": "backwards"})
    client.put(f"/_sandbox/delivery/deals/{negative}", json={"profile": "negative"})
    clock.now = MID_FLIGHT

    first = _performance(client, backwards)["impressions_delivered"]
    assert _performance(client, backwards)["impressions_delivered"] == first - 1000
    assert _performance(client, negative)["impressions_delivered"] < 0


def test_as_of_answers_for_an_earlier_moment_but_never_the_future(client, clock):
    deal = _book(client, "asof")
    client.put(f"/_sandbox/delivery/deals/{deal}", json={"profile": "on_pace"})
    clock.now = MID_FLIGHT

    earlier = _performance(client, deal, as_of="2026-12-08T12:00:00Z")
    later = _performance(client, deal, as_of="2027-06-01T00:00:00Z")

    assert earlier["as_of"] == "2026-12-08T12:00:00.000000Z"
    assert (
        earlier["impressions_delivered"]
        < later["impressions_delivered"]
        == _performance(client, deal)["impressions_delivered"]
    )
    assert later["as_of"] == "2026-12-16T12:00:00.000000Z"  # capped at the seller's now


def test_the_control_routes_refuse_bad_profiles_and_unknown_targets(client, clock):
    deal = _book(client, "ctl")
    assert client.put(f"/_sandbox/delivery/deals/{deal}", json={"profile": "warp"}).status_code == 422
    assert client.put("/_sandbox/delivery/deals/DEMO-NOPE", json={"profile": "under"}).status_code == 404
    assert client.put("/_sandbox/delivery/products/prod-nope", json={"profile": "under"}).status_code == 404
    assert client.put("/_sandbox/delivery/default", json={}).status_code == 422
    assert client.put("/_sandbox/delivery/default", json={"profile": "on_pace"}).json()["default"] == "on_pace:1"


def test_create_app_refuses_a_profile_for_an_unknown_product():
    from buyer.sandbox import create_app

    with pytest.raises(ValueError, match="unknown product"):
        create_app(delivery_profiles={"prod-nope": "under"})
    with pytest.raises(ValueError, match="unknown delivery profile"):
        create_app(delivery_profiles={"*": "warp"})
