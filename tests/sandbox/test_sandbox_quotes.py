"""POST/GET /api/v1/quotes: tier pricing, targets, validation, errors, idempotency, expiry."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from ._support import Clock, micros, product_id, quote_body, usd

HOMEPAGE = "Meridian News - Homepage Takeover"  # base $18.00, floor $12.00, PG+PD, min 100k, 4M available
CTV_DRAMA = "Brightline CTV - Premium Drama"  # base $38.00, floor $30.00, PG only, min 250k, 20M available


def _quote(client: TestClient, body: dict, **headers: str) -> dict:
    response = client.post("/api/v1/quotes", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["quote"]


def test_public_quote(client: TestClient) -> None:
    quote = _quote(client, quote_body(product_id(client, HOMEPAGE), "q-public"))
    assert quote["quote_id"].startswith("qt-") and len(quote["quote_id"]) == 15
    assert quote["status"] == "available"
    assert quote["buyer_tier"] == "public"
    assert quote["pricing"]["base_cpm"] == usd("18.00")
    assert quote["pricing"]["final_cpm"] == usd("18.00")
    assert quote["pricing"]["tier_discount_pct"] == 0.0
    assert quote["pricing"]["rationale"] == "Base price: $18.00 CPM | Final price: $18.00 CPM"
    assert quote["terms"] == {
        "impressions": 500_000,
        "flight_start": "2026-12-01",
        "flight_end": "2026-12-31",
        "guaranteed": False,
        "grps": None,
        "guaranteed_grps": None,
        "target_demo": None,
    }
    assert quote["seller_id"] == "sandbox-seller-default"
    assert quote["deal_id"] is None


@pytest.mark.parametrize(
    ("headers", "tier", "final", "rationale"),
    [
        ({"X-Api-Key": "key-seat"}, "seat", "17.10", "Seat tier: -5%"),
        ({"X-Api-Key": "key-agency"}, "agency", "16.20", "Agency tier: -10%"),
        ({"Authorization": "Bearer key-advertiser"}, "advertiser", "15.30", "Advertiser tier: -15%"),
    ],
)
def test_api_key_sets_the_tier(
    client: TestClient, headers: dict[str, str], tier: str, final: str, rationale: str
) -> None:
    quote = _quote(client, quote_body(product_id(client, HOMEPAGE), f"q-{tier}"), **headers)
    assert quote["buyer_tier"] == tier
    assert quote["pricing"]["final_cpm"] == usd(final)
    assert rationale in quote["pricing"]["rationale"]
    assert f"Final price: ${final} CPM" in quote["pricing"]["rationale"]


def test_agency_rationale_like_the_reference(client: TestClient) -> None:
    quote = _quote(client, quote_body(product_id(client, HOMEPAGE), "q-r"), **{"X-Api-Key": "key-agency"})
    assert quote["pricing"]["rationale"] == (
        "Base price: $18.00 CPM | Agency tier: -10% | Final price: $16.20 CPM | (Total savings: 10.0%)"
    )
    assert quote["pricing"]["tier_discount_pct"] == 10.0


def test_buyer_identity_without_key_is_priced_public(client: TestClient) -> None:
    identity = {"seat_id": "seat-1", "agency_id": "agency-1", "advertiser_id": "adv-1", "dsp_platform": "ttd"}
    quote = _quote(client, quote_body(product_id(client, HOMEPAGE), "q-id", buyer_identity=identity))
    assert quote["buyer_tier"] == "public"
    assert quote["pricing"]["final_cpm"] == usd("18.00")


def test_unknown_api_key_is_401(client: TestClient) -> None:
    response = client.post(
        "/api/v1/quotes", json=quote_body(product_id(client, HOMEPAGE), "q-bad"), headers={"X-Api-Key": "nope"}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API key"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_volume_discount(client: TestClient) -> None:
    pid = product_id(client, CTV_DRAMA)
    five = _quote(client, quote_body(pid, "q-v5", deal_type="PG", impressions=5_000_000))
    ten = _quote(client, quote_body(pid, "q-v10", deal_type="PG", impressions=10_000_000))
    assert five["pricing"]["volume_discount_pct"] == 5.0
    assert five["pricing"]["final_cpm"] == usd("36.10")
    assert ten["pricing"]["volume_discount_pct"] == 10.0
    # 38 x 0.9 = 34.20 is still above the $30 floor.
    assert ten["pricing"]["final_cpm"] == usd("34.20")
    keyed = _quote(
        client,
        quote_body(pid, "q-v10-adv", deal_type="PG", impressions=10_000_000),
        **{"X-Api-Key": "key-advertiser"},
    )
    # 38 x 0.85 x 0.9 = 29.07 is below the floor: the floor wins.
    assert keyed["pricing"]["final_cpm"] == usd("30.00")
    assert "Floor enforced: $30.00 CPM" in keyed["pricing"]["rationale"]


def test_target_cpm_between_floor_and_price_becomes_the_price(client: TestClient) -> None:
    pid = product_id(client, HOMEPAGE)
    quote = _quote(client, quote_body(pid, "q-t", target_cpm=usd("13.00")), **{"X-Api-Key": "key-agency"})
    assert quote["pricing"]["base_cpm"] == usd("18.00")
    assert quote["pricing"]["final_cpm"] == usd("13.00")
    assert "Buyer target accepted: $13.00 CPM" in quote["pricing"]["rationale"]
    above = _quote(client, quote_body(pid, "q-t-above", target_cpm=usd("20.00")))
    assert above["pricing"]["final_cpm"] == usd("18.00")
    below_floor = _quote(client, quote_body(pid, "q-t-below", target_cpm=usd("11.99")))
    assert below_floor["pricing"]["final_cpm"] == usd("18.00")


def test_float_target_cpm_is_422_like_the_reference(client: TestClient) -> None:
    body = {"product_id": product_id(client, HOMEPAGE), "deal_type": "PD", "impressions": 500000, "target_cpm": 12.5}
    response = client.post("/api/v1/quotes", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail == [
        {"type": "missing", "loc": ["body", "idempotency_key"], "msg": "Field required", "input": body},
        {
            "type": "model_attributes_type",
            "loc": ["body", "target_cpm"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": 12.5,
        },
    ]
    keyed = client.post("/api/v1/quotes", json={**body, "idempotency_key": "q-float"})
    assert [e["loc"] for e in keyed.json()["detail"]] == [["body", "target_cpm"]]


def test_malformed_bodies_are_422(client: TestClient) -> None:
    not_json = client.post("/api/v1/quotes", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 422
    assert not_json.json()["detail"][0]["type"] == "json_invalid"
    empty = client.post("/api/v1/quotes", content=b"")
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["loc"] == ["body"]
    bad_deal = client.post("/api/v1/quotes", json=quote_body("prod-x", "q", deal_type="XX"))
    assert bad_deal.json()["detail"][0]["loc"] == ["body", "deal_type"]


@pytest.mark.parametrize("impressions", [None, 0])
def test_pg_without_impressions_is_400(client: TestClient, impressions: int | None) -> None:
    body = quote_body(product_id(client, HOMEPAGE), "q-pg", deal_type="PG", impressions=impressions)
    response = client.post("/api/v1/quotes", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "detail": {
            "error": "pg_requires_impressions",
            "message": "Programmatic Guaranteed deals require an impressions count.",
        }
    }


def test_pg_quote_is_guaranteed(client: TestClient) -> None:
    quote = _quote(client, quote_body(product_id(client, HOMEPAGE), "q-pg-ok", deal_type="PG", impressions=2_000_000))
    assert quote["deal_type"] == "PG"
    assert quote["terms"]["guaranteed"] is True


def test_unknown_product_is_404(client: TestClient) -> None:
    response = client.post("/api/v1/quotes", json=quote_body("nope", "q-404"))
    assert response.status_code == 404
    assert response.json() == {
        "detail": {"error": "product_not_found", "message": "Product 'nope' not found in catalog."}
    }


def test_unsupported_deal_type_and_price_on_request_are_400(client: TestClient) -> None:
    pa_on_pg_only = client.post(
        "/api/v1/quotes", json=quote_body(product_id(client, CTV_DRAMA), "q-pa", deal_type="PA")
    )
    assert pa_on_pg_only.status_code == 400
    assert pa_on_pg_only.json()["detail"]["error"] == "unsupported_capability"
    assert pa_on_pg_only.json()["detail"]["unsupported"] == [{"capability": "deal_type:PA", "path": "deal_type"}]
    on_request = client.post("/api/v1/quotes", json=quote_body(product_id(client, "Metro Screens"), "q-por"))
    assert on_request.status_code == 400
    assert on_request.json()["detail"]["error"] == "unsupported_capability"
    linear = client.post(
        "/api/v1/quotes", json=quote_body(product_id(client, HOMEPAGE), "q-ltv", media_type="linear_tv")
    )
    assert linear.status_code == 400
    assert linear.json()["detail"]["error"] == "unsupported_capability"


@pytest.mark.parametrize(
    ("impressions", "code"), [(50_000, "below_minimum_impressions"), (4_000_001, "insufficient_inventory")]
)
def test_impressions_outside_the_product_limits_are_400(client: TestClient, impressions: int, code: str) -> None:
    response = client.post(
        "/api/v1/quotes", json=quote_body(product_id(client, HOMEPAGE), "q-imp", impressions=impressions)
    )
    assert response.status_code == 400
    assert response.json()["detail"]["error"] == code


def test_idempotent_replay_and_conflict(client: TestClient) -> None:
    body = quote_body(product_id(client, HOMEPAGE), "q-idem")
    first = _quote(client, body)
    # Same key, same body (key order does not matter): the same quote, not a second one.
    replay = _quote(client, dict(reversed(list(body.items()))))
    assert replay == first
    conflict = client.post("/api/v1/quotes", json={**body, "impressions": 600_000})
    assert conflict.status_code == 409
    assert conflict.json() == {
        "detail": {
            "error": "idempotency_conflict",
            "message": "idempotency_key 'q-idem' was already used for a different quote request.",
            "unsupported": [],
        }
    }
    # Keys are scoped per caller: another buyer may use the same key for its own quote.
    other = _quote(client, {**body, "impressions": 600_000}, **{"X-Api-Key": "key-agency"})
    assert other["quote_id"] != first["quote_id"]


def test_replay_reports_the_current_status(client: TestClient) -> None:
    body = quote_body(product_id(client, HOMEPAGE), "q-then-book")
    quote = _quote(client, body)
    deal = client.post("/api/v1/deals", json={"idempotency_key": "d-1", "quote_id": quote["quote_id"]}).json()["deal"]
    replay = _quote(client, body)
    assert replay["quote_id"] == quote["quote_id"]
    assert replay["status"] == "booked"
    assert replay["deal_id"] == deal["deal_id"]


def test_get_quote(client: TestClient) -> None:
    quote = _quote(client, quote_body(product_id(client, HOMEPAGE), "q-get"))
    fetched = client.get(f"/api/v1/quotes/{quote['quote_id']}")
    assert fetched.status_code == 200
    assert fetched.json() == {"quote": quote}
    missing = client.get("/api/v1/quotes/qt-nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": {"error": "quote_not_found", "message": "Quote 'qt-nope' not found."}}


def test_quotes_expire_after_24_hours(client: TestClient, clock: Clock) -> None:
    body = quote_body(product_id(client, HOMEPAGE), "q-exp")
    quote = _quote(client, body)
    assert quote["created_at"] == "2026-11-23T15:00:00.000000Z"
    assert quote["expires_at"] == "2026-11-24T15:00:00.000000Z"
    clock.advance(hours=23, minutes=59)
    assert client.get(f"/api/v1/quotes/{quote['quote_id']}").status_code == 200
    clock.advance(minutes=1)
    gone = client.get(f"/api/v1/quotes/{quote['quote_id']}")
    assert gone.status_code == 410
    assert gone.json()["detail"]["error"] == "quote_expired"
    assert _quote(client, body)["status"] == "expired"
    booking = client.post("/api/v1/deals", json={"idempotency_key": "d-exp", "quote_id": quote["quote_id"]})
    assert booking.status_code == 400
    assert booking.json()["detail"]["error"] == "quote_expired"


def test_default_flight_when_dates_are_omitted(client: TestClient, clock: Clock) -> None:
    body = quote_body(product_id(client, HOMEPAGE), "q-noflight")
    del body["flight_start"], body["flight_end"]
    quote = _quote(client, body)
    assert quote["terms"]["flight_start"] == "2026-11-23"
    assert quote["terms"]["flight_end"] == "2026-12-23"


def test_money_is_integer_micros(client: TestClient) -> None:
    quote = _quote(client, quote_body(product_id(client, HOMEPAGE), "q-m", target_cpm=usd("12.345")))
    # A sub-cent target is rounded to the cent, half up, never through a float.
    assert quote["pricing"]["final_cpm"]["amount_micros"] == micros("12.35")
