"""POST/GET /api/v1/deals: booking, replay, double booking, errors."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from ._support import product_id, quote_body, usd

HOMEPAGE = "Meridian News - Homepage Takeover"


def _quote_id(client: TestClient, key: str, **headers: str) -> str:
    body = quote_body(product_id(client, HOMEPAGE), key)
    return client.post("/api/v1/quotes", json=body, headers=headers).json()["quote"]["quote_id"]


def test_book_a_quote(client: TestClient) -> None:
    quote_id = _quote_id(client, "q-1")
    response = client.post("/api/v1/deals", json={"idempotency_key": "d-1", "quote_id": quote_id, "notes": "first buy"})
    assert response.status_code == 200
    body = response.json()
    assert body["audience_plan_snapshot"] is None
    deal = body["deal"]
    deal_id = deal["deal_id"]
    assert re.fullmatch(r"DEMO-[0-9A-F]{12}", deal_id)
    assert deal["status"] == "proposed"
    assert deal["quote_id"] == quote_id
    assert deal["deal_type"] == "PD"
    assert deal["pricing"]["final_cpm"] == usd("18.00")
    assert deal["activation_instructions"] == {
        "ttd": f"In The Trade Desk, create a new PMP deal with Deal ID: {deal_id}",
        "dv360": f"In DV360, add deal {deal_id} under Inventory > My Inventory > Deals",
        "xandr": f"In Xandr, navigate to Deals and enter Deal ID: {deal_id}",
    }
    assert deal["openrtb_params"] == {
        "id": deal_id,
        "bidfloor": usd("18.00"),
        "at": 1,
        "wseat": [],
        "wadomain": [],
    }
    assert deal["terms"]["impressions"] == 500_000
    # Booking binds the quote.
    quote = client.get(f"/api/v1/quotes/{quote_id}").json()["quote"]
    assert (quote["status"], quote["deal_id"]) == ("booked", deal_id)
    assert client.get(f"/api/v1/deals/{deal_id}").json() == body


def test_tier_and_seat_carry_into_the_deal(client: TestClient) -> None:
    quote_id = _quote_id(client, "q-agency", **{"X-Api-Key": "key-agency"})
    deal = client.post(
        "/api/v1/deals",
        json={"idempotency_key": "d-agency", "quote_id": quote_id, "buyer_identity": {"seat_id": "ttd-seat-9"}},
        headers={"X-Api-Key": "key-agency"},
    ).json()["deal"]
    assert deal["buyer_tier"] == "agency"
    assert deal["pricing"]["final_cpm"] == usd("16.20")
    assert deal["openrtb_params"]["wseat"] == ["ttd-seat-9"]


def test_booking_replay_returns_the_same_deal(client: TestClient) -> None:
    quote_id = _quote_id(client, "q-2")
    request = {"idempotency_key": "d-2", "quote_id": quote_id}
    first = client.post("/api/v1/deals", json=request).json()
    replay = client.post("/api/v1/deals", json=request)
    assert replay.status_code == 200
    assert replay.json() == first


def test_second_booking_with_a_new_key_is_409(client: TestClient) -> None:
    quote_id = _quote_id(client, "q-3")
    assert client.post("/api/v1/deals", json={"idempotency_key": "d-3", "quote_id": quote_id}).status_code == 200
    again = client.post("/api/v1/deals", json={"idempotency_key": "d-3-new", "quote_id": quote_id})
    assert again.status_code == 409
    assert again.json() == {
        "detail": {"error": "quote_already_booked", "message": "Quote status is 'booked', expected 'available'."}
    }


def test_same_key_for_another_quote_is_an_idempotency_conflict(client: TestClient) -> None:
    first, second = _quote_id(client, "q-4a"), _quote_id(client, "q-4b")
    assert client.post("/api/v1/deals", json={"idempotency_key": "d-4", "quote_id": first}).status_code == 200
    conflict = client.post("/api/v1/deals", json={"idempotency_key": "d-4", "quote_id": second})
    assert conflict.status_code == 409
    assert conflict.json()["detail"]["error"] == "idempotency_conflict"


def test_unknown_quote_and_deal_are_404(client: TestClient) -> None:
    response = client.post("/api/v1/deals", json={"idempotency_key": "d-5", "quote_id": "qt-nope"})
    assert response.status_code == 404
    assert response.json() == {"detail": {"error": "quote_not_found", "message": "Quote 'qt-nope' not found."}}
    missing = client.get("/api/v1/deals/DEMO-000000000000")
    assert missing.status_code == 404
    assert missing.json()["detail"]["error"] == "deal_not_found"
    assert client.get("/api/v1/deals/DEMO-000000000000/performance").status_code == 404


def test_booking_needs_an_idempotency_key(client: TestClient) -> None:
    response = client.post("/api/v1/deals", json={"quote_id": _quote_id(client, "q-6")})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "idempotency_key"]


def test_concurrent_bookings_of_one_quote_make_one_deal(client: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from buyer.sandbox.schemas import DealCreate
    from buyer.sandbox.state import Caller, SandboxError

    state = client.app.state.sandbox  # type: ignore[attr-defined]
    quote_id = _quote_id(client, "q-race")

    def book(i: int) -> int:
        try:
            state.book_deal(DealCreate(idempotency_key=f"race-{i}", quote_id=quote_id), Caller())
        except SandboxError as exc:
            return exc.status
        return 200

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(book, range(32)))
    assert statuses.count(200) == 1
    assert set(statuses) == {200, 409}


def test_booking_drift_leaves_a_quote_without_impressions_as_it_is(client: TestClient) -> None:
    """A PD quote may name no impressions: overbooking then has nothing to inflate (it raised a TypeError)."""
    from decimal import Decimal

    client.app.state.sandbox.overbook_pct = Decimal(20)  # type: ignore[attr-defined]
    body = quote_body(product_id(client, HOMEPAGE), "q-no-impressions")
    body.pop("impressions", None)
    quote = client.post("/api/v1/quotes", json=body).json()["quote"]
    assert quote["terms"].get("impressions") is None
    response = client.post("/api/v1/deals", json={"idempotency_key": "d-none", "quote_id": quote["quote_id"]})
    assert response.status_code == 200, response.text
    assert response.json()["deal"]["terms"].get("impressions") is None
