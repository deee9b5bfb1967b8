"""Discovery at the AdCP sandbox seller, through the library's own client over MCP."""

from __future__ import annotations

from typing import Any

import pytest
from adcp.types import (
    CpcvPricingOption,
    CpmPricingOption,
    FlatRatePricingOption,
    GetAdcpCapabilitiesRequest,
    GetProductsRequest,
    VcpmPricingOption,
)
from adcp.types.legacy import LegacyListCreativeFormatsRequest


def products(seller, **request: Any) -> list[Any]:
    async def work(client):
        result = await client.get_products(GetProductsRequest.model_validate(request))
        assert result.success, result.error
        return result.data.products

    return seller.run(work)


def test_capabilities_declare_media_buy_idempotency_and_the_pricing_models(seller):
    async def work(client):
        return await client.get_adcp_capabilities(GetAdcpCapabilitiesRequest())

    result = seller.run(work)
    assert result.success, result.error
    caps = result.data.model_dump(mode="json", exclude_none=True)
    assert caps["supported_protocols"] == ["media_buy"]
    assert caps["adcp"]["idempotency"] == {
        "supported": True,
        "replay_ttl_seconds": 86400,
        "account_id_is_opaque": False,
    }
    assert caps["adcp"]["supported_versions"] == ["3.1", "3.2"]
    assert caps["media_buy"]["supported_pricing_models"] == ["cpcv", "cpm", "flat_rate", "vcpm"]
    assert caps["sandbox"] is True


def test_products_cover_fixed_and_floor_only_cpm_vcpm_cpcv_and_flat_rate(seller):
    found = products(seller, buying_mode="wholesale")
    options = {(p.product_id, o.pricing_option_id): o for p in found for o in p.pricing_options}

    fixed = options[("news-homepage-display", "cpm-fixed")]
    assert isinstance(fixed, CpmPricingOption)
    assert (fixed.fixed_price, fixed.floor_price, fixed.currency) == (18.0, None, "USD")
    auction = options[("news-run-of-site", "cpm-auction")]
    assert isinstance(auction, CpmPricingOption)
    assert (auction.fixed_price, auction.floor_price) == (None, 2.5)
    assert isinstance(options[("news-viewable-display", "vcpm-fixed")], VcpmPricingOption)
    assert options[("news-viewable-display", "vcpm-auction")].floor_price == 6.0
    assert isinstance(options[("video-preroll", "cpcv-fixed")], CpcvPricingOption)
    flat = options[("news-homepage-takeover", "flat-rate")]
    assert isinstance(flat, FlatRatePricingOption)
    assert flat.fixed_price == 12000.0
    assert {p.delivery_type.value for p in found} == {"guaranteed", "non_guaranteed"}
    assert all(p.format_options for p in found)


def test_a_brief_ranks_matching_products_first_and_says_why(seller):
    found = products(seller, buying_mode="brief", brief="Connected TV streaming for a car launch")
    assert found[0].product_id == "ctv-premium-streaming"
    assert "streaming" in found[0].brief_relevance
    assert len(found) == 7  # a brief ranks, it does not hide inventory


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"channels": ["olv"]}, {"video-preroll"}),
        ({"format_kinds": ["audio_hosted"]}, {"audio-streaming"}),
        (
            {"delivery_type": "guaranteed"},
            {"news-homepage-display", "ctv-premium-streaming", "news-homepage-takeover"},
        ),
        ({"is_fixed_price": False}, {"news-run-of-site", "news-viewable-display", "video-preroll", "audio-streaming"}),
        (
            {"budget_range": {"max": 4000, "currency": "USD"}},
            {"news-homepage-display", "news-run-of-site", "news-viewable-display", "video-preroll", "audio-streaming"},
        ),
        ({"pricing_currencies": ["EUR"]}, set()),
    ],
)
def test_filters_exclude_products(seller, filters, expected):
    found = products(seller, buying_mode="brief", brief="anything", filters=filters)
    assert {p.product_id for p in found} == expected


def test_the_premium_video_catalog_serves_other_inventory(make_seller):
    found = products(make_seller(catalog="premium-video"), buying_mode="wholesale")
    assert {c.value for p in found for c in p.channels} == {"ctv", "olv"}
    assert "ctv-live-sports" in {p.product_id for p in found}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_creative_formats_are_the_named_formats_the_products_take(seller):
    async def work(client):
        return await client.list_creative_formats_legacy(LegacyListCreativeFormatsRequest())

    result = seller.run(work)
    assert result.success, result.error
    ids = {f.format_id.id for f in result.data.formats}
    assert {"display_300x250_image", "video_vast_30s", "audio_standard_30s"} <= ids
    assert all(str(f.format_id.agent_url) == "https://creative.adcontextprotocol.org/" for f in result.data.formats)


def test_a_buyer_on_adcp_3_1_is_served_and_one_on_3_0_is_told_there_is_no_common_version(seller):
    async def work(client):
        return await client.get_products(GetProductsRequest(buying_mode="wholesale"))

    on_3_1 = seller.run(work, adcp_version="3.1")
    assert on_3_1.success, on_3_1.error
    assert len(on_3_1.data.products) == 7

    on_3_0 = seller.run(work, adcp_version="3.0")
    assert not on_3_0.success
    assert "No common AdCP version" in on_3_0.error
