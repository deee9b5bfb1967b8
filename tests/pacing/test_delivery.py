"""Reading delivery from sellers: checked, stored once, isolating a dead seller, moving deals through their states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import time_machine

from buyer.events.models import Event, EventType
from buyer.sandbox import create_app
from buyer.sellers.errors import SellerError
from buyer.sellers.models import Protocol, Seller
from buyer.sellers.types import DealPerformance
from campaigns.models import BookedDeal, DealStatus, DealTransition
from pacing import tasks
from pacing.delivery import delivery_chunks, delivery_pull_all, delivery_record
from pacing.models import DealDelivery, DeliveryReading
from tests.conftest import serve_in_thread
from tests.pacing.conftest import START, at, book_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox(fast_sellers):
    app = create_app(delivery_profiles={"*": "on_pace"})
    with serve_in_thread(app) as url:
        Seller.objects.create(name="Sandbox", base_url=url)
        yield app, url


def _profile(url: str, deal: BookedDeal, profile: str) -> None:
    assert httpx.put(f"{url}/_sandbox/delivery/deals/{deal.deal_id}", json={"profile": profile}).status_code == 200


def _booked(**kwargs):
    with time_machine.travel(at(1, 0) - timedelta(days=2), tick=False):
        job = book_campaign(start=START, **kwargs)
    return job, list(job.deals.order_by("pk"))


def test_delivery_is_read_stored_and_moves_the_deal_to_delivering(sandbox):
    _, url = sandbox
    job, deals = _booked()
    with time_machine.travel(at(11), tick=False):
        result = delivery_pull_all()
        seller = {d.pk: httpx.get(f"{url}/api/v1/deals/{d.deal_id}/performance").json() for d in deals}

    assert (result.stored, result.failed) == (len(deals), 0)
    for deal in deals:
        state = DealDelivery.objects.get(deal=deal)
        assert state.impressions == seller[deal.pk]["impressions_delivered"] > 0
        assert state.spend_micros == seller[deal.pk]["spend"]["amount_micros"]
        assert state.as_of == at(11) and state.error == ""
        deal.refresh_from_db()
        assert deal.status == DealStatus.DELIVERING
        move = DealTransition.objects.filter(deal=deal).last()
        assert (move.from_status, move.to_status, move.actor) == ("booked", "delivering", "system")
    assert Event.objects.filter(event_type=EventType.DEAL_STATUS_CHANGED, flow_id=str(job.pk)).count() == len(deals)


def test_the_same_reading_twice_is_stored_once_and_a_redelivered_task_changes_nothing(sandbox):
    _job, deals = _booked()
    with time_machine.travel(at(5), tick=False):
        chunks = delivery_chunks()
        for seller_id, pks in chunks * 2:  # the task, delivered twice
            tasks.read_delivery_chunk.run(seller_id, pks)
    with time_machine.travel(at(5) + timedelta(hours=1), tick=False):
        delivery_pull_all()

    assert DeliveryReading.objects.count() == 2 * len(deals)  # one per change, not one per read
    with time_machine.travel(at(5) + timedelta(hours=1), tick=False):
        assert delivery_pull_all().unchanged == len(deals)
    assert DeliveryReading.objects.count() == 2 * len(deals)


def test_the_same_figures_later_only_move_the_moment_forward():
    deal = _fake_deal()
    first = DealPerformance(deal.deal_id, 1000, Decimal("10"), as_of=at(3))
    again = DealPerformance(deal.deal_id, 1000, Decimal("10"), as_of=at(4))

    assert delivery_record(deal=deal, reading=first, fetched_at=at(3)).stored
    assert not delivery_record(deal=deal, reading=again, fetched_at=at(4)).stored

    assert DeliveryReading.objects.filter(deal=deal).count() == 1
    assert DealDelivery.objects.get(deal=deal).as_of == at(4)


def test_zeros_with_not_started_are_data_not_an_error():
    deal = _fake_deal()
    reading = DealPerformance(deal.deal_id, 0, Decimal(0), as_of=at(2), delivery_pacing="not_started")

    outcome = delivery_record(deal=deal, reading=reading, fetched_at=at(2))

    state = DealDelivery.objects.get(deal=deal)
    assert (outcome.error, state.impressions, state.seller_pacing, state.error) == ("", 0, "not_started", "")
    assert DeliveryReading.objects.filter(deal=deal).count() == 1
    assert BookedDeal.objects.get(pk=deal.pk).status == DealStatus.BOOKED  # nothing delivered: still booked


@pytest.mark.parametrize(
    ("reading", "why"),
    [
        (DealPerformance("D", 900, Decimal("9"), as_of=at(5)), "went backwards"),
        (DealPerformance("D", 1500, Decimal("9"), as_of=at(5)), "went backwards"),
        (DealPerformance("D", 10**12, Decimal("10"), as_of=at(5)), "not plausible"),
        (DealPerformance("D", 1500, Decimal("15"), as_of=at(9)), "in the future"),
        (SellerError("performance.impressions_delivered: must be >= 0", code="invalid_response"), "invalid_response"),
    ],
)
def test_a_reading_that_goes_backwards_or_is_garbage_is_the_sellers_error_and_never_delivery(reading, why):
    deal = _fake_deal()
    delivery_record(deal=deal, reading=DealPerformance("D", 1000, Decimal("10"), as_of=at(4)), fetched_at=at(4))

    outcome = delivery_record(deal=deal, reading=reading, fetched_at=at(5))

    state = DealDelivery.objects.get(deal=deal)
    assert why in outcome.error and why in state.error
    assert (state.impressions, state.spend_micros, state.as_of) == (1000, 10_000_000, at(4))
    assert state.consecutive_errors == 1 and DeliveryReading.objects.filter(deal=deal).count() == 1


def test_a_broken_seller_that_reports_less_each_time_is_refused_over_http(sandbox):
    _, url = sandbox
    _, deals = _booked()
    _profile(url, deals[0], "backwards")
    with time_machine.travel(at(6), tick=False):
        delivery_pull_all()
    with time_machine.travel(at(7), tick=False):
        result = delivery_pull_all()

    assert "went backwards" in result.errors[deals[0].pk]
    assert DealDelivery.objects.get(deal=deals[0]).error.startswith("delivery went backwards")
    assert DealDelivery.objects.get(deal=deals[1]).error == ""


def test_a_negative_reading_over_http_is_invalid_and_counted_by_the_breaker(sandbox):
    _, url = sandbox
    _, deals = _booked()
    _profile(url, deals[0], "negative")
    with time_machine.travel(at(6), tick=False):
        result = delivery_pull_all()

    assert "invalid_response" in result.errors[deals[0].pk]
    assert not DeliveryReading.objects.filter(deal=deals[0]).exists()
    assert Seller.objects.get().last_error  # the seller's health recorded the failure


def test_a_dead_seller_is_recorded_and_retried_next_time_while_the_others_proceed(fast_sellers):
    live, dead = create_app(delivery_profiles={"*": "on_pace"}), create_app(delivery_profiles={"*": "on_pace"})
    with serve_in_thread(live) as live_url:
        up = Seller.objects.create(name="Live", base_url=live_url)
        with serve_in_thread(dead) as dead_url:
            down = Seller.objects.create(name="Dead", base_url=dead_url, enabled=False)
            _booked(name="At the live seller")
            Seller.objects.filter(pk=up.pk).update(enabled=False)
            Seller.objects.filter(pk=down.pk).update(enabled=True)
            _booked(name="At the seller that goes away")
        deals = list(BookedDeal.objects.order_by("pk"))
        assert {d.seller_id for d in deals} == {up.pk, down.pk}

        # The second seller has gone away since booking.
        with time_machine.travel(at(4), tick=False):
            first = delivery_pull_all()
        with time_machine.travel(at(5), tick=False):
            second = delivery_pull_all()

    dead_deals = [d for d in deals if d.seller_id == down.pk]
    live_deals = [d for d in deals if d.seller_id != down.pk]
    assert first.failed == second.failed == len(dead_deals)
    assert first.stored == second.stored == len(live_deals)
    for deal in dead_deals:
        state = DealDelivery.objects.get(deal=deal)
        assert state.consecutive_errors == 2 and "connection_error" in state.error
    # One event when the deals start failing, not one per attempt.
    assert Event.objects.filter(event_type=EventType.PACING_DELIVERY_FAILED).count() == 1
    assert Seller.objects.get(pk=down.pk).consecutive_failures >= 1


def test_deals_complete_when_fully_delivered_or_when_the_flight_is_over(sandbox):
    _, url = sandbox
    _, deals = _booked()
    fast, slow = deals
    _profile(url, fast, "over:1.5")
    _profile(url, slow, "under:0.5")
    with time_machine.travel(at(22), tick=False):  # 1.5 x 21.5/30 > 1: the fast deal has delivered it all
        delivery_pull_all()
    assert BookedDeal.objects.get(pk=fast.pk).status == DealStatus.COMPLETED
    assert BookedDeal.objects.get(pk=slow.pk).status == DealStatus.DELIVERING
    with time_machine.travel(at(31, 1), tick=False):
        result = delivery_pull_all()

    assert result.stored == 1  # the completed deal is no longer read
    assert BookedDeal.objects.get(pk=slow.pk).status == DealStatus.COMPLETED
    reasons = [t.reason for t in DealTransition.objects.filter(deal=slow, to_status=DealStatus.COMPLETED)]
    assert reasons == ["the flight is over"]


def test_a_makegood_the_seller_reports_is_followed(sandbox):
    _, url = sandbox
    _, deals = _booked()
    _profile(url, deals[0], "makegood")
    with time_machine.travel(at(8), tick=False):
        delivery_pull_all()

    assert BookedDeal.objects.get(pk=deals[0].pk).status == DealStatus.MAKEGOOD_PENDING
    assert BookedDeal.objects.get(pk=deals[0].pk).seller_status == "makegood_pending"


@pytest.mark.parametrize("dialect", ["sandbox", "reference"])
def test_delivery_is_read_over_mcp_too(fast_sellers, dialect):
    app = create_app(delivery_profiles={"*": "on_pace"}, mcp_dialect=dialect)
    with serve_in_thread(app) as url:
        Seller.objects.create(name="MCP seller", base_url=url, protocol=Protocol.MCP)
        _, deals = _booked()
        with time_machine.travel(at(10), tick=False):
            result = delivery_pull_all()
            rest = httpx.get(f"{url}/api/v1/deals/{deals[0].deal_id}/performance").json()

    assert (result.stored, result.failed) == (len(deals), 0)
    state = DealDelivery.objects.get(deal=deals[0])
    assert state.impressions > 0
    # The reference shape has no spend: impressions x the average CPM, rounded up to the cent.
    assert abs(state.spend_micros - rest["spend"]["amount_micros"]) < 10_000 or dialect == "sandbox"


def test_deals_are_not_read_before_their_flight_or_once_finished(sandbox):
    _, deals = _booked()
    with time_machine.travel(datetime(2027, 2, 20, tzinfo=UTC), tick=False):
        assert delivery_chunks() == []
    BookedDeal.objects.filter(pk=deals[0].pk).update(status=DealStatus.CANCELLED)
    with time_machine.travel(at(3), tick=False):
        assert [pks for _, pks in delivery_chunks()] == [[deals[1].pk]]


def _fake_deal() -> BookedDeal:
    from tests.pacing.conftest import make_campaign

    _, deals = make_campaign(deals={"ctv": 20_000_000})
    deal = deals["ctv"]
    BookedDeal.objects.filter(pk=deal.pk).update(impressions=2000)
    deal.impressions = 2000
    return deal


def test_an_absurd_spend_is_refused_before_it_can_break_the_chunk():
    deal = _fake_deal()
    outcome = delivery_record(
        deal=deal, reading=DealPerformance("D", 10, Decimal("1e300"), as_of=at(5)), fetched_at=at(5)
    )
    assert "not plausible" in outcome.error
    assert DealDelivery.objects.get(deal=deal).spend_micros == 0


def test_a_spend_worked_out_from_a_falling_average_cpm_does_not_go_backwards():
    deal = _fake_deal()
    delivery_record(
        deal=deal, reading=DealPerformance("D", 1000, Decimal("15"), as_of=at(4), spend_derived=True), fetched_at=at(4)
    )
    cheaper = DealPerformance("D", 1100, Decimal("13.2"), as_of=at(5), spend_derived=True)  # avg CPM 15 → 12

    outcome = delivery_record(deal=deal, reading=cheaper, fetched_at=at(5))

    state = DealDelivery.objects.get(deal=deal)
    assert outcome.error == "" and (state.impressions, state.spend_micros) == (1100, 15_000_000)
