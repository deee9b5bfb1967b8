"""Discovery endpoints: health, agent card, products (paging, shapes, errors), catalogs, media kit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from buyer.sandbox.catalog import CATALOG_NAMES, build_catalog, stable_id

from ._support import product_id, usd


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_agent_card_describes_this_seller(client: TestClient) -> None:
    card = client.get("/.well-known/agent.json").json()
    assert card["url"] == "http://testserver"
    assert set(card["inventory_types"]) == {"display", "video", "ctv", "mobile_app", "native", "linear_tv", "dooh"}
    assert {"pg", "preferred_deal", "private_auction", "pmp"} == set(card["supported_deal_types"])
    assert card["authentication"]["schemes"] == ["api_key", "bearer"]


def test_products_default_page(client: TestClient) -> None:
    body = client.get("/products").json()
    assert body["limit"] == 50
    assert body["offset"] == 0
    assert body["total_count"] == len(body["products"]) >= 15
    inventory = {p["ext"]["inventory_type"] for p in body["products"]}
    assert {"display", "video", "ctv", "mobile_app", "native", "linear_tv"} <= inventory
    assert sum(1 for p in body["products"] if p["ext"]["inventory_type"] == "linear_tv") >= 2
    assert len({p["seller_organization_id"] for p in body["products"]}) >= 4


def test_products_paging_walks_the_whole_catalog(client: TestClient) -> None:
    total = client.get("/products").json()["total_count"]
    seen: list[str] = []
    offset = 0
    while offset < total:
        page = client.get("/products", params={"limit": 4, "offset": offset}).json()
        assert page["limit"] == 4
        assert page["offset"] == offset
        assert page["total_count"] == total
        assert len(page["products"]) == min(4, total - offset)
        seen += [p["product_id"] for p in page["products"]]
        offset += 4
    assert len(seen) == len(set(seen)) == total
    past_the_end = client.get("/products", params={"offset": total + 10}).json()
    assert past_the_end["products"] == []
    assert past_the_end["total_count"] == total


@pytest.mark.parametrize(
    ("params", "loc", "error_type"),
    [
        ({"limit": "0"}, ["query", "limit"], "greater_than_equal"),
        ({"limit": "501"}, ["query", "limit"], "less_than_equal"),
        ({"limit": "ten"}, ["query", "limit"], "int_parsing"),
        ({"offset": "-1"}, ["query", "offset"], "greater_than_equal"),
    ],
)
def test_products_bad_paging_is_a_pydantic_422(
    client: TestClient, params: dict[str, str], loc: list[str], error_type: str
) -> None:
    response = client.get("/products", params=params)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == loc
    assert error["type"] == error_type
    assert error["input"] == next(iter(params.values()))
    assert set(error) >= {"type", "loc", "msg", "input"}


def test_product_shape_money_and_ext(client: TestClient) -> None:
    for product in client.get("/products").json()["products"]:
        ext = product["ext"]
        assert product["pricing_model"] == "cpm"
        assert product["product_id"].startswith("prod-") and len(product["product_id"]) == 13
        assert product["ad_formats"] == [ext["inventory_type"]]
        assert product["description"]
        assert ext["deal_types"] and set(ext["deal_types"]) <= {"PG", "PD", "PA"}
        assert isinstance(ext["minimum_impressions"], int)
        if product["base_price"] is None:
            assert ext["floor_cpm"] is None  # price on request: nothing to invent
            continue
        assert set(product["base_price"]) == {"amount_micros", "currency"}
        assert isinstance(product["base_price"]["amount_micros"], int)
        assert isinstance(ext["floor_cpm"], float)  # legacy float, as on the reference seller
        assert ext["floor_cpm"] * 1_000_000 < product["base_price"]["amount_micros"]
        assert isinstance(product["available_impressions"], int)
        assert product["available_impressions"] >= ext["minimum_impressions"]


def test_default_catalog_has_one_price_on_request_product(client: TestClient) -> None:
    unpriced = [p for p in client.get("/products").json()["products"] if p["base_price"] is None]
    assert len(unpriced) == 1
    assert unpriced[0]["ext"]["inventory_type"] == "dooh"


def test_get_product_and_404(client: TestClient) -> None:
    pid = product_id(client, "Brightline CTV - Premium Drama")
    product = client.get(f"/products/{pid}").json()
    assert product["product_id"] == pid
    assert product["base_price"] == usd("38.00")
    missing = client.get("/products/prod-00000000")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Product not found"}


def test_product_ids_are_stable_and_seller_specific() -> None:
    first = build_catalog("default")
    again = build_catalog("default")
    other = build_catalog("default", seller_id="another-seller")
    assert [p.product_id for p in first.products] == [p.product_id for p in again.products]
    assert not {p.product_id for p in first.products} & {p.product_id for p in other.products}
    product = first.products[0]
    assert product.product_id == stable_id("prod", "sandbox-seller-default", product.name)


def test_named_catalogs_differ(make_client: Callable[..., TestClient]) -> None:
    listings = {}
    for name in CATALOG_NAMES:
        products = make_client(catalog=name).get("/products").json()["products"]
        listings[name] = products
    ids = {name: {p["product_id"] for p in products} for name, products in listings.items()}
    assert not ids["default"] & ids["premium-video"]
    assert not ids["default"] & ids["performance"]
    assert not ids["premium-video"] & ids["performance"]

    def average_base(products: list[dict]) -> float:
        prices = [p["base_price"]["amount_micros"] for p in products if p["base_price"]]
        return sum(prices) / len(prices)

    video = listings["premium-video"]
    assert sum(p["ext"]["inventory_type"] in {"video", "ctv"} for p in video) > len(video) / 2
    assert {p["ext"]["inventory_type"] for p in listings["performance"]} <= {"display", "native", "mobile_app"}
    assert average_base(listings["performance"]) < average_base(listings["default"]) < average_base(video)


def test_unknown_catalog_or_tier_is_refused() -> None:
    from buyer.sandbox import create_app

    with pytest.raises(ValueError, match="unknown catalog"):
        create_app(catalog="nope")
    with pytest.raises(ValueError, match="unknown tier"):
        create_app(api_keys={"k": "platinum"})


def test_media_kit_packages_from_the_catalog(client: TestClient) -> None:
    kit = client.get("/media-kit").json()
    assert kit["total_packages"] == len(kit["all_packages"]) > 0
    assert kit["featured_count"] == len(kit["featured"]) > 0
    package = kit["all_packages"][0]
    assert set(package) == {
        "package_id",
        "name",
        "description",
        "ad_formats",
        "device_types",
        "cat",
        "cattax",
        "audience_capabilities",
        "geo_targets",
        "tags",
        "price_range",
        "rate_type",
        "is_featured",
    }
    listed = client.get("/media-kit/packages").json()["packages"]
    assert listed == kit["all_packages"]
    featured = client.get("/media-kit/packages", params={"featured_only": "true"}).json()["packages"]
    assert featured == kit["featured"]
    one = client.get(f"/media-kit/packages/{package['package_id']}")
    assert one.json() == package
    missing = client.get("/media-kit/packages/pkg-nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Package not found"})
    assert client.get("/media-kit/packages", params={"layer": "bogus"}).status_code == 400


def test_media_kit_search_public_and_authenticated(client: TestClient) -> None:
    public = client.post("/media-kit/search", json={"query": "ctv drama"}).json()["results"]
    assert public and public[0]["name"] == "Connected TV Package"
    assert "exact_price" not in public[0]
    keyed = client.post("/media-kit/search", json={"query": "ctv drama"}, headers={"X-Api-Key": "key-agency"}).json()[
        "results"
    ]
    assert keyed[0]["package_id"] == public[0]["package_id"]
    assert isinstance(keyed[0]["exact_price"], float)
    assert keyed[0]["placements"]
    assert client.post("/media-kit/search", json={"query": "zzz-nothing"}).json() == {"results": []}
    assert client.post("/media-kit/search", json={}).status_code == 422


def test_legacy_pricing_preview(client: TestClient) -> None:
    pid = product_id(client, "Brightline CTV - Premium Drama")
    public = client.post("/pricing", json={"product_id": pid, "volume": 0}).json()
    assert public == {
        "product_id": pid,
        "base_price": 38.0,
        "final_price": 38.0,
        "currency": "USD",
        "tier_discount": 0.0,
        "volume_discount": 0.0,
        "rationale": "Base price: $38.00 CPM | Final price: $38.00 CPM",
    }
    # The body's buyer_tier is a claim, not a credential: only the key moves the price.
    claimed = client.post("/pricing", json={"product_id": pid, "buyer_tier": "advertiser"}).json()
    assert claimed["final_price"] == 38.0
    keyed = client.post("/pricing", json={"product_id": pid}, headers={"X-Api-Key": "key-advertiser"}).json()
    assert keyed["final_price"] == 32.3
    assert keyed["tier_discount"] == 0.15
