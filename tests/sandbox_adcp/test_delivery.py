"""Delivery that accrues over the flight as the sandbox clock moves, and update_media_buy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from adcp.types import GetMediaBuyDeliveryRequest, GetMediaBuysRequest

from ._support import buy_request, package, update_request


def book(seller, *packages, **kw):
    async def work(client):
        return await client.create_media_buy(buy_request(seller.clock, *packages, **kw))

    result = seller.run(work)
    assert result.success, result.error
    return result.data


def delivery(seller, media_buy_id, **request):
    async def work(client):
        return await client.get_media_buy_delivery(
            GetMediaBuyDeliveryRequest.model_validate({"media_buy_ids": [media_buy_id], **request})
        )

    result = seller.run(work)
    assert result.success, result.error
    return result.data


def packages_delivered(seller, media_buy_id):
    [report] = delivery(seller, media_buy_id).media_buy_deliveries
    return {p.package_id: p for p in report.by_package}


def update(seller, media_buy_id, **fields):
    async def work(client):
        return await client.update_media_buy(update_request(media_buy_id, **fields))

    return seller.run(work)


def test_spend_and_impressions_accrue_with_the_clock(seller):
    buy = book(seller, package("news-homepage-display", "cpm-fixed", 10_000), days=10)
    mb = buy.media_buy_id

    start = delivery(seller, mb).media_buy_deliveries[0]
    assert (start.totals.impressions, start.totals.spend) == (0, 0)
    seller.clock.advance(days=1)
    day_one = delivery(seller, mb).media_buy_deliveries[0]
    assert day_one.totals.spend == 1_000.0
    assert day_one.totals.impressions == 55_555  # $1,000 at an $18 CPM
    assert day_one.status.value == "active"
    [row] = day_one.by_package
    assert (row.pricing_model.value, row.rate, row.currency) == ("cpm", 18.0, "USD")
    assert row.pacing_index == 1.0
    assert row.delivery_status.value == "delivering"

    seller.clock.advance(days=4)
    assert delivery(seller, mb).media_buy_deliveries[0].totals.spend == 5_000.0
    seller.clock.advance(days=30)
    done = delivery(seller, mb).media_buy_deliveries[0]
    assert done.totals.spend == 10_000.0
    assert done.status.value == "completed"
    assert done.by_package[0].delivery_status.value == "budget_exhausted"


def test_the_reporting_period_is_the_flight_so_far_unless_dates_are_asked(seller):
    buy = book(seller, package("news-homepage-display", "cpm-fixed", 10_000), days=10)
    seller.clock.advance(days=3)
    report = delivery(seller, buy.media_buy_id)
    assert report.reporting_period.start == seller.clock.now - timedelta(days=3)
    assert report.reporting_period.end == seller.clock.now

    first_day = (seller.clock.now - timedelta(days=3)).date()
    window = delivery(
        seller,
        buy.media_buy_id,
        start_date=str(first_day + timedelta(days=1)),
        end_date=str(first_day + timedelta(days=1)),
    )
    assert window.media_buy_deliveries[0].totals.spend == 1_000.0


def test_an_auction_package_fills_part_of_its_plan_at_its_bid(seller):
    buy = book(seller, package("news-run-of-site", "cpm-auction", 10_000, bid_price=4.0), days=10)
    seller.clock.advance(days=1)
    [row] = packages_delivered(seller, buy.media_buy_id).values()
    assert row.spend == 900.0  # a tenth of the budget, 90 % fill
    assert row.rate == 4.0
    assert row.impressions == 225_000


def test_pacing_shapes_when_the_budget_is_spent(seller):
    buy = book(
        seller,
        package("news-homepage-display", "cpm-fixed", 1_000, pacing="even"),
        package("news-homepage-display", "cpm-fixed", 1_000, pacing="front_loaded"),
        package("news-homepage-display", "cpm-fixed", 1_000, pacing="asap"),
        days=8,
    )
    seller.clock.advance(days=2)
    even, front, asap = packages_delivered(seller, buy.media_buy_id).values()
    assert (even.spend, front.spend, asap.spend) == (250.0, 437.5, 1_000.0)
    assert asap.delivery_status.value == "budget_exhausted"


def test_video_reports_completed_views_and_cpcv_charges_per_view(seller):
    buy = book(seller, package("video-preroll", "cpcv-fixed", 4_000), days=10)
    seller.clock.advance(days=5)
    [row] = packages_delivered(seller, buy.media_buy_id).values()
    assert row.pricing_model.value == "cpcv"
    assert row.spend == 1_600.0  # half the flight, 80 % fill
    assert row.completed_views == 40_000  # $1,600 at $0.04 a completed view
    assert row.impressions == 57_142  # at a 70 % completion rate
    assert row.completion_rate == 0.7


def test_a_flat_rate_spends_its_fee_over_the_flight(seller):
    buy = book(seller, package("news-homepage-takeover", "flat-rate", 12_000), days=1)
    seller.clock.advance(hours=12)
    [row] = packages_delivered(seller, buy.media_buy_id).values()
    assert (row.spend, row.impressions, row.rate) == (6_000.0, 600_000, 12_000.0)


def test_a_viewable_cpm_pays_for_viewable_impressions_only(seller):
    buy = book(seller, package("news-viewable-display", "vcpm-fixed", 9_000), days=10)
    seller.clock.advance(days=10)
    [row] = packages_delivered(seller, buy.media_buy_id).values()
    assert row.spend == 7_650.0  # 85 % fill
    assert row.impressions == 1_180_555  # 850,000 viewable at a 72 % viewability


def test_update_media_buy_changes_a_package_budget_from_then_on(seller):
    buy = book(seller, package("news-homepage-display", "cpm-fixed", 10_000), days=10)
    package_id = buy.packages[0].package_id
    seller.clock.advance(days=5)

    result = update(seller, buy.media_buy_id, revision=1, packages=[{"package_id": package_id, "budget": 20_000}])
    assert result.success, result.error
    assert result.data.revision == 2
    assert result.data.total_budget == 20_000.0
    assert [(p.package_id, p.budget) for p in result.data.affected_packages] == [(package_id, 20_000.0)]

    seller.clock.advance(days=5)
    [row] = packages_delivered(seller, buy.media_buy_id).values()
    assert row.spend == 20_000.0  # $5,000 in the first half, the $15,000 left over the second

    async def read(client):
        return await client.get_media_buys(GetMediaBuysRequest(media_buy_ids=[buy.media_buy_id]))

    [read_back] = seller.run(read).data.media_buys
    assert (read_back.revision, read_back.packages[0].budget) == (2, 20_000.0)


def test_pausing_stops_delivery_and_resuming_catches_up(seller):
    buy = book(seller, package("news-homepage-display", "cpm-fixed", 10_000), days=10)
    seller.clock.advance(days=2)
    paused = update(seller, buy.media_buy_id, paused=True)
    assert paused.data.media_buy_status.value == "paused"
    seller.clock.advance(days=3)
    [row] = packages_delivered(seller, buy.media_buy_id).values()
    assert (row.spend, row.paused, row.delivery_status.value) == (2_000.0, True, "not_delivering")

    resumed = update(seller, buy.media_buy_id, paused=False)
    assert resumed.data.media_buy_status.value == "active"
    seller.clock.advance(days=5)
    assert packages_delivered(seller, buy.media_buy_id)[row.package_id].spend == 10_000.0


def test_a_package_can_be_paused_alone(seller):
    buy = book(
        seller,
        package("news-homepage-display", "cpm-fixed", 1_000),
        package("news-homepage-display", "cpm-fixed", 1_000),
        days=10,
    )
    first, second = (p.package_id for p in buy.packages)
    assert update(seller, buy.media_buy_id, packages=[{"package_id": first, "paused": True}]).success
    seller.clock.advance(days=5)
    rows = packages_delivered(seller, buy.media_buy_id)
    assert (rows[first].spend, rows[second].spend) == (0.0, 500.0)


def test_canceling_a_buy_stops_it_for_good(seller):
    buy = book(seller, package("news-homepage-display", "cpm-fixed", 10_000), days=10)
    seller.clock.advance(days=1)
    canceled = update(seller, buy.media_buy_id, canceled=True)
    assert canceled.data.media_buy_status.value == "canceled"
    seller.clock.advance(days=5)
    assert delivery(seller, buy.media_buy_id).media_buy_deliveries[0].totals.spend == 1_000.0
    again = update(seller, buy.media_buy_id, paused=True)
    assert again.adcp_error["code"] == "INVALID_STATE"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"revision": 7}, "CONFLICT"),
        ({"packages": [{"package_id": "nope", "budget": 10}]}, "PACKAGE_NOT_FOUND"),
        ({"start_time": "asap"}, "UNSUPPORTED_FEATURE"),
    ],
)
def test_updates_are_refused_with_adcp_errors(seller, fields, code):
    buy = book(seller, package("news-homepage-display", "cpm-fixed", 10_000), days=10)
    result = update(seller, buy.media_buy_id, **fields)
    assert not result.success
    assert result.adcp_error["code"] == code


def test_a_budget_cannot_go_below_what_is_spent(seller):
    buy = book(seller, package("news-homepage-display", "cpm-fixed", 10_000), days=10)
    seller.clock.advance(days=5)
    result = update(seller, buy.media_buy_id, packages=[{"package_id": buy.packages[0].package_id, "budget": 4_000}])
    assert result.adcp_error["code"] == "BUDGET_TOO_LOW"
    assert result.adcp_error["details"] == {"minimum": 5_000.0, "spent": 5_000.0}


def test_an_unknown_media_buy_is_not_found(seller):
    result = update(seller, "mb-99999", paused=True)
    assert result.adcp_error["code"] == "MEDIA_BUY_NOT_FOUND"

    async def read(client):
        return await client.get_media_buy_delivery(GetMediaBuyDeliveryRequest(media_buy_ids=["mb-99999"]))

    report = seller.run(read).data
    assert report.media_buy_deliveries == []
    assert report.errors[0].code == "MEDIA_BUY_NOT_FOUND"


def test_the_read_back_snapshot_matches_delivery(seller):
    buy = book(seller, package("news-homepage-display", "cpm-fixed", 10_000), days=10)
    seller.clock.advance(days=2)

    async def read(client):
        return await client.get_media_buys(GetMediaBuysRequest(media_buy_ids=[buy.media_buy_id], include_snapshot=True))

    snapshot = seller.run(read).data.media_buys[0].packages[0].snapshot
    assert (snapshot.spend, snapshot.impressions, snapshot.as_of) == (2_000.0, 111_111, seller.clock.now)


def test_a_later_change_does_not_rewrite_what_was_delivered_before(seller):
    buy = book(seller, package("news-run-of-site", "cpm-auction", 10_000, bid_price=4.0), days=10)
    package_id = buy.packages[0].package_id
    seller.clock.advance(days=2)
    before = packages_delivered(seller, buy.media_buy_id)[package_id]

    changed = update(
        seller,
        buy.media_buy_id,
        end_time=(seller.clock.now + timedelta(days=18)).isoformat(),
        packages=[{"package_id": package_id, "bid_price": 5.0, "pacing": "asap"}],
    )
    assert changed.success, changed.error
    assert changed.data.affected_packages[0].model_dump()["bid_price"] == 5.0
    assert packages_delivered(seller, buy.media_buy_id)[package_id].impressions == before.impressions

    seller.clock.advance(days=1)
    after = packages_delivered(seller, buy.media_buy_id)[package_id]
    assert after.rate == 5.0
    assert after.impressions > before.impressions


def test_an_auction_bid_cannot_be_lowered_below_the_floor(seller):
    buy = book(seller, package("news-run-of-site", "cpm-auction", 10_000, bid_price=4.0), days=10)
    result = update(seller, buy.media_buy_id, packages=[{"package_id": buy.packages[0].package_id, "bid_price": 1.0}])
    assert (result.adcp_error["code"], result.adcp_error["field"]) == ("INVALID_REQUEST", "packages[0].bid_price")
