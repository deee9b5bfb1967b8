"""The sandbox answers with the reference seller's shapes: same keys, nested, as the captured samples."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from ._support import product_id, quote_body, sample, usd


def shape(value: Any) -> Any:
    """The key structure of a JSON value: dicts → {key: shape}, lists → shape of their first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


# Free-form maps whose keys are data (targeting dimensions), not schema.
FREE_FORM = frozenset({"content_targeting", "audience_targeting", "ad_product_targeting", "commercial_terms"})


def assert_same_keys(ours: Any, theirs: Any, path: str = "$") -> None:
    """Every dict present on both sides has the same key set; recurse where both sides have structure.

    Values may differ (including null on one side and an object on the other: content_targeting is
    null in one capture and an object in another), so only shared structure is compared.
    """
    if isinstance(ours, dict) and isinstance(theirs, dict):
        assert set(ours) == set(theirs), f"{path}: extra {set(ours) - set(theirs)}, missing {set(theirs) - set(ours)}"
        for key in ours:
            if key not in FREE_FORM:
                assert_same_keys(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(ours, list) and isinstance(theirs, list) and ours and theirs:
        for i, item in enumerate(ours):
            assert_same_keys(item, theirs[0], f"{path}[{i}]")


def _quote(client: TestClient, key: str, **overrides: Any) -> dict:
    body = quote_body(product_id(client, "Meridian News - Homepage Takeover"), key, **overrides)
    return client.post("/api/v1/quotes", json=body).json()


def test_products_like_products_json(client: TestClient) -> None:
    ours = client.get("/products").json()
    theirs = sample("products.json")
    assert_same_keys(ours, theirs)
    # Every product, priced or not, against every captured product.
    for product in ours["products"]:
        for captured in theirs["products"]:
            assert set(product) == set(captured)
            assert set(product["ext"]) == set(captured["ext"])


def test_product_like_product_get_json(client: TestClient) -> None:
    ours = client.get(f"/products/{product_id(client, 'Brightline CTV - Premium Drama')}").json()
    assert_same_keys(ours, sample("product_get.json"))


def test_quote_like_quote_pd_json(client: TestClient) -> None:
    ours = _quote(client, "shape-q")
    assert_same_keys(ours, sample("quote_pd.json"))
    assert shape(ours) == shape(sample("quote_pd.json"))


def test_keyed_quote_like_quote_with_apikey_json(client: TestClient) -> None:
    body = quote_body(product_id(client, "Brightline CTV - Premium Drama"), "shape-k", deal_type="PG")
    ours = client.post("/api/v1/quotes", json=body, headers={"X-Api-Key": "key-advertiser"}).json()
    theirs = sample("quote_with_apikey.json")
    assert shape(ours) == shape(theirs)
    # Same product economics as the capture (base $35 there, $38 here), same rationale wording.
    assert ours["quote"]["pricing"]["rationale"] == (
        "Base price: $38.00 CPM | Advertiser tier: -15% | Final price: $32.30 CPM | (Total savings: 15.0%)"
    )


def test_deal_like_deal_book_json(client: TestClient) -> None:
    quote_id = _quote(client, "shape-d")["quote"]["quote_id"]
    ours = client.post("/api/v1/deals", json={"idempotency_key": "shape-d", "quote_id": quote_id}).json()
    theirs = sample("deal_book.json")
    assert_same_keys(ours, theirs)
    assert shape(ours) == shape(theirs)


def test_negotiated_deal_like_nego2_book_json(client: TestClient) -> None:
    quote_id = _quote(client, "shape-n")["quote"]["quote_id"]
    opened = client.post(
        "/api/v1/negotiations/messages",
        json={"idempotency_key": "shape-n1", "action": "counter", "quote_id": quote_id, "buyer_price": usd("5.00")},
    ).json()
    assert_same_keys(opened, sample("nego2_open.json"))
    assert shape(opened) == shape(sample("nego2_open.json"))
    closed = client.post(
        "/api/v1/negotiations/messages",
        json={"idempotency_key": "shape-n2", "action": "counter", "quote_id": quote_id, "buyer_price": usd("12.50")},
    ).json()
    assert shape(closed) == shape(sample("nego2_round2_by_quote.json"))
    deal = client.post("/api/v1/deals", json={"idempotency_key": "shape-n", "quote_id": quote_id}).json()
    assert shape(deal) == shape(sample("nego2_book.json"))


def test_pricing_like_pricing_json(client: TestClient) -> None:
    pid = product_id(client, "Brightline CTV - Premium Drama")
    assert shape(client.post("/pricing", json={"product_id": pid}).json()) == shape(sample("pricing.json"))


def test_agent_card_like_agent_card_json(client: TestClient) -> None:
    ours = client.get("/.well-known/agent.json").json()
    theirs = sample("agent_card.json")
    assert_same_keys(ours, theirs)
    # The sandbox does not serve the legacy /proposals flow, so it does not advertise that skill.
    assert {s["id"] for s in ours["skills"]} == {s["id"] for s in theirs["skills"]} - {"proposals"}


@pytest.mark.parametrize(
    ("request_", "sample_name"),
    [
        (
            ("POST", "/api/v1/quotes", {"idempotency_key": "e", "product_id": "nope", "deal_type": "PD"}),
            "quote_bad_product.json",
        ),
        (("POST", "/api/v1/deals", {"idempotency_key": "e", "quote_id": "qt-nope"}), "deal_book_badquote.json"),
        (
            (
                "POST",
                "/api/v1/negotiations/messages",
                {
                    "idempotency_key": "e",
                    "action": "counter",
                    "negotiation_id": "neg-1",
                    "buyer_price": {"amount_micros": 1},
                },
            ),
            "nego_round2.json",
        ),
    ],
)
def test_error_envelopes_like_the_samples(client: TestClient, request_: tuple, sample_name: str) -> None:
    method, path, body = request_
    ours = client.request(method, path, json=body).json()
    assert shape(ours) == shape(sample(sample_name))
