from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from buyer.sellers.types import Product, Quote
from campaigns import policies

INVENTORY = ["display", "video", "ctv", "mobile_app", "native", "linear_tv"]
CHANNELS = ["branding", "ctv", "mobile_app", "performance", "social"]


def product(
    pid: str,
    inventory: str,
    base: str | None,
    *,
    floor: str | None = None,
    minimum: int = 1000,
    available: int = 10_000_000,
    deal_types=("PG", "PD"),
) -> Product:
    return Product(
        product_id=pid,
        name=f"Product {pid}",
        description="",
        seller_organization_id="pub-1",
        inventory_type=inventory,
        ad_formats=(inventory,),
        delivery_type="Guaranteed",
        pricing_model="cpm",
        base_cpm=Decimal(base) if base is not None else None,
        floor_cpm=Decimal(floor) if floor is not None else None,
        available_impressions=available,
        minimum_impressions=minimum,
        deal_types=tuple(deal_types),
    )


def quote_for(candidate: policies.Candidate, final_cpm: Decimal, status: str = "available") -> Quote:
    return Quote(
        quote_id=f"qt-{candidate.product.product_id}",
        status=status,
        deal_type=candidate.deal_type,
        product_id=candidate.product.product_id,
        product_name=candidate.product.name,
        base_cpm=candidate.product.base_cpm or Decimal(0),
        final_cpm=final_cpm,
        tier_discount_pct=Decimal(0),
        volume_discount_pct=Decimal(0),
        rationale="",
        impressions=candidate.impressions,
        flight_start=date(2030, 1, 1),
        flight_end=date(2030, 1, 31),
        guaranteed=True,
        buyer_tier="public",
        expires_at=datetime(2030, 1, 2, tzinfo=UTC),
        seller_id="s",
        raw={},
    )


def terms(budget: str, channels=("branding",), **kw) -> policies.BriefTerms:
    return policies.BriefTerms(
        budget=Decimal(budget),
        channels=tuple(channels),
        objectives=("awareness",),
        start_date=date(2030, 1, 1),
        end_date=date(2030, 1, 31),
        **kw,
    )


def test_allocation_adds_up_to_the_budget_exactly():
    allocations = policies.allocate_budget(Decimal("50000.01"), ["branding", "ctv", "performance"], ["brand awareness"])
    assert sum(a.amount for a in allocations) == Decimal("50000.01")
    assert [a.channel for a in allocations] == ["branding", "ctv", "performance"]
    assert all(a.rationale for a in allocations)


def test_a_brief_without_channels_gets_the_default_mix_not_a_crash():
    allocations = policies.allocate_budget(Decimal(1000), [], ["reach"])
    assert [a.channel for a in allocations] == list(policies.DEFAULT_CHANNELS)
    assert sum(a.amount for a in allocations) == Decimal(1000)
    assert "default channel mix" in allocations[0].rationale


def test_objectives_weight_their_channels_up():
    plain = {a.channel: a.amount for a in policies.allocate_budget(Decimal(1000), ["ctv", "performance"], ["other"])}
    video = {
        a.channel: a.amount for a in policies.allocate_budget(Decimal(1000), ["ctv", "performance"], ["video views"])
    }
    assert video["ctv"] > plain["ctv"]


def test_a_product_without_a_price_is_skipped_with_a_reason_never_priced():
    catalog = {"s1": [product("p1", "display", None), product("p2", "display", "10")]}
    allocation = policies.allocate_budget(Decimal(10000), ["branding"], [])[0]
    candidates, skips = policies.rank_candidates(catalog, allocation, terms("10000"), max_candidates=3)
    assert [c.product.product_id for c in candidates] == ["p2"]
    assert skips[0].product_id == "p1" and "price on request" in skips[0].reason


def test_products_whose_floor_is_above_the_max_cpm_are_skipped_and_others_ask_for_the_ceiling():
    catalog = {"s1": [product("cheap", "ctv", "30", floor="20"), product("dear", "ctv", "60", floor="50")]}
    allocation = policies.allocate_budget(Decimal(10000), ["ctv"], [])[0]
    candidates, skips = policies.rank_candidates(
        catalog, allocation, terms("10000", ["ctv"], max_cpm=Decimal(25)), max_candidates=3
    )
    assert [c.product.product_id for c in candidates] == ["cheap"]
    assert candidates[0].target_cpm == Decimal(25)
    assert "above the max CPM" in skips[0].reason


def test_ranking_prefers_the_channels_primary_inventory_then_price():
    catalog = {
        "s1": [
            product("video", "video", "5"),
            product("disp-dear", "display", "12"),
            product("disp-cheap", "display", "8"),
        ]
    }
    allocation = policies.allocate_budget(Decimal(30000), ["branding"], [])[0]
    candidates, _ = policies.rank_candidates(catalog, allocation, terms("30000"), max_candidates=3)
    assert [c.product.product_id for c in candidates] == ["disp-cheap", "disp-dear", "video"]
    assert [c.rank for c in candidates] == [1, 2, 3]


def test_a_budget_share_below_the_sellers_minimum_is_skipped():
    catalog = {"s1": [product("big", "display", "10", minimum=1_000_000)]}
    allocation = policies.allocate_budget(Decimal(100), ["branding"], [])[0]
    candidates, skips = policies.rank_candidates(catalog, allocation, terms("100"), max_candidates=3)
    assert candidates == [] and "below the seller's minimum" in skips[0].reason


