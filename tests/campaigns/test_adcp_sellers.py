"""Jobs that book at AdCP sales agents beside IAB sellers: one budget, one approval, deals from both.

The AdCP seller is the sandbox (``buyer.sandbox_adcp``) on its own settable clock, served over real HTTP; the
buyer reaches it through ``registry.client_for`` like any seller (protocol ``adcp``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
import time_machine
from django.utils import timezone

from buyer.accounts.models import Role
from buyer.events.models import Event, EventType
from buyer.sandbox import create_app as create_iab_app
from buyer.sandbox_adcp import create_app as create_adcp_app
from buyer.sellers.models import Seller
from campaigns import ledger, services
from campaigns.models import BookedDeal, JobStage, JobStatus, Recommendation, RecommendationStatus
from campaigns.seller_tasks import seller_tasks_poll
from campaigns.sweeper import jobs_sweep
from tests.campaigns.test_flow import new_job, run
from tests.conftest import serve_in_thread
from tests.dashboard._admin import signed_in
from tests.sandbox_adcp._support import Clock

pytestmark = [
    pytest.mark.django_db,
    # The library reads the deprecated 3.1 ``bid_price`` of every package it sends, warning each time.
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning:adcp._null_clear"),
]

HOUR = 3600.0


@pytest.fixture
def sellers(fast_sellers, settings):
    """``sellers(**adcp_knobs)`` → (IAB sandbox app, AdCP sandbox app, its clock), both enabled sellers."""
    settings.SELLER_TIMEOUT_SECONDS = 10
    from contextlib import ExitStack

    with ExitStack() as stack:

        def make(**knobs):
            iab = create_iab_app(catalog="default")
            iab_url = stack.enter_context(serve_in_thread(iab))
            clock = Clock()
            adcp = create_adcp_app(clock=clock, **knobs)
            adcp_url = stack.enter_context(serve_in_thread(adcp))
            Seller.objects.create(name="IAB Sandbox", base_url=iab_url)
            seller = Seller(name="AdCP Sandbox", base_url=adcp_url, protocol="adcp")
            seller.set_credential("buyer-token")
            seller.save()
            return iab, adcp, clock

        yield make


def brief(**extra):
    today = timezone.now().date()
    fields = dict(
        channels=["display", "ctv"],
        budget=Decimal(120000),
        start_date=today,
        end_date=today + timedelta(days=20),
        kpis={"max_cpm_usd": 40},
    )
    fields.update(extra)
    return fields


def lines_at(job, seller_name):
    return list(Recommendation.objects.filter(job=job, seller_name=seller_name))


def adcp_lines(job):
    return lines_at(job, "AdCP Sandbox")


def booked(job, seller_name):
    return list(BookedDeal.objects.filter(job=job, recommendation__seller_name=seller_name))


def skip_reasons(job):
    """Why research left each AdCP product out (the research.completed event's ``skipped``)."""
    event = Event.objects.get(flow_id=str(job.pk), event_type=EventType.RESEARCH_COMPLETED)
    return {s["product_id"]: s["reason"] for s in event.payload["skipped"] if s["seller"] == "AdCP Sandbox"}


@pytest.fixture
def media_buyer(client):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    return client


def held(lines):
    return sum(ledger.held_by_line(lines).values())


def approve_and_book(job):
    services.job_approve_all(job_id=str(job.pk), actor="alice")
    return run(job, JobStage.BOOK)


def poll(at):
    """One beat of the poller at ``at`` (our clock; the seller keeps its own)."""
    return seller_tasks_poll(now=at)


def test_one_job_books_at_an_iab_and_an_adcp_seller_under_one_budget_and_one_approval(sellers, media_buyer):
    _iab, adcp, _ = sellers()
    job = run(new_job(**brief()), JobStage.PLAN, JobStage.RESEARCH)
    assert (job.status, job.stage) == (JobStatus.AWAITING_APPROVAL, JobStage.APPROVAL), job.errors
    assert adcp_lines(job) and lines_at(job, "IAB Sandbox")
    # One approval for every line, whichever protocol its seller speaks.
    job = approve_and_book(job)
    assert job.status == JobStatus.COMPLETED, job.errors
    iab_deals, adcp_deals = booked(job, "IAB Sandbox"), booked(job, "AdCP Sandbox")
    assert iab_deals and adcp_deals
    assert all(d.deal_id.startswith("DEMO-") for d in iab_deals)
    # An AdCP deal is the seller's media buy, on the approved terms.
    buys = adcp.state.sandbox.media_buys
    assert {d.deal_id for d in adcp_deals} == set(buys)
    for deal in adcp_deals:
        line = deal.recommendation
        package = buys[deal.deal_id].packages[0]
        assert package.product.product_id == line.product_id
        assert package.budget == line.cost
        assert (deal.cpm_micros, deal.impressions, deal.cost_micros) == (
            line.cpm_micros,
            line.impressions,
            line.cost_micros,
        )
        assert deal.pricing["media_buy_id"] == deal.deal_id
    # One budget: everything booked is committed in one ledger, within the campaign's budget.
    total = sum(d.cost_micros for d in iab_deals + adcp_deals)
    assert ledger.committed_micros(job) == total <= job.campaign.budget_micros
    # Both kinds of deal on the job page and the deals page.
    page = media_buyer.get(f"/app/jobs/{job.pk}/").content.decode()
    deals_page = media_buyer.get("/app/deals/").content.decode()
    for deal in iab_deals + adcp_deals:
        assert deal.deal_id in page and deal.deal_id in deals_page
    detail = media_buyer.get(f"/app/deals/{adcp_deals[0].pk}/")
    assert detail.status_code == 200 and adcp_deals[0].deal_id in detail.content.decode()


def test_a_seller_offering_the_compact_lifecycle_is_bought_from_its_offer_feed_with_buy_products(sellers):
    _iab, adcp, clock = sellers(compact=True, approval_delay=HOUR)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    lines = adcp_lines(job)
    assert lines and all(r.quote_id.startswith("adcp2~") for r in lines)  # listed with their feed versions
    assert job.stage == JobStage.AWAIT_SELLER, job.errors
    tasks = adcp.state.sandbox.tasks
    assert len(tasks) == len(lines) and {t.task_type for t in tasks.values()} == {"buy_products"}
    run(job, JobStage.BOOK)  # a redelivered booking step buys nothing twice
    assert len(tasks) == len(lines)
    clock.advance(seconds=HOUR + 1)
    assert poll(timezone.now() + timedelta(minutes=1))["booked"] == len(lines)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.errors
    deals = booked(job, "AdCP Sandbox")
    buys = adcp.state.sandbox.media_buys
    assert sorted(d.deal_id for d in deals) == sorted(buys) and len(deals) == len(lines)
    for deal in deals:
        line = deal.recommendation
        assert buys[deal.deal_id].order.kind == "buy_products"
        assert (deal.cpm_micros, deal.impressions, deal.cost_micros) == (
            line.cpm_micros,
            line.impressions,
            line.cost_micros,
        )
        assert deal.pricing["package_id"] == buys[deal.deal_id].packages[0].package_id


def test_an_offer_repriced_after_approval_fails_its_line_saying_so_and_the_rest_books(sellers):
    _iab, adcp, _ = sellers(compact=True)
    job = run(new_job(**brief()), JobStage.PLAN, JobStage.RESEARCH)
    line, *others = adcp_lines(job)
    assert others, "the other AdCP lines book"
    option = line.pricing["pricing_option_id"]
    adcp.state.sandbox.reprice(line.product_id, option, fixed=Decimal("35"), floor=None)
    job = approve_and_book(job)
    assert job.status == JobStatus.COMPLETED, job.errors
    line.refresh_from_db()
    assert line.status == RecommendationStatus.BOOKING_FAILED
    assert "the seller changed this offer after it was quoted (" in line.status_reason
    assert "$35.00" in line.status_reason and "nothing was bought: research again" in line.status_reason
    assert not BookedDeal.objects.filter(recommendation=line).exists()
    assert held([line]) == 0  # its money is released
    bought = {p.product.product_id for b in adcp.state.sandbox.media_buys.values() for p in b.packages}
    assert line.product_id not in bought
    assert booked(job, "IAB Sandbox") and booked(job, "AdCP Sandbox")


def test_a_floor_only_product_is_bid_at_most_the_ceiling_and_recorded_as_floor_and_bid(sellers, media_buyer):
    _iab, adcp, _ = sellers()
    job = run(
        new_job(auto_approve=True, **brief(channels=["display"], kpis={"target_cpm_usd": 3.1, "max_cpm_usd": 3.5})),
        JobStage.PLAN,
        JobStage.RESEARCH,
        JobStage.BOOK,
    )
    assert job.status == JobStatus.COMPLETED, job.errors
    [line] = [r for r in adcp_lines(job) if r.product_id == "news-run-of-site"]
    # The seller named only its floor ($2.50): the CPM is the buyer's bid, the brief's target, under its ceiling.
    assert line.cpm == Decimal("3.1") <= Decimal("3.5")
    assert line.pricing["price_type"] == "floor_only"
    assert (Decimal(line.pricing["floor_cpm"]), Decimal(line.pricing["bid_cpm"])) == (Decimal("2.5"), Decimal("3.1"))
    assert "floor only" in line.rationale and "bids $3.10" in line.rationale
    assert "availability not stated by the seller" in line.rationale  # AdCP states none: never "0 available"
    deal = line.deal
    assert deal.pricing["price_type"] == "floor_only"
    assert (Decimal(deal.pricing["floor_cpm"]), Decimal(deal.pricing["bid_cpm"])) == (Decimal("2.5"), Decimal("3.1"))
    package = adcp.state.sandbox.media_buys[deal.deal_id].packages[0]
    assert package.bid == Decimal("3.1") and package.option.option_id == "cpm-auction"
    page = media_buyer.get(f"/app/deals/{deal.pk}/").content.decode()
    assert "Seller's floor" in page and "$2.50 CPM" in page and "Our bid" in page and "$3.10 CPM" in page
    assert "Quoted" not in page and deal.deal_id in page


def test_a_floor_above_the_ceiling_is_never_bought_nor_priced(sellers):
    sellers()
    job = run(new_job(**brief(channels=["display"], kpis={"max_cpm_usd": 2})), JobStage.PLAN, JobStage.RESEARCH)
    assert not [r for r in adcp_lines(job) if r.product_id == "news-run-of-site"]
    reasons = skip_reasons(job)
    assert "floor $2.50 is above the max CPM $2.00" in reasons["news-run-of-site"]


def test_products_priced_other_than_by_cpm_are_skipped_with_their_model_never_converted(sellers):
    sellers()
    job = run(new_job(**brief(channels=["display"])), JobStage.PLAN, JobStage.RESEARCH)
    reasons = skip_reasons(job)
    assert reasons["news-viewable-display"] == "priced by vcpm, only CPM pricing is bought"
    assert reasons["news-homepage-takeover"] == "priced by flat_rate, only CPM pricing is bought"


def test_a_submitted_buy_is_followed_until_it_completes_with_no_worker_waiting_and_no_duplicate(sellers, monkeypatch):
    _iab, adcp, clock = sellers(approval_delay=HOUR)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    # The IAB lines are booked; the AdCP orders wait at the seller; the step has ended (no worker waits).
    assert (job.status, job.stage) == (JobStatus.RUNNING, JobStage.AWAIT_SELLER), job.errors
    assert booked(job, "IAB Sandbox") and not booked(job, "AdCP Sandbox")
    pending = adcp_lines(job)
    assert pending and all(r.status == RecommendationStatus.APPROVED and r.seller_task_id for r in pending)
    assert held(pending) == sum(r.cost_micros for r in pending)  # their money stays reserved
    assert Event.objects.filter(flow_id=str(job.pk), event_type=EventType.BOOKING_PENDING).count() == len(pending)
    # Neither the sweeper nor a redelivered booking step touches them (nor books them twice).
    jobs_sweep()
    run(job, JobStage.BOOK)
    assert len(adcp.state.sandbox.tasks) == len(pending) and not adcp.state.sandbox.media_buys

    now = timezone.now() + timedelta(minutes=1)
    assert poll(now)["pending"] == len(pending)
    job.refresh_from_db()
    assert job.stage == JobStage.AWAIT_SELLER

    # The seller approves; the worker polling it is killed before it records the deal.
    clock.advance(seconds=HOUR + 1)

    def killed(**kwargs):
        raise SystemExit("worker killed mid-poll")

    monkeypatch.setattr("campaigns.seller_tasks.deal_record", killed)
    with pytest.raises(SystemExit):
        poll(now + timedelta(minutes=1))
    monkeypatch.undo()
    assert not booked(job, "AdCP Sandbox")
    # Its claim lapses (an interval past the slowest poll); the next poll records each buy once, finishes the job.
    # The lines it had not reached are polled by the next beat; the one it held waits until its claim lapses.
    assert poll(now + timedelta(minutes=1, seconds=30))["booked"] == len(pending) - 1
    result = poll(now + timedelta(minutes=5))
    assert result["booked"] == 1 and result["jobs_finished"] == 1
    assert poll(now + timedelta(minutes=10))["polled"] == 0
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.errors
    deals = booked(job, "AdCP Sandbox")
    assert sorted(d.deal_id for d in deals) == sorted(adcp.state.sandbox.media_buys)
    assert len(deals) == len(pending)
    assert held(pending) == sum(d.cost_micros for d in deals)  # committed as booked, nothing more
    assert ledger.committed_micros(job) == sum(d.cost_micros for d in BookedDeal.objects.filter(job=job))


def test_an_order_the_seller_rejects_fails_its_line_releases_its_money_and_the_job_completes(sellers):
    _iab, adcp, _clock = sellers(approval_delay=HOUR)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    pending = adcp_lines(job)
    for line in pending:
        response = httpx.post(
            f"{line.seller_url}/_sandbox/tasks/{line.seller_task_id}/reject",
            json={"reason": "Brand safety review failed"},
        )
        assert response.status_code == 200, response.text
    poll(timezone.now() + timedelta(minutes=1))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.errors  # the IAB deals stand
    for line in adcp_lines(job):
        assert line.status == RecommendationStatus.BOOKING_FAILED
        assert "rejected the order" in line.status_reason and "Brand safety review failed" in line.status_reason
    assert not booked(job, "AdCP Sandbox") and not adcp.state.sandbox.media_buys
    assert held(pending) == 0
    assert any("Brand safety review failed" in e for e in job.errors)


def test_input_required_reaches_the_media_buyer_with_the_sellers_message_then_books(sellers, media_buyer):
    sellers(input_required=True, input_message="Upload the 300x250 creative before we can traffic.")
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    now = timezone.now() + timedelta(minutes=1)
    poll(now)
    lines = adcp_lines(job)
    assert all(r.seller_task_status == "input-required" for r in lines)
    assert all("Upload the 300x250 creative" in r.status_reason for r in lines)
    page = media_buyer.get(f"/app/jobs/{job.pk}/").content.decode()
    assert "awaiting seller · input-required" in page and "Upload the 300x250 creative" in page
    assert "Waiting for sellers to confirm orders they are reviewing" in page
    for line in lines:
        httpx.post(f"{line.seller_url}/_sandbox/tasks/{line.seller_task_id}/approve").raise_for_status()
    poll(now + timedelta(minutes=1))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.errors
    assert len(booked(job, "AdCP Sandbox")) == len(lines)


def test_a_task_that_never_leaves_working_is_a_seller_error_and_no_deal_is_recorded(sellers, settings):
    settings.ADCP_WORKING_TIMEOUT_SECONDS = 60
    _iab, _adcp, clock = sellers(stuck=True)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    clock.advance(seconds=1)
    now = timezone.now() + timedelta(minutes=1)
    poll(now)
    assert all(r.seller_task_status == "working" for r in adcp_lines(job))
    poll(now + timedelta(minutes=2))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.errors
    for line in adcp_lines(job):
        assert line.status == RecommendationStatus.BOOKING_FAILED
        assert "stayed 'working'" in line.status_reason
    assert not booked(job, "AdCP Sandbox")
    assert held(adcp_lines(job)) == 0


def test_answers_that_fail_the_adcp_schema_are_a_seller_error_the_other_seller_books(sellers):
    _iab, _adcp, _clock = sellers(malformed=True)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    assert not adcp_lines(job) and booked(job, "IAB Sandbox")
    assert any("AdCP Sandbox" in e and "fails the AdCP schema" in e for e in job.errors), job.errors
    seller = Seller.objects.get(name="AdCP Sandbox")
    assert seller.consecutive_failures >= 1  # counted by its breaker


def test_cancelling_while_a_seller_reviews_waits_for_its_decision_then_ends_cancelled(sellers):
    _iab, adcp, clock = sellers(approval_delay=HOUR)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    services.job_cancel(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested  # an order under review cannot be withdrawn
    clock.advance(seconds=HOUR + 1)
    poll(timezone.now() + timedelta(minutes=1))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    # What the seller booked meanwhile is recorded, never lost.
    assert len(booked(job, "AdCP Sandbox")) == len(adcp.state.sandbox.media_buys) > 0


def test_pacing_reads_delivery_from_both_kinds_of_seller_onto_one_campaign_chart(sellers, media_buyer, request):
    from pacing.delivery import delivery_pull_all
    from pacing.models import DealDelivery, PacingSnapshot, Scope
    from pacing.services import scheduled_snapshot

    _iab, adcp, clock = sellers()
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    deals = list(BookedDeal.objects.filter(job=job))
    # A day and a half into the flight, for both sellers (the AdCP sandbox keeps its own clock).
    clock.advance(hours=36)
    later = time_machine.travel(clock.now, tick=False)
    later.start()
    request.addfinalizer(later.stop)
    result = delivery_pull_all(job_ids=[job.pk])
    assert (result.stored, result.failed) == (len(deals), 0), list(DealDelivery.objects.values_list("error"))
    readings = {d.deal_id: DealDelivery.objects.get(deal=d) for d in deals}
    adcp_deals = booked(job, "AdCP Sandbox")
    for deal in adcp_deals:
        [delivery] = [d for d in adcp.state.sandbox.media_buys[deal.deal_id].packages]
        seller_says = delivery.metrics(clock.now)
        assert readings[deal.deal_id].impressions == seller_says.impressions > 0
        # The seller reports spend to the cent.
        assert readings[deal.deal_id].spend_micros == seller_says.spend.quantize(Decimal("0.01")) * 1_000_000
    scheduled_snapshot()
    [campaign] = PacingSnapshot.objects.filter(job=job, scope=Scope.CAMPAIGN)
    assert campaign.actual_micros == sum(r.spend_micros for r in readings.values())
    assert campaign.actual_micros > sum(readings[d.deal_id].spend_micros for d in booked(job, "IAB Sandbox"))
    page = media_buyer.get(f"/app/pacing/campaigns/{job.pk}/").content.decode()
    for deal in deals:
        assert deal.deal_id in page


@pytest.mark.parametrize("card", [True, False], ids=["agent-card", "capabilities-only"])
def test_auto_discovers_an_adcp_sales_agent_by_its_card_or_its_capabilities(fast_sellers, card):
    from buyer.sellers.registry import client_for

    with serve_in_thread(create_adcp_app(agent_card=card)) as url:
        seller = Seller.objects.create(name="Unknown agent", base_url=url, protocol="auto")
        client = client_for(seller)
        try:
            assert client.protocol == "adcp"
            assert client.health() is True
        finally:
            client.close()
    seller.refresh_from_db()
    assert seller.discovered_protocol == "adcp" and seller.effective_protocol == "adcp"


def test_adcp_endpoints_are_seeded_as_adcp_sellers_and_disabled_when_dropped(settings):
    from buyer.sellers.services import seller_seed_from_settings

    settings.SELLER_ENDPOINTS = []
    settings.IAB_SERVER_URL_IS_SET = False
    settings.ADCP_SELLER_ENDPOINTS = ["http://127.0.0.1:9"]
    [seller] = seller_seed_from_settings()
    assert (seller.base_url, seller.protocol, seller.seeded_from_env) == ("http://127.0.0.1:9", "adcp", True)
    settings.ADCP_SELLER_ENDPOINTS = []
    assert seller_seed_from_settings() == []
    seller.refresh_from_db()
    assert not seller.enabled


def test_a_cancel_during_booking_never_sends_an_order_that_was_not_sent(sellers):
    _iab, adcp, _ = sellers()
    job = run(new_job(**brief()), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk), actor="alice")
    # A booking step had started when the cancel came (a cancel then only asks the step to stop).
    type(job).objects.filter(pk=job.pk).update(cancel_requested=True)
    job = run(job, JobStage.BOOK)
    assert job.status == JobStatus.CANCELLED
    assert not adcp.state.sandbox.media_buys and not adcp.state.sandbox.tasks
    for line in adcp_lines(job):
        assert line.status == RecommendationStatus.BOOKING_FAILED and "nothing was booked" in line.status_reason
    assert held(adcp_lines(job)) == 0


def test_a_task_that_cannot_be_read_for_longer_than_a_review_fails_its_line(sellers):
    _iab, adcp, _clock = sellers(approval_delay=HOUR)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    adcp.state.sandbox.tasks.clear()  # the seller forgot the tasks: every status check fails
    now = timezone.now()
    assert poll(now + timedelta(minutes=1))["errors"] == len(adcp_lines(job))
    assert all(r.status == RecommendationStatus.APPROVED for r in adcp_lines(job))
    assert any(
        "checking the seller's task" in e for e in Recommendation.objects.get(pk=adcp_lines(job)[0].pk).job.errors
    )
    poll(now + timedelta(hours=73))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.errors
    for line in adcp_lines(job):
        assert line.status == RecommendationStatus.BOOKING_FAILED and "could not be read" in line.status_reason
    assert held(adcp_lines(job)) == 0


@pytest.mark.parametrize(
    ("mode", "sellers_there", "endpoints", "wanted"),
    [
        ("auto", [], [], False),
        ("auto", [{"protocol": "adcp"}], [], True),
        ("auto", [{"protocol": "adcp", "enabled": False}], [], False),
        ("auto", [{"protocol": "auto", "discovered_protocol": "adcp"}], [], True),
        ("auto", [{"protocol": "rest"}], ["http://127.0.0.1:9"], True),
        ("on", [], [], True),
        ("off", [{"protocol": "adcp"}], [], False),
    ],
)
def test_workers_preload_the_adcp_client_only_where_an_adcp_seller_is(settings, mode, sellers_there, endpoints, wanted):
    from buyer.sellers.adcp_preload import adcp_preload_wanted

    settings.ADCP_PRELOAD, settings.ADCP_SELLER_ENDPOINTS = mode, endpoints
    for n, fields in enumerate(sellers_there):
        Seller.objects.create(name=f"S{n}", base_url=f"http://127.0.0.1:{9000 + n}", **fields)
    assert adcp_preload_wanted() is wanted


# --- an approved reallocation cuts the giving channel's AdCP deals at their seller -------------------------------


def _reallocation_from_display(sellers, request, *, days=4):
    """A campaign booked at both sellers, ``days`` into its flight, display pacing at half its due and ctv 30 %
    ahead in our records: a proposal moving money from display to ctv. (job, proposal, AdCP app, its clock)."""
    from pacing.maths import elapsed_share
    from pacing.models import ReallocationProposal
    from pacing.snapshots import snapshot_run_create, snapshot_take
    from tests.pacing.conftest import deliver

    _iab, adcp, clock = sellers()
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    assert {d.channel for d in booked(job, "AdCP Sandbox")} >= {"display"}, "the AdCP seller must hold a display deal"
    clock.advance(days=days)
    moment = time_machine.travel(clock.now, tick=False)
    moment.start()
    request.addfinalizer(moment.stop)
    share = elapsed_share(job.campaign.start_date, job.campaign.end_date, clock.now)
    for deal in BookedDeal.objects.filter(job=job):
        pace = Decimal("0.5") if deal.channel == "display" else Decimal("1.3")
        deliver(deal, spend_micros=int(deal.cost_micros * share * pace), as_of=clock.now)
    snapshot_take(run=snapshot_run_create(), as_of=clock.now)
    proposal = ReallocationProposal.objects.get(job=job)
    assert {(m.from_channel, m.to_channel) for m in proposal.moves.all()} == {("display", "ctv")}
    return job, proposal, adcp, clock


def test_an_approved_reallocation_cuts_the_giving_channels_adcp_deals_at_the_seller(
    sellers, request, django_capture_on_commit_callbacks, media_buyer
):
    from pacing.budget_cuts import budget_cuts_apply
    from pacing.models import CutStatus, PacingSnapshot, Scope, SellerBudgetCut
    from pacing.reallocation import proposal_approve

    job, proposal, adcp, clock = _reallocation_from_display(sellers, request)
    committed = ledger.committed_micros(job)
    before = {d.pk: (d.cost_micros, d.impressions) for d in BookedDeal.objects.filter(job=job)}
    with django_capture_on_commit_callbacks(execute=False) as queued:
        proposal_approve(proposal_id=proposal.pk, actor="ada")
    # The cuts are sent after the approval commits (beside the top-up's dispatch), never inside it.
    assert [c.__qualname__ for c in queued if "_approve" in c.__qualname__] == ["_approve.<locals>.<lambda>"]
    released = committed - ledger.committed_micros(job)
    cuts = list(SellerBudgetCut.objects.filter(proposal=proposal))
    display_adcp = [d for d in booked(job, "AdCP Sandbox") if d.channel == "display"]
    assert {c.deal_id for c in cuts} <= {d.pk for d in display_adcp} and cuts
    # Never more than the ledger released, and each deal keeps at least what it is projected to spend.
    assert 0 < sum(c.from_budget_micros - c.to_budget_micros for c in cuts) <= released
    for cut in cuts:
        projected = PacingSnapshot.objects.current().get(scope=Scope.DEAL, deal_id=cut.deal_id).projected_micros
        assert projected <= cut.to_budget_micros < cut.from_budget_micros
    # Nothing changed at the seller yet.
    buys = adcp.state.sandbox.media_buys
    assert all(buys[c.deal.deal_id].packages[0].budget == c.from_budget for c in cuts)

    assert budget_cuts_apply(now=clock.now) == {"applied": len(cuts)}
    for cut in SellerBudgetCut.objects.filter(proposal=proposal):
        assert cut.status == CutStatus.APPLIED
        package = buys[cut.deal.deal_id].packages[0]
        assert package.budget == cut.to_budget
        cut.deal.refresh_from_db()
        assert cut.deal.cost_micros == cut.to_budget_micros and cut.deal.impressions <= cut.to_impressions
        assert cut.deal.pricing["budget"] == str(cut.to_budget)
        event = Event.objects.get(event_type=EventType.DEAL_BUDGET_CHANGED, deal_id=cut.deal.deal_id)
        assert event.payload["to"] == str(cut.to_budget)
    # The IAB deals and the other channel's deals are untouched.
    cut_pks = {c.deal_id for c in cuts}
    for deal in BookedDeal.objects.filter(job=job).exclude(pk__in=cut_pks):
        assert (deal.cost_micros, deal.impressions) == before[deal.pk]
    # Done is done: nothing is sent twice.
    assert budget_cuts_apply(now=clock.now + timedelta(hours=1)) == {}
    # The media buyer sees each cut on the proposal (API and campaign page) and on the deal's page.
    answer = media_buyer.get(f"/pacing/proposals/{proposal.pk}").json()
    assert sorted((c["deal_id"], c["status"], c["to_budget"]) for c in answer["budget_cuts"]) == sorted(
        (c.deal.deal_id, "applied", float(c.to_budget)) for c in cuts
    )
    page = media_buyer.get(f"/app/pacing/campaigns/{job.pk}/").content.decode()
    assert "Budgets cut at sellers" in page and all(c.deal.deal_id in page for c in cuts)
    deal_page = media_buyer.get(f"/app/deals/{cuts[0].deal_id}/").content.decode()
    assert 'id="budget-cuts"' in deal_page and f"reallocation {proposal.pk}" in deal_page


def test_a_budget_cut_sent_twice_after_a_lost_answer_cuts_once(sellers, request):
    from pacing.budget_cuts import budget_cuts_apply
    from pacing.models import CutStatus, SellerBudgetCut
    from pacing.reallocation import proposal_approve

    _job, proposal, adcp, clock = _reallocation_from_display(sellers, request)
    proposal_approve(proposal_id=proposal.pk, actor="ada")
    assert budget_cuts_apply(now=clock.now)["applied"]
    cut = SellerBudgetCut.objects.filter(proposal=proposal).first()
    revision = adcp.state.sandbox.media_buys[cut.deal.deal_id].revision
    # A worker killed after the seller applied it, before we recorded it: the cut is sent again, same key.
    SellerBudgetCut.objects.filter(pk=cut.pk).update(status=CutStatus.PENDING, decided_at=None)
    BookedDeal.objects.filter(pk=cut.deal_id).update(cost_micros=cut.from_budget_micros)
    cut.refresh_from_db()
    assert budget_cuts_apply(now=clock.now) == {}  # claimed for the length of the killed worker's calls
    assert budget_cuts_apply(now=cut.due_at) == {"applied": 1}
    buy = adcp.state.sandbox.media_buys[cut.deal.deal_id]
    assert buy.revision == revision and buy.packages[0].budget == cut.to_budget  # replayed, not applied again
    cut.deal.refresh_from_db()
    assert cut.deal.cost_micros == cut.to_budget_micros


def test_a_cut_the_seller_refuses_is_recorded_with_its_words_and_changes_nothing(sellers, request):
    from pacing.budget_cuts import budget_cuts_apply
    from pacing.models import CutStatus, SellerBudgetCut
    from pacing.reallocation import proposal_approve

    _job, proposal, adcp, clock = _reallocation_from_display(sellers, request)
    proposal_approve(proposal_id=proposal.pk, actor="ada")
    # By the time the cut is sent, the seller has spent more than the cut would leave (its own clock runs on).
    clock.advance(days=14)
    assert budget_cuts_apply(now=timezone.now())["failed"] >= 1
    failed = SellerBudgetCut.objects.filter(proposal=proposal, status=CutStatus.FAILED)
    for cut in failed:
        assert "budget_too_low" in cut.message.lower() or "cannot go below" in cut.message
        cut.deal.refresh_from_db()
        assert cut.deal.cost_micros == cut.from_budget_micros
        assert adcp.state.sandbox.media_buys[cut.deal.deal_id].packages[0].budget == cut.from_budget
        event = Event.objects.get(event_type=EventType.DEAL_BUDGET_CHANGE_FAILED, deal_id=cut.deal.deal_id)
        assert "cannot go below" in event.payload["reason"]


def test_a_seller_that_is_down_gets_the_cut_later_with_backoff(sellers, request, monkeypatch):
    from buyer.sellers.adcp_client import SellerAdcpClient
    from pacing.budget_cuts import budget_cuts_apply
    from pacing.models import CutStatus, SellerBudgetCut
    from pacing.reallocation import proposal_approve

    _job, proposal, adcp, _clock = _reallocation_from_display(sellers, request)
    proposal_approve(proposal_id=proposal.pk, actor="ada")
    real = SellerAdcpClient.set_budget

    def down(self, *args, **kwargs):
        from buyer.sellers.errors import SellerError

        raise SellerError("update_media_buy: connection refused", code="connection_error", retryable=True)

    monkeypatch.setattr(SellerAdcpClient, "set_budget", down)
    now = timezone.now()
    assert budget_cuts_apply(now=now) == {"retrying": SellerBudgetCut.objects.filter(proposal=proposal).count()}
    cut = SellerBudgetCut.objects.filter(proposal=proposal).first()
    assert (cut.status, cut.attempts) == (CutStatus.PENDING, 1) and cut.due_at > now
    assert budget_cuts_apply(now=now) == {}  # not due yet
    monkeypatch.setattr(SellerAdcpClient, "set_budget", real)
    assert budget_cuts_apply(now=cut.due_at)["applied"] >= 1
    cut.refresh_from_db()
    assert cut.status == CutStatus.APPLIED
    assert adcp.state.sandbox.media_buys[cut.deal.deal_id].packages[0].budget == cut.to_budget


def test_a_cut_the_seller_takes_for_review_is_followed_by_its_task_until_it_applies(sellers, request, monkeypatch):
    from buyer.sellers.adcp_client import SellerAdcpClient
    from buyer.sellers.errors import SellerTaskPending
    from buyer.sellers.types import TaskState
    from pacing.budget_cuts import budget_cuts_apply
    from pacing.models import CutStatus, SellerBudgetCut
    from pacing.reallocation import proposal_approve

    _job, proposal, adcp, clock = _reallocation_from_display(sellers, request)
    proposal_approve(proposal_id=proposal.pk, actor="ada")
    real = SellerAdcpClient.set_budget
    answers = iter(["working", "completed"])

    def reviewed(self, deal_id, **kwargs):
        real(self, deal_id, **kwargs)  # the seller applies it after its review
        raise SellerTaskPending(task_id=f"task-{deal_id}", status="submitted", message="Budget change under review")

    monkeypatch.setattr(SellerAdcpClient, "set_budget", reviewed)
    monkeypatch.setattr(
        SellerAdcpClient, "task_status", lambda self, task_id, **kw: TaskState(task_id=task_id, status=next(answers))
    )
    SellerBudgetCut.objects.filter(proposal=proposal).exclude(
        pk=SellerBudgetCut.objects.filter(proposal=proposal).first().pk
    ).delete()  # one cut, so the task answers follow it
    cut = SellerBudgetCut.objects.get(proposal=proposal)
    assert budget_cuts_apply(now=clock.now) == {"submitted": 1}
    cut.refresh_from_db()
    assert (cut.status, cut.task_id, cut.message) == (
        CutStatus.SUBMITTED,
        f"task-{cut.deal.deal_id}",
        "Budget change under review",
    )
    assert cut.deal.cost_micros == cut.from_budget_micros  # not cut in our records before the seller confirms
    assert budget_cuts_apply(now=cut.due_at) == {"submitted": 1}  # still working
    cut.refresh_from_db()
    assert budget_cuts_apply(now=cut.due_at) == {"applied": 1}
    cut.refresh_from_db()
    cut.deal.refresh_from_db()
    assert cut.status == CutStatus.APPLIED and cut.deal.cost_micros == cut.to_budget_micros
    assert adcp.state.sandbox.media_buys[cut.deal.deal_id].packages[0].budget == cut.to_budget


def test_a_deal_with_a_cut_still_open_gets_no_second_one_and_a_stale_cut_never_raises_a_budget(sellers, request):
    from pacing.budget_cuts import budget_cuts_apply, budget_cuts_plan
    from pacing.models import CutStatus, SellerBudgetCut
    from pacing.reallocation import proposal_approve

    _job, proposal, adcp, clock = _reallocation_from_display(sellers, request)
    proposal_approve(proposal_id=proposal.pk, actor="ada")
    cut = SellerBudgetCut.objects.filter(proposal=proposal).first()
    # Another approval planned while this cut is open (a retry, a review) leaves the deal to it.
    assert budget_cuts_plan(proposal, released={"display": 10_000_000}) == []
    # A cut planned from the deal's old budget, left behind by one that then went further, is refused.
    assert budget_cuts_apply(now=clock.now)["applied"]
    cut.refresh_from_db()
    stale = SellerBudgetCut.objects.create(
        proposal=proposal.__class__.objects.create(
            job=proposal.job, amount_micros=5_000_000, rationale="stale", expires_at=clock.now, run=proposal.run
        ),
        deal=cut.deal,
        from_budget_micros=cut.from_budget_micros,
        to_budget_micros=cut.from_budget_micros - 5_000_000,
        to_impressions=1,
        due_at=clock.now,
    )
    assert budget_cuts_apply(now=clock.now) == {"failed": 1}
    stale.refresh_from_db()
    assert stale.status == CutStatus.FAILED and "already" in stale.message
    assert adcp.state.sandbox.media_buys[cut.deal.deal_id].packages[0].budget == cut.to_budget


def test_a_run_whose_claim_lapsed_writes_nothing(sellers, request, monkeypatch):
    from buyer.sellers.adcp_client import SellerAdcpClient
    from pacing.budget_cuts import budget_cuts_apply
    from pacing.models import CutStatus, SellerBudgetCut
    from pacing.reallocation import proposal_approve

    _job, proposal, _adcp, clock = _reallocation_from_display(sellers, request)
    proposal_approve(proposal_id=proposal.pk, actor="ada")
    SellerBudgetCut.objects.filter(proposal=proposal).exclude(
        pk=SellerBudgetCut.objects.filter(proposal=proposal).first().pk
    ).delete()
    cut = SellerBudgetCut.objects.get(proposal=proposal)
    real = SellerAdcpClient.set_budget

    def slow(self, *args, **kwargs):
        # This call outlasts its claim: another run claims the cut meanwhile.
        SellerBudgetCut.objects.filter(pk=cut.pk).update(due_at=clock.now + timedelta(hours=5))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SellerAdcpClient, "set_budget", slow)
    assert budget_cuts_apply(now=clock.now) == {"lapsed": 1}
    cut.refresh_from_db()
    cut.deal.refresh_from_db()
    assert cut.status == CutStatus.PENDING  # the run that holds it now decides; nothing recorded twice
    assert cut.deal.cost_micros == cut.from_budget_micros
    assert not Event.objects.filter(event_type=EventType.DEAL_BUDGET_CHANGED).exists()


def test_a_seller_answering_two_lines_with_one_deal_id_records_it_once_and_says_so(sellers, monkeypatch):
    from dataclasses import replace

    from campaigns import booking

    _iab, _adcp, _clock = sellers()
    real = booking.with_line_pricing
    # The seller reads back every order as one media buy id.
    monkeypatch.setattr(booking, "with_line_pricing", lambda line, deal: replace(real(line, deal), deal_id="mb-reused"))
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    lines = adcp_lines(job)
    assert len(lines) >= 2
    [deal] = booked(job, "AdCP Sandbox")
    assert deal.deal_id == "mb-reused"
    failed = [line for line in lines if line.status == RecommendationStatus.BOOKING_FAILED]
    assert len(failed) == len(lines) - 1
    assert all("already recorded for another line" in line.status_reason for line in failed)
    # Counted once: the ledger commits what was recorded, and the refused lines hold nothing.
    assert ledger.committed_micros(job) == sum(d.cost_micros for d in BookedDeal.objects.filter(job=job))
    assert held(failed) == 0
