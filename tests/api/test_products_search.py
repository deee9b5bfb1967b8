"""POST /products/search over real HTTP against sandbox sellers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from buyer.sandbox import create_app
from buyer.sandbox.catalog import build_catalog
from buyer.sellers.models import Seller
from campaigns.policies import CHANNEL_INVENTORY
from tests.conftest import free_port, serve_in_thread

pytestmark = pytest.mark.django_db

CATALOGS = ("default", "premium-video", "performance")
PRODUCT_FIELDS = {
    "product_id",
    "name",
    "description",
    "seller_id",
    "seller_name",
    "publisher",
    "inventory_type",
    "ad_formats",
    "delivery_type",
    "pricing_model",
    "cpm",
    "floor_cpm",
    "available_impressions",
    "minimum_impressions",
    "deal_types",
    "also_sold_by",
}


@pytest.fixture(scope="module")
def seller_urls() -> Iterator[dict[str, str]]:
    """One sandbox seller per catalog, a second seller of the default catalog, and a seller answering garbage."""
    apps = {name: create_app(catalog=name) for name in CATALOGS}
    apps["mirror"] = create_app(catalog="default", seller_id="sandbox-seller-mirror")
    apps["garbage"] = create_app(catalog="default", garbage=True)
    with ExitStack() as stack:
        yield {name: stack.enter_context(serve_in_thread(app)) for name, app in apps.items()}


@pytest.fixture(autouse=True)
def _seller_settings(settings):
    settings.SELLER_ENDPOINTS = []
    settings.SELLER_MAX_RETRIES = 0
    settings.SELLER_TIMEOUT_SECONDS = 2
    # Every test here makes a handful of calls to failing sellers; the circuit breaker has its own tests.
    settings.SELLER_BREAKER_FAILURES = 1000


@pytest.fixture
def three_sellers(seller_urls) -> dict[str, Seller]:
    return {name: Seller.objects.create(name=f"Sandbox {name}", base_url=seller_urls[name]) for name in CATALOGS}


def search(client, **body):
    return client.post("/products/search", body, content_type="application/json")


def ranked(body: dict) -> list[tuple]:
    return [(r["cpm"] is None, r["cpm"] or 0) for r in body["results"]]


def error_fields(response) -> list[str]:
    return [".".join(str(p) for p in item["loc"]) for item in response.json()["detail"]]


def test_it_merges_three_sellers_cheapest_first(client, three_sellers):
    response = search(client, limit=50)

    assert response.status_code == 200
    body = response.json()
    expected_total = sum(len(build_catalog(name).products) for name in CATALOGS)
    assert body["total"] == expected_total == len(body["results"])
    assert body["sellers_searched"] == 3 and body["errors"] == []
    assert ranked(body) == sorted(ranked(body))
    assert {r["seller_name"] for r in body["results"]} == {s.name for s in three_sellers.values()}
    first = body["results"][0]
    assert set(first) == PRODUCT_FIELDS
    assert first["name"] == "SnapGames - Banner 320x50" and first["cpm"] == 1.8
    assert first["seller_id"] == str(three_sellers["performance"].pk)
    assert first["publisher"] == "pub-snapgames-studio" and first["floor_cpm"] == 1.0


def test_the_limit_cuts_the_ranking_but_total_counts_every_match(client, three_sellers):
    everything = search(client, limit=50).json()
    top = search(client, limit=5).json()
    default = search(client).json()

    assert [r["product_id"] for r in top["results"]] == [r["product_id"] for r in everything["results"][:5]]
    assert top["total"] == everything["total"] == default["total"]
    assert len(default["results"]) == 10


def test_a_product_priced_on_request_ranks_last_and_never_gets_a_cpm(client, three_sellers):
    results = search(client, limit=50).json()["results"]

    unpriced = [r for r in results if r["cpm"] is None]
    assert [r["name"] for r in unpriced] == ["Metro Screens - Transit Hub Spectacular"]
    assert results[-1] == unpriced[0] and unpriced[0]["floor_cpm"] is None
    assert search(client, query="transit hub").json()["results"][0]["cpm"] is None
    for price_filter in ({"min_price": 0}, {"max_price": 1000}):
        names = [r["name"] for r in search(client, limit=50, **price_filter).json()["results"]]
        assert "Metro Screens - Transit Hub Spectacular" not in names


@pytest.mark.parametrize("channel", ["ctv", "performance", "branding", "dooh"])
def test_a_channel_keeps_the_inventory_it_buys(client, three_sellers, channel):
    body = search(client, channel=channel, limit=50).json()

    assert body["results"]
    assert {r["inventory_type"] for r in body["results"]} <= set(CHANNEL_INVENTORY[channel])
    assert body["total"] == len(body["results"])


def test_a_format_matches_the_inventory_type_or_an_ad_format(client, three_sellers):
    body = search(client, format="VIDEO", limit=50).json()

    assert body["results"]
    assert all(r["inventory_type"] == "video" or "video" in r["ad_formats"] for r in body["results"])
    assert {r["seller_name"] for r in body["results"]} == {"Sandbox default", "Sandbox premium-video"}


def test_a_price_range_keeps_list_cpms_inside_it(client, three_sellers):
    body = search(client, min_price=10, max_price="20.5", limit=50).json()

    assert body["results"]
    assert all(10 <= r["cpm"] <= 20.5 for r in body["results"])
    assert ranked(body) == sorted(ranked(body))
    exact = search(client, min_price=18, max_price=18, limit=50).json()["results"]
    assert {r["cpm"] for r in exact} == {18.0}


def test_filters_combine_with_a_free_text_query(client, three_sellers):
    body = search(client, channel="branding", query="pre-roll NEWS", max_price=25).json()

    assert [r["name"] for r in body["results"]] == ["Meridian News - Pre-Roll Video"]


def test_seller_ids_restrict_the_search(client, three_sellers):
    chosen = three_sellers["premium-video"]

    body = search(client, seller_ids=[chosen.pk], limit=50).json()

    assert body["sellers_searched"] == 1
    assert {r["seller_id"] for r in body["results"]} == {str(chosen.pk)}
    assert body["total"] == len(build_catalog("premium-video").products)


def test_an_unknown_or_disabled_seller_id_is_refused(client, three_sellers):
    disabled = three_sellers["performance"]
    disabled.enabled = False
    disabled.save(update_fields=["enabled"])

    for ids in (["999999"], [str(disabled.pk)]):
        response = search(client, seller_ids=ids)
        assert response.status_code == 422
        assert error_fields(response) == ["body.payload.seller_ids"]


def test_the_same_publisher_product_from_two_sellers_is_listed_once(client, seller_urls):
    default = Seller.objects.create(name="B default", base_url=seller_urls["default"])
    mirror = Seller.objects.create(name="A mirror", base_url=seller_urls["mirror"])

    body = search(client, limit=50).json()

    catalog = build_catalog("default").products
    assert body["total"] == len(catalog) == len(body["results"])
    assert len({r["name"] for r in body["results"]}) == len(catalog)
    # Equal prices and supply: the seller name breaks the tie, and the other seller is noted.
    homepage = next(r for r in body["results"] if r["name"] == "Meridian News - Homepage Takeover")
    assert homepage["seller_id"] == str(mirror.pk)
    mirrored = build_catalog("default").products[0]
    assert homepage["also_sold_by"] == [
        {"seller_id": str(default.pk), "seller_name": "B default", "product_id": mirrored.product_id, "cpm": 18.0}
    ]
    assert homepage["product_id"] != mirrored.product_id


def test_a_garbage_seller_is_reported_while_the_others_answer(client, seller_urls, three_sellers):
    broken = Seller.objects.create(name="Broken", base_url=seller_urls["garbage"])

    response = search(client, limit=50)

    assert response.status_code == 200
    body = response.json()
    assert body["sellers_searched"] == 4
    assert body["errors"] == [
        {"seller_id": str(broken.pk), "seller_name": "Broken", "error": "invalid_response (HTTP 200)"}
    ]
    assert body["total"] == sum(len(build_catalog(name).products) for name in CATALOGS)
    assert "sandbox garbage" not in response.content.decode()


def test_an_unreachable_and_a_slow_seller_are_reported(client, settings, three_sellers):
    settings.SELLER_TIMEOUT_SECONDS = 0.5
    dead = Seller.objects.create(name="Dead", base_url=f"http://127.0.0.1:{free_port()}")
    with serve_in_thread(create_app(catalog="performance", latency_ms=1500)) as slow_url:
        slow = Seller.objects.create(name="Slow", base_url=slow_url)
        body = search(client, limit=50).json()

    assert {(e["seller_id"], e["error"]) for e in body["errors"]} == {
        (str(dead.pk), "connection_error (no response)"),
        (str(slow.pk), "timeout (no response)"),
    }
    assert len(body["results"]) == 33


def test_disabled_sellers_are_not_searched(client, three_sellers):
    seller = three_sellers["default"]
    seller.enabled = False
    seller.save(update_fields=["enabled"])

    body = search(client, limit=50).json()

    assert body["sellers_searched"] == 2
    assert str(seller.pk) not in {r["seller_id"] for r in body["results"]}


def test_no_sellers_means_an_empty_answer(client):
    assert search(client).json() == {"results": [], "total": 0, "sellers_searched": 0, "errors": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "radio"}, "channel"),
        ({"channel": ""}, "channel"),
        ({"min_price": -1}, "min_price"),
        ({"max_price": -0.01}, "max_price"),
        ({"min_price": 10, "max_price": 5}, "max_price"),
        ({"min_price": "ten"}, "min_price"),
        ({"limit": 0}, "limit"),
        ({"limit": 51}, "limit"),
        ({"format": "  "}, "format"),
        ({"query": "x" * 201}, "query"),
        ({"seller_ids": []}, "seller_ids"),
        ({"max_cpm": 10}, "max_cpm"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(client, body, field):
    response = search(client, **body)

    assert response.status_code == 422
    assert error_fields(response) == [f"body.payload.{field}"]


def test_prices_stay_exact_through_the_filter(client, three_sellers):
    # 4.5 is RecipeBox's exact list price: a binary-float comparison must not drop or add it.
    names = {r["name"] for r in search(client, min_price="4.5", max_price="4.5").json()["results"]}
    assert names == {"RecipeBox - Shoppable Display"}
