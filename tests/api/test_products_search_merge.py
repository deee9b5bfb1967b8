"""merge_catalogs, the pure filter/de-duplicate/rank step behind POST /products/search."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from buyer.sellers.search import OtherOffer, SearchFilters, SellerRef, merge_catalogs
from buyer.sellers.types import Product

ALPHA = SellerRef("1", "Alpha")
BETA = SellerRef("2", "Beta")
GAMMA = SellerRef("3", "Gamma")


def product(
    product_id: str,
    cpm: str | None = "10",
    *,
    name: str | None = None,
    publisher: str = "pub-x",
    inventory_type: str = "display",
    ad_formats: tuple[str, ...] = ("banner",),
    available: int | None = 1_000_000,
    description: str = "",
    pricing_model: str = "cpm",
) -> Product:
    return Product(
        product_id=product_id,
        name=name or f"Product {product_id}",
        description=description,
        seller_organization_id=publisher,
        inventory_type=inventory_type,
        ad_formats=ad_formats,
        delivery_type="Guaranteed",
        pricing_model=pricing_model,
        base_cpm=Decimal(cpm) if cpm is not None else None,
        floor_cpm=None,
        available_impressions=available,
        minimum_impressions=0,
        deal_types=("PD",),
    )


def ids(result) -> list[tuple[str, str]]:
    return [(m.seller.name, m.product.product_id) for m in result.matches]


def test_it_ranks_priced_first_then_cpm_then_supply_then_seller_then_product_id():
    catalogs = [
        (BETA, [product("b-cheap", "2.50"), product("b-tie", "5", available=100), product("b-none", None)]),
        (ALPHA, [product("a-tie-z", "5", available=100), product("a-tie-a", "5", available=100)]),
        (GAMMA, [product("g-big", "5", available=9_000_000), product("g-unknown-supply", "5", available=None)]),
    ]

    result = merge_catalogs(catalogs, SearchFilters(), limit=50)

    assert ids(result) == [
        ("Beta", "b-cheap"),
        ("Gamma", "g-big"),
        ("Alpha", "a-tie-a"),
        ("Alpha", "a-tie-z"),
        ("Beta", "b-tie"),
        ("Gamma", "g-unknown-supply"),
        ("Beta", "b-none"),
    ]
    assert result.matches[-1].cpm is None


def test_the_ranking_does_not_depend_on_the_order_sellers_answered_in():
    catalogs = [
        (ALPHA, [product("a1", "7"), product("a2", None)]),
        (BETA, [product("b1", "7"), product("b2", "3")]),
        (GAMMA, [product("g1", "7", available=5)]),
    ]
    orders = {
        tuple(ids(merge_catalogs([(s, list(reversed(p))) for s, p in perm], SearchFilters(), limit=10)))
        for perm in itertools.permutations(catalogs)
    }
    assert len(orders) == 1


def test_the_limit_truncates_but_total_counts_every_match():
    catalogs = [(ALPHA, [product(f"p{i}", str(i + 1)) for i in range(12)])]

    result = merge_catalogs(catalogs, SearchFilters(), limit=3)

    assert [m.product.product_id for m in result.matches] == ["p0", "p1", "p2"]
    assert result.total == 12


def test_a_product_without_a_price_is_dropped_by_any_price_filter():
    catalogs = [(ALPHA, [product("priced", "4"), product("on-request", None)])]

    assert ids(merge_catalogs(catalogs, SearchFilters(), limit=10)) == [("Alpha", "priced"), ("Alpha", "on-request")]
    for filters in (SearchFilters(min_price=Decimal(0)), SearchFilters(max_price=Decimal(100))):
        assert ids(merge_catalogs(catalogs, filters, limit=10)) == [("Alpha", "priced")]


def test_a_price_that_is_not_a_cpm_is_never_shown_as_one():
    catalogs = [(ALPHA, [product("cpc", "0.80", pricing_model="cpc"), product("cpm", "12")])]

    result = merge_catalogs(catalogs, SearchFilters(), limit=10)

    assert [(m.product.product_id, m.cpm) for m in result.matches] == [("cpm", Decimal(12)), ("cpc", None)]
    assert ids(merge_catalogs(catalogs, SearchFilters(max_price=Decimal(1)), limit=10)) == []


def test_price_bounds_are_inclusive_and_exact():
    catalogs = [(ALPHA, [product("low", "4.49"), product("edge", "4.50"), product("high", "4.51")])]

    result = merge_catalogs(catalogs, SearchFilters(min_price=Decimal("4.5"), max_price=Decimal("4.5")), limit=10)

    assert ids(result) == [("Alpha", "edge")]


def test_the_same_seller_and_product_id_appears_once():
    catalogs = [(ALPHA, [product("p1", "5"), product("p1", "5")]), (ALPHA, [product("p1", "5")])]

    assert merge_catalogs(catalogs, SearchFilters(), limit=10).total == 1


def test_the_cheaper_seller_of_a_shared_listing_wins_and_the_others_are_noted():
    listing = {"name": "Meridian - Homepage", "publisher": "pub-meridian"}
    catalogs = [
        (ALPHA, [product("a-home", "20", **listing)]),
        (BETA, [product("b-home", "18", **listing)]),
        (GAMMA, [product("g-home", None, **listing)]),
    ]

    result = merge_catalogs(catalogs, SearchFilters(), limit=10)

    assert ids(result) == [("Beta", "b-home")]
    assert result.total == 1
    assert result.matches[0].also_sold_by == (
        OtherOffer(ALPHA, "a-home", Decimal(20)),
        OtherOffer(GAMMA, "g-home", None),
    )


def test_a_shared_listing_is_recognised_despite_case_and_spacing():
    catalogs = [
        (ALPHA, [product("a", "9", name="Live  Scores Display", publisher="PUB-NS")]),
        (BETA, [product("b", "8", name="live scores display", publisher="pub-ns")]),
    ]

    result = merge_catalogs(catalogs, SearchFilters(), limit=10)

    assert ids(result) == [("Beta", "b")]
    assert [o.product_id for o in result.matches[0].also_sold_by] == ["a"]


@pytest.mark.parametrize(
    "other",
    [
        {"name": "Same name", "publisher": "pub-other"},
        {"name": "Same name", "publisher": "pub-x", "inventory_type": "video"},
        {"name": "Another name", "publisher": "pub-x"},
    ],
)
def test_different_publisher_name_or_inventory_type_is_a_different_product(other):
    catalogs = [(ALPHA, [product("a", "5", name="Same name")]), (BETA, [product("b", "6", **other)])]

    result = merge_catalogs(catalogs, SearchFilters(), limit=10)

    assert result.total == 2 and all(m.also_sold_by == () for m in result.matches)


def test_products_without_a_publisher_are_never_merged():
    catalogs = [
        (ALPHA, [product("a", "5", name="Run of site", publisher="")]),
        (BETA, [product("b", "6", name="Run of site", publisher="")]),
    ]

    assert merge_catalogs(catalogs, SearchFilters(), limit=10).total == 2


def test_one_seller_listing_a_name_twice_keeps_both_and_another_seller_is_noted_once():
    catalogs = [
        (ALPHA, [product("a-pd", "5", name="Sports"), product("a-pg", "7", name="Sports")]),
        (BETA, [product("b1", "6", name="Sports"), product("b2", "9", name="Sports")]),
    ]

    result = merge_catalogs(catalogs, SearchFilters(), limit=10)

    assert ids(result) == [("Alpha", "a-pd"), ("Alpha", "a-pg")]
    assert result.matches[0].also_sold_by == (OtherOffer(BETA, "b1", Decimal(6)),)


def test_channel_format_and_query_filters():
    catalogs = [
        (
            ALPHA,
            [
                product("ctv", "30", inventory_type="ctv", ad_formats=("video",), description="Live SPORTS pods"),
                product("video", "20", inventory_type="video", ad_formats=("video",), name="News pre-roll"),
                product("display", "5", inventory_type="display", description="sports scores"),
            ],
        )
    ]

    def found(**filters) -> list[str]:
        return [m.product.product_id for m in merge_catalogs(catalogs, SearchFilters(**filters), limit=10).matches]

    assert found(inventory_types=frozenset({"ctv"})) == ["ctv"]
    assert found(format="video") == ["video", "ctv"]
    assert found(format="ctv") == ["ctv"]
    assert found(format="Banner") == ["display"]
    assert found(query="sports") == ["display", "ctv"]
    assert found(query="live sports") == ["ctv"]
    assert found(query="PRE-ROLL news") == ["video"]
    assert found(inventory_types=frozenset({"display", "video"}), query="sports") == ["display"]


def test_a_limit_below_one_is_a_programming_error():
    with pytest.raises(ValueError, match="limit"):
        merge_catalogs([], SearchFilters(), limit=0)