def test_quotes_above_the_ceiling_are_refused():
    catalog = {"s1": [product("p", "display", "10")]}
    allocation = policies.allocate_budget(Decimal(1000), ["branding"], [])[0]
    t = terms("1000", max_cpm=Decimal(9))
    [candidate], _ = policies.rank_candidates(catalog, allocation, t, max_candidates=1)
    problem = policies.quote_problem(policies.QuotedLine(candidate, quote_for(candidate, Decimal("9.01"))), t)
    assert problem and "above the max CPM" in problem


def _catalogs():
    price = st.decimals(min_value=Decimal("0.50"), max_value=Decimal(80), places=2)
    item = st.tuples(
        st.sampled_from(INVENTORY),
        st.one_of(st.none(), price),
        st.integers(0, 200_000),
        st.integers(0, 50_000_000),
    )
    return st.dictionaries(st.sampled_from(["s1", "s2", "s3"]), st.lists(item, max_size=8), min_size=1)


@settings(max_examples=300, deadline=None)
@given(
    catalogs=_catalogs(),
    budget=st.decimals(min_value=Decimal(1), max_value=Decimal(2_000_000), places=2),
    channels=st.lists(st.sampled_from(CHANNELS), unique=True, max_size=5),
    max_cpm=st.one_of(st.none(), st.decimals(min_value=Decimal(1), max_value=Decimal(60), places=2)),
    target_cpm=st.one_of(st.none(), st.decimals(min_value=Decimal(1), max_value=Decimal(60), places=2)),
    price_factors=st.lists(
        st.decimals(min_value=Decimal("0.3"), max_value=Decimal("1.6"), places=3), min_size=1, max_size=50
    ),
    max_line=st.one_of(st.none(), st.decimals(min_value=Decimal(1), max_value=Decimal(500_000), places=2)),
    seller_share=st.decimals(min_value=Decimal(1), max_value=Decimal(100), places=0),
)
def test_selection_never_exceeds_the_budget_the_channel_budgets_or_the_max_cpm(
    catalogs, budget, channels, max_cpm, target_cpm, price_factors, max_line, seller_share
):
    products = {
        seller: [
            product(
                f"{seller}-{i}",
                inv,
                None if base is None else str(base),
                minimum=minimum,
                available=available,
            )
            for i, (inv, base, minimum, available) in enumerate(items)
        ]
        for seller, items in catalogs.items()
    }
    t = terms(str(budget), channels, max_cpm=max_cpm, target_cpm=target_cpm)
    allocations = policies.allocate_budget(t.budget, list(t.channels), t.objectives)
    assert sum(a.amount for a in allocations) == t.budget
    lines = []
    taken: frozenset = frozenset()
    for allocation in allocations:
        candidates, _ = policies.rank_candidates(products, allocation, t, max_candidates=3, taken=taken)
        taken |= {(c.seller_key, c.product.product_id) for c in candidates}
        for n, candidate in enumerate(candidates):
            assert candidate.product.base_cpm is not None
            # Sellers may quote anything, even above their list price: the policy must hold regardless.
            final = (candidate.product.base_cpm * price_factors[n % len(price_factors)]).quantize(Decimal("0.01"))
            line = policies.QuotedLine(candidate, quote_for(candidate, max(final, Decimal("0.01"))))
            if policies.quote_problem(line, t) is None:
                lines.append(line)
    selection = policies.select_within_budget(
        lines, allocations, t.budget, max_line=max_line, max_seller_share_pct=seller_share
    )
    assert selection.total <= t.budget
    at_seller: dict[str, Decimal] = {}
    for line in selection.chosen:
        assert max_line is None or line.cost <= max_line
        at_seller[line.candidate.seller_key] = at_seller.get(line.candidate.seller_key, Decimal(0)) + line.cost
    assert all(total <= t.budget * seller_share / 100 for total in at_seller.values())
    per_channel = {a.channel: Decimal(0) for a in allocations}
    for line in selection.chosen:
        per_channel[line.candidate.channel] += line.cost
        if max_cpm is not None:
            assert line.quote.final_cpm <= max_cpm
    for allocation in allocations:
        assert per_channel[allocation.channel] <= allocation.amount


def test_the_audiences_words_are_what_targeting_can_match():
    audience = {"age": "25-54", "interests": ["Sports", "live events"], "description": "Sports fans and news readers"}
    assert policies.audience_keywords(audience, ["outdoor adventurers"]) == {
        "sports",
        "live",
        "events",
        "fans",
        "news",
        "readers",
        "outdoor",
        "adventurers",
    }
    assert policies.audience_keywords({}) == frozenset()


def test_products_whose_targeting_speaks_to_the_audience_rank_first_within_their_inventory():
    cheap = product("cheap", "display", "5")
    sports = dataclasses.replace(
        product("sports", "display", "9"), raw={"content_targeting": {"section": ["sports", "live"]}}
    )
    terms = policies.BriefTerms(
        budget=Decimal(10_000),
        channels=("branding",),
        objectives=(),
        start_date=date(2030, 1, 1),
        end_date=date(2030, 1, 31),
        audience=frozenset({"sports"}),
    )
    allocation = policies.Allocation("branding", Decimal(10_000), Decimal(100), "")
    ranked, _ = policies.rank_candidates({"s": [cheap, sports]}, allocation, terms, max_candidates=2)
    assert [c.product.product_id for c in ranked] == ["sports", "cheap"]
    assert "speaks to the audience (sports)" in ranked[0].rationale
    unranked, _ = policies.rank_candidates(
        {"s": [cheap, sports]}, allocation, dataclasses.replace(terms, audience=frozenset()), max_candidates=2
    )
    assert [c.product.product_id for c in unranked] == ["cheap", "sports"]  # no audience: the lowest price first
