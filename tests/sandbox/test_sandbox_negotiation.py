"""POST /api/v1/negotiations/messages: rounds, acceptance, rejection, closure, idempotency, booking after."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from buyer.sandbox.pricing import MAX_ROUNDS

from ._support import micros, product_id, quote_body, usd

CTV_DRAMA = "Brightline CTV - Premium Drama"  # base $38.00, floor $30.00 → public target $34.00
MESSAGES = "/api/v1/negotiations/messages"


def _quote(client: TestClient, key: str, **headers: str) -> dict:
    body = quote_body(product_id(client, CTV_DRAMA), key, deal_type="PG", impressions=1_000_000)
    response = client.post("/api/v1/quotes", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["quote"]


def _say(client: TestClient, key: str, quote_id: str | None, action: str, price: str | None = None, **extra: str):
    body: dict = {"idempotency_key": key, "action": action, **extra}
    if quote_id is not None:
        body["quote_id"] = quote_id
    if price is not None:
        body["buyer_price"] = usd(price)
    return client.post(MESSAGES, json=body)


def test_open_below_floor_counters_at_the_floor(client: TestClient) -> None:
    quote = _quote(client, "q-1")
    response = _say(client, "n-1", quote["quote_id"], "counter", "25.00")
    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"neg-[0-9a-f]{8}", body["negotiation_id"])
    assert body["status"] == "active"
    assert body["rounds_remaining"] == 2
    rnd = body["round"]
    assert rnd["round_number"] == 1
    assert rnd["action"] == "counter"
    assert rnd["buyer_price"] == usd("25.00")
    assert rnd["seller_price"] == usd("30.00")
    assert rnd["concession_pct"] == rnd["cumulative_concession_pct"] == float(Decimal(8) / Decimal(38))
    assert rnd["rationale"].startswith("Buyer offer $25.00 is below our floor. Countering at the floor price $30.00")


def test_counter_then_accept_then_book_at_the_negotiated_price(client: TestClient) -> None:
    quote = _quote(client, "q-2")
    opened = _say(client, "n-2a", quote["quote_id"], "counter", "31.00").json()
    neg_id = opened["negotiation_id"]
    # Between floor and target: the seller moves halfway from its quote price ($38) to its target ($34).
    assert opened["round"]["seller_price"] == usd("36.00")
    second = _say(client, "n-2b", quote["quote_id"], "counter", "32.00").json()  # continued by quote_id only
    assert second["round"]["seller_price"] == usd("34.00")
    assert second["rounds_remaining"] == 1
    accepted = _say(client, "n-2c", quote["quote_id"], "accept").json()
    assert second["negotiation_id"] == accepted["negotiation_id"] == neg_id
    assert accepted["status"] == "accepted"
    assert accepted["rounds_remaining"] == 0
    assert accepted["round"]["action"] == "accept"
    assert accepted["round"]["seller_price"] == usd("34.00")

    deal = client.post("/api/v1/deals", json={"idempotency_key": "d-2", "quote_id": quote["quote_id"]}).json()["deal"]
    assert deal["pricing"]["final_cpm"] == usd("34.00")
    assert deal["openrtb_params"]["bidfloor"] == usd("34.00")
    assert deal["pricing"]["base_cpm"] == usd("38.00")
    assert deal["pricing"]["rationale"].endswith(f"| Negotiated to $34.00 CPM ({neg_id})")


def test_buyer_price_at_or_above_target_is_accepted_at_that_price(client: TestClient) -> None:
    quote = _quote(client, "q-3")
    body = _say(client, "n-3", quote["quote_id"], "counter", "34.50").json()
    assert body["status"] == "accepted"
    assert body["round"]["action"] == "accept"
    assert body["round"]["seller_price"] == usd("34.50")
    assert body["round"]["rationale"] == "Buyer price meets or exceeds seller target. Deal accepted."
    assert body["rounds_remaining"] == MAX_ROUNDS - 1


def test_meeting_the_floor_counter_is_accepted(client: TestClient) -> None:
    """The reference flow (nego2_*): floor counter, then a buyer price above it closes the deal."""
    quote = _quote(client, "q-4")
    _say(client, "n-4a", quote["quote_id"], "counter", "25.00")
    closing = _say(client, "n-4b", quote["quote_id"], "counter", "31.00").json()
    assert closing["status"] == "accepted"
    assert closing["round"]["round_number"] == 2
    assert closing["round"]["seller_price"] == usd("31.00")
    assert closing["round"]["cumulative_concession_pct"] == float(Decimal(8) / Decimal(38))


def test_reject_closes_the_negotiation(client: TestClient) -> None:
    quote = _quote(client, "q-5")
    _say(client, "n-5a", quote["quote_id"], "counter", "31.00")
    rejected = _say(client, "n-5b", quote["quote_id"], "reject").json()
    assert rejected["status"] == "rejected"
    assert rejected["round"]["action"] == "reject"
    assert rejected["rounds_remaining"] == 0
    closed = _say(client, "n-5c", quote["quote_id"], "counter", "33.00")
    assert closed.status_code == 400
    assert closed.json() == {"detail": "Negotiation is rejected, cannot counter"}
    deal = client.post("/api/v1/deals", json={"idempotency_key": "d-5", "quote_id": quote["quote_id"]}).json()["deal"]
    assert deal["pricing"]["final_cpm"] == usd("38.00")  # no agreement: the quote's price stands


def test_accepted_negotiation_refuses_more_counters(client: TestClient) -> None:
    quote = _quote(client, "q-6")
    _say(client, "n-6a", quote["quote_id"], "counter", "35.00")
    after = _say(client, "n-6b", quote["quote_id"], "counter", "30.00")
    assert after.status_code == 400
    assert after.json() == {"detail": "Negotiation is accepted, cannot counter"}
    # Accepting an agreed negotiation again just restates the agreement (nego2_accept.json).
    again = _say(client, "n-6c", quote["quote_id"], "accept")
    assert again.status_code == 200
    assert again.json()["status"] == "accepted"
    assert again.json()["rounds_remaining"] == 0


def test_last_round_below_target_is_rejected(client: TestClient) -> None:
    quote = _quote(client, "q-7")
    prices = [_say(client, f"n-7{i}", quote["quote_id"], "counter", "31.00").json() for i in range(MAX_ROUNDS)]
    assert [p["status"] for p in prices] == ["active", "active", "rejected"]
    assert [p["round"]["seller_price"] for p in prices] == [usd("36.00"), usd("34.00"), usd("34.00")]
    assert prices[-1]["round"]["action"] == "reject"


def test_final_offer_below_target_is_rejected_at_once(client: TestClient) -> None:
    quote = _quote(client, "q-8")
    body = _say(client, "n-8", quote["quote_id"], "final_offer", "32.00").json()
    assert body["status"] == "rejected"
    assert body["round"]["seller_price"] == usd("38.00")


def test_validation_of_prices_against_actions(client: TestClient) -> None:
    quote = _quote(client, "q-9")
    missing = _say(client, "n-9a", None, "counter", negotiation_id="neg-16ced7b3")
    assert missing.status_code == 422
    assert missing.json() == {
        "detail": [
            {
                "type": "value_error",
                "loc": ["body"],
                "msg": "Value error, action 'counter' requires buyer_price",
                "input": {"idempotency_key": "n-9a", "action": "counter", "negotiation_id": "neg-16ced7b3"},
                "ctx": {"error": {}},
            }
        ]
    }
    assert _say(client, "n-9b", quote["quote_id"], "final_offer").status_code == 422
    forbidden = _say(client, "n-9c", quote["quote_id"], "reject", "30.00")
    assert forbidden.status_code == 422
    assert "must not carry buyer_price" in forbidden.json()["detail"][0]["msg"]
    float_price = client.post(
        MESSAGES,
        json={"idempotency_key": "n-9d", "action": "counter", "quote_id": quote["quote_id"], "buyer_price": 31.0},
    )
    assert float_price.status_code == 422
    assert float_price.json()["detail"][0]["loc"] == ["body", "buyer_price"]


def test_a_negotiation_id_alone_or_beside_the_quote_id_is_proposal_not_found(client: TestClient) -> None:
    quote = _quote(client, "q-10")
    neg_id = _say(client, "n-10a", quote["quote_id"], "counter", "31.00").json()["negotiation_id"]
    alone = _say(client, "n-10b", None, "counter", "32.00", negotiation_id=neg_id)
    assert alone.status_code == 404
    assert alone.json() == {"detail": "Proposal not found"}
    assert _say(client, "n-10c", "qt-nope", "counter", "32.00").json() == {"detail": "Proposal not found"}
    beside = _say(client, "n-10d", quote["quote_id"], "counter", "32.00", negotiation_id=neg_id)
    assert (beside.status_code, beside.json()) == (404, {"detail": "Proposal not found"})  # as the reference


def test_negotiation_replay_and_conflict(client: TestClient) -> None:
    quote = _quote(client, "q-11")
    first = _say(client, "n-11", quote["quote_id"], "counter", "31.00")
    replay = _say(client, "n-11", quote["quote_id"], "counter", "31.00")
    assert replay.status_code == 200
    assert replay.json() == first.json()
    # A replay does not spend a round: the next new message is round 2.
    second = _say(client, "n-11b", quote["quote_id"], "counter", "32.00").json()
    assert second["round"]["round_number"] == 2
    conflict = _say(client, "n-11", quote["quote_id"], "counter", "33.00")
    assert conflict.status_code == 409
    assert conflict.json() == {
        "detail": {
            "error": "idempotency_conflict",
            "message": "idempotency_key 'n-11' was already used for a different negotiation message.",
            "unsupported": [],
        }
    }


def test_booked_quote_cannot_be_negotiated(client: TestClient) -> None:
    quote = _quote(client, "q-12")
    client.post("/api/v1/deals", json={"idempotency_key": "d-12", "quote_id": quote["quote_id"]})
    response = _say(client, "n-12", quote["quote_id"], "counter", "31.00")
    assert response.status_code == 409
    assert response.json()["detail"]["error"] == "quote_already_booked"


def test_tiered_quote_negotiates_from_its_own_price(client: TestClient) -> None:
    quote = _quote(client, "q-13", **{"X-Api-Key": "key-advertiser"})
    assert quote["pricing"]["final_cpm"] == usd("32.30")
    # Target = midpoint of floor $30 and $32.30 = $31.15.
    accepted = _say(client, "n-13", quote["quote_id"], "counter", "31.15", **{}).json()
    assert accepted["status"] == "accepted"


_counter = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tier=st.sampled_from([None, "key-seat", "key-agency", "key-advertiser"]),
    offers=st.lists(st.integers(min_value=0, max_value=4_500), min_size=1, max_size=4),
    final_last=st.booleans(),
)
def test_seller_counters_are_monotonic_and_never_below_the_floor(
    client: TestClient, tier: str | None, offers: list[int], final_last: bool
) -> None:
    n = next(_counter)
    headers = {"X-Api-Key": tier} if tier else {}
    quote = _quote(client, f"prop-q-{n}", **headers)
    quote_price = quote["pricing"]["final_cpm"]["amount_micros"]
    floor = micros("30.00")
    target = (floor + quote_price) // 2  # exact here: all prices are whole cents with even micros
    previous = quote_price
    for i, cents in enumerate(offers):
        action = "final_offer" if final_last and i == len(offers) - 1 else "counter"
        response = _say(client, f"prop-n-{n}-{i}", quote["quote_id"], action, f"{Decimal(cents) / 100}")
        if response.status_code == 400:  # closed earlier in the sequence
            assert response.json()["detail"].startswith("Negotiation is ")
            break
        body = response.json()
        seller = body["round"]["seller_price"]["amount_micros"]
        buyer = body["round"]["buyer_price"]["amount_micros"]
        assert body["round"]["round_number"] == i + 1 <= MAX_ROUNDS
        if body["status"] == "accepted":
            assert seller == buyer >= min(target, previous)
        elif body["status"] == "active":
            assert floor <= seller <= previous
            assert seller > buyer
            previous = seller
        else:
            assert body["status"] == "rejected"
            assert seller == previous
            assert i + 1 == MAX_ROUNDS or action == "final_offer"
