"""Buying at the AdCP sandbox seller: synchronous bookings, idempotency keys and refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from adcp import IdempotencyConflictError
from adcp.types import CreateMediaBuyRequest, GetMediaBuysRequest
from pydantic import ValidationError

from ._support import ACCOUNT, BRAND, buy_request, iso, key, package


def create(seller, request, **kw):
    async def work(client):
        return await client.create_media_buy(request)

    return seller.run(work, **kw)


def test_a_synchronous_buy_is_booked_with_its_packages(seller):
    request = buy_request(
        seller.clock,
        package("news-homepage-display", "cpm-fixed", 10_000, pacing="even"),
        package("news-run-of-site", "cpm-auction", 5_000, bid_price=3.0, pacing="front_loaded"),
        start=timedelta(days=1),
        name="Acme launch",
    )
    result = create(seller, request)

    assert result.success, result.error
    data = result.data
    assert data.status == "completed"
    assert data.media_buy_id == "mb-00001"
    assert data.media_buy_status.value == "pending_start"
    assert data.revision == 1
    assert data.confirmed_at == seller.clock.now
    assert data.total_budget == 15_000.0
    assert [(p.product_id, p.pricing_option_id, p.budget) for p in data.packages] == [
        ("news-homepage-display", "cpm-fixed", 10_000.0),
        ("news-run-of-site", "cpm-auction", 5_000.0),
    ]
    assert [p.pacing.value for p in data.packages] == ["even", "front_loaded"]
    assert result.idempotency_key == request.idempotency_key
    assert result.replayed is False


def test_the_booked_buy_reads_back_and_starts_on_its_start_time(seller):
    request = buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 1_000), start=timedelta(hours=2))
    booked = create(seller, request).data

    async def read(client):
        return await client.get_media_buys(GetMediaBuysRequest(media_buy_ids=[booked.media_buy_id]))

    before = seller.run(read).data.media_buys[0]
    seller.clock.advance(hours=3)
    after = seller.run(read).data.media_buys[0]
    assert (before.status.value, after.status.value) == ("pending_start", "active")
    assert after.packages[0].package_id == booked.packages[0].package_id
    assert after.revision == 1


def test_bidding_as_in_adcp_3_2_is_accepted_and_echoed(seller):
    request = buy_request(seller.clock, package("news-run-of-site", "cpm-auction", 500, bidding={"bid_amount": 2.75}))
    result = create(seller, request)
    assert result.success, result.error
    assert result.data.packages[0].bidding.bid_amount == 2.75


def test_the_same_key_and_body_replays_the_same_buy(seller):
    request = buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 1_000))
    first = create(seller, request)
    again = create(seller, request)

    assert again.success, again.error
    assert again.replayed is True
    assert again.data.media_buy_id == first.data.media_buy_id
    assert len(seller.state.media_buys) == 1


def test_the_same_key_with_another_body_is_an_idempotency_conflict(seller):
    request = buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 1_000))
    create(seller, request)
    body = request.model_dump(mode="json", exclude_none=True)
    changed = CreateMediaBuyRequest.model_validate(
        {**body, "packages": [package("news-homepage-display", "cpm-fixed", 2_000)]}
    )

    with pytest.raises(IdempotencyConflictError):
        create(seller, changed)
    assert len(seller.state.media_buys) == 1


def test_keys_are_scoped_to_the_caller(seller):
    request = buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 1_000))
    mine = create(seller, request, token="buyer-a")
    theirs = create(seller, request, token="buyer-b")

    assert theirs.replayed is False
    assert theirs.data.media_buy_id != mine.data.media_buy_id

    async def read(client):
        return await client.get_media_buys(GetMediaBuysRequest())

    assert [b.media_buy_id for b in seller.run(read, token="buyer-a").data.media_buys] == [mine.data.media_buy_id]


def _raw_create(seller, **overrides):
    now = seller.clock.now
    args = {
        "adcp_version": "3.2",
        "account": ACCOUNT,
        "brand": BRAND,
        "start_time": iso(now),
        "end_time": iso(now + timedelta(days=5)),
        "packages": [package("news-homepage-display", "cpm-fixed", 1_000)],
        **overrides,
    }
    return seller.raw_call("create_media_buy", {k: v for k, v in args.items() if v is not None})


@pytest.mark.parametrize("idempotency_key", [None, "too-short", "x" * 15, "has spaces in it!!"])
def test_a_missing_short_or_malformed_key_is_refused(seller, idempotency_key):
    is_error, body = _raw_create(seller, idempotency_key=idempotency_key)

    assert is_error
    assert body["adcp_error"]["code"] == "VALIDATION_ERROR"
    assert "idempotency_key" in str(body["adcp_error"])
    assert seller.state.media_buys == {}


def test_the_library_client_cannot_even_build_a_short_key():
    with pytest.raises(ValidationError, match="idempotency_key"):
        CreateMediaBuyRequest.model_validate(
            {
                "idempotency_key": "short",
                "account": ACCOUNT,
                "brand": BRAND,
                "start_time": "asap",
                "end_time": "2099-01-01T00:00:00Z",
                "packages": [],
            }
        )


def test_a_sixteen_character_key_is_enough(seller):
    is_error, body = _raw_create(seller, idempotency_key="k" * 16)
    assert not is_error, body
    assert body["media_buy_id"] == "mb-00001"


@pytest.mark.parametrize(
    ("packages", "code", "field"),
    [
        (
            [package("news-run-of-site", "cpm-auction", 1_000, bid_price=2.0)],
            "INVALID_REQUEST",
            "packages[0].bid_price",
        ),
        (
            [package("news-run-of-site", "cpm-auction", 1_000, bidding={"bid_amount": 1.0})],
            "INVALID_REQUEST",
            "packages[0].bidding.bid_amount",
        ),
        ([package("news-run-of-site", "cpm-auction", 1_000)], "INVALID_REQUEST", "packages[0].bid_price"),
        (
            [package("news-homepage-display", "cpm-fixed", 1_000, bid_price=20.0)],
            "INVALID_REQUEST",
            "packages[0].bid_price",
        ),
        ([package("news-homepage-display", "cpm-fixed", 0)], "BUDGET_TOO_LOW", "packages[0].budget"),
        ([package("no-such-product", "cpm-fixed", 1_000)], "PRODUCT_NOT_FOUND", "packages[0].product_id"),
        (
            [package("news-homepage-display", "cpm-auction", 1_000)],
            "INVALID_PRICING_OPTION",
            "packages[0].pricing_option_id",
        ),
        ([package("ctv-premium-streaming", "cpm-fixed", 4_999)], "BUDGET_TOO_LOW", "packages[0].budget"),
        ([package("news-homepage-takeover", "flat-rate", 11_000)], "BUDGET_TOO_LOW", "packages[0].budget"),
        (
            [
                package("news-homepage-display", "cpm-fixed", 100),
                package("news-run-of-site", "cpm-auction", 100, bid_price=1),
            ],
            "INVALID_REQUEST",
            "packages[1].bid_price",
        ),
    ],
)
def test_refusals_are_structured_adcp_errors(seller, packages, code, field):
    result = create(seller, buy_request(seller.clock, *packages))

    assert not result.success
    assert result.data is None
    assert result.adcp_error["code"] == code
    assert result.adcp_error["field"] == field
    assert result.adcp_error["recovery"] == "correctable"
    assert seller.state.media_buys == {}


def test_a_bid_below_the_floor_names_the_floor(seller):
    result = create(
        seller, buy_request(seller.clock, package("news-run-of-site", "cpm-auction", 1_000, bid_price=2.49))
    )
    assert result.adcp_error["details"] == {"floor_price": 2.5, "bid": 2.49}
    assert "below the floor price 2.50" in result.error


def test_a_refusal_is_not_kept_under_its_key(seller):
    """A fixed request may reuse the key of one the seller refused: nothing was booked under it."""
    refused = buy_request(seller.clock, package("news-run-of-site", "cpm-auction", 1_000, bid_price=1.0))
    assert not create(seller, refused).success
    fixed = buy_request(
        seller.clock,
        package("news-run-of-site", "cpm-auction", 1_000, bid_price=3.0),
        idempotency_key=refused.idempotency_key,
    )
    assert create(seller, fixed).success


@pytest.mark.parametrize(
    ("extra", "code", "field"),
    [
        ({"total_budget": {"amount": 999, "currency": "USD"}}, "INVALID_REQUEST", "total_budget.amount"),
        ({"total_budget": {"amount": 1000, "currency": "EUR"}}, "INVALID_REQUEST", "total_budget.currency"),
    ],
)
def test_the_total_budget_must_match_the_packages(seller, extra, code, field):
    result = create(seller, buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 1_000), **extra))
    assert (result.adcp_error["code"], result.adcp_error["field"]) == (code, field)


def test_a_flight_that_has_already_ended_is_refused(seller):
    result = create(
        seller,
        buy_request(
            seller.clock, package("news-homepage-display", "cpm-fixed", 1_000), start=timedelta(days=-10), days=5
        ),
    )
    assert (result.adcp_error["code"], result.adcp_error["field"]) == ("INVALID_REQUEST", "end_time")


def test_asap_starts_the_flight_now(seller):
    request = CreateMediaBuyRequest.model_validate(
        {
            "idempotency_key": key(),
            "account": ACCOUNT,
            "brand": BRAND,
            "start_time": "asap",
            "end_time": iso(seller.clock.now + timedelta(days=3)),
            "packages": [package("news-homepage-display", "cpm-fixed", 1_000)],
        }
    )
    result = create(seller, request)
    assert result.data.media_buy_status.value == "active"
    assert result.data.packages[0].start_time == seller.clock.now


def test_a_package_may_fly_within_the_buy_and_inherit_its_bid(seller):
    now = seller.clock.now
    request = buy_request(
        seller.clock,
        package("news-homepage-display", "cpm-fixed", 1_000),
        package(
            "news-run-of-site",
            "cpm-auction",
            1_000,
            start_time=iso(now + timedelta(days=2)),
            end_time=iso(now + timedelta(days=4)),
        ),
        bidding={"bid_amount": 3.0},
    )
    result = create(seller, request)
    assert result.success, result.error
    fixed, auction = result.data.packages
    assert fixed.bidding is None
    assert auction.bidding.bid_amount == 3.0
    assert (auction.start_time, auction.end_time) == (now + timedelta(days=2), now + timedelta(days=4))

    outside = buy_request(
        seller.clock,
        package("news-homepage-display", "cpm-fixed", 1_000, end_time=iso(now + timedelta(days=30))),
    )
    assert create(seller, outside).adcp_error["code"] == "INVALID_REQUEST"


def test_media_buys_can_be_filtered_by_status(seller):
    soon = create(
        seller, buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 1_000), start=timedelta(days=1))
    )
    now = create(seller, buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 1_000)))

    async def read(client):
        one = await client.get_media_buys(GetMediaBuysRequest.model_validate({"status_filter": "active"}))
        both = await client.get_media_buys(
            GetMediaBuysRequest.model_validate({"status_filter": ["active", "pending_start"]})
        )
        return one, both

    one, both = seller.run(read)
    assert [b.media_buy_id for b in one.data.media_buys] == [now.data.media_buy_id]
    assert {b.media_buy_id for b in both.data.media_buys} == {soon.data.media_buy_id, now.data.media_buy_id}
