"""A deal's whole life, from real events only: the seller's quote, a negotiation, an approval, the booking, the
seller's read-backs, delivery, a person's refusal and the seller's cancellation. Every one of the twelve states
is reached, and each deal's history starts where its line did."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import time_machine
from django.utils import timezone

from buyer.sandbox import create_app
from buyer.sellers.models import Seller
from campaigns import ledger, services
from campaigns.deal_refresh import deal_refresh, deals_refresh_due
from campaigns.models import BookedDeal, DealStatus, DealTransition, JobStage
from pacing.delivery import delivery_pull_all
from tests.campaigns.test_flow import negotiate_all, new_job, run
from tests.conftest import serve_in_thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def seller(fast_sellers):
    app = create_app(catalog="default", delivery_profiles={"*": "on_pace"})
    with serve_in_thread(app) as url:
        Seller.objects.create(name="Sandbox", base_url=url)
        yield app, url


def _profile(url: str, deal: BookedDeal, profile: str) -> None:
    assert httpx.put(f"{url}/_sandbox/delivery/deals/{deal.deal_id}", json={"profile": profile}).status_code == 200


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _states(deal: BookedDeal) -> list[str]:
    return list(DealTransition.objects.filter(deal=deal).order_by("at", "pk").values_list("to_status", flat=True))


def test_every_deal_state_is_reached_from_real_events(seller):
    app, url = seller
    reached: set[str] = set()

    # Quoted, negotiated, approved by a person, booked.
    job = run(new_job(kpis={"target_cpm_usd": 5, "max_cpm_usd": 60}), JobStage.PLAN, JobStage.RESEARCH)
    job = negotiate_all(job)
    services.job_approve_all(job_id=str(job.pk), actor="ada")
    job = run(job, JobStage.BOOK)
    deals = list(job.deals.order_by("pk"))
    assert len(deals) >= 3, [d.deal_id for d in deals]
    negotiated = [d for d in deals if d.recommendation.negotiation_rounds.exists()]
    assert negotiated
    for deal in deals:
        states = _states(deal)
        line = deal.recommendation
        history = list(DealTransition.objects.filter(deal=deal).order_by("at", "pk"))
        assert history[0].at == line.created_at and line.quote_id in history[0].reason
        if deal in negotiated:
            assert states == ["quoted", "negotiating", "accepted", "booking", "booked"]
            assert history[1].at == line.negotiation_rounds.order_by("round_number").first().at
        else:
            assert states == ["quoted", "accepted", "booking", "booked"]
        accepted = history[-3]
        assert accepted.at == line.approved_at and accepted.actor == "ada"
        assert f"${line.cpm:,.2f} CPM" in accepted.reason
        assert [h.at for h in history] == sorted(h.at for h in history)
        reached.update(states)

    # Delivery: on pace, a makegood, a partial cancellation; then the flight ends.
    flight_start, flight_end = job.campaign.start_date, job.campaign.end_date
    _profile(url, deals[1], "makegood")
    _profile(url, deals[2], "partial_cancel")
    mid = _midnight(flight_start + timedelta(days=20))
    with time_machine.travel(mid, tick=False):
        delivery_pull_all()
    for deal in deals:
        deal.refresh_from_db()
    assert deals[0].status == DealStatus.DELIVERING
    assert deals[1].status == DealStatus.MAKEGOOD_PENDING
    assert deals[2].status == DealStatus.PARTIALLY_CANCELED
    after = _midnight(flight_end + timedelta(days=2))
    with time_machine.travel(after, tick=False):
        delivery_pull_all()
    deals[0].refresh_from_db()
    assert deals[0].status == DealStatus.COMPLETED
    reached.update(s for d in deals for s in _states(d))

    # A seller that lets a deal lapse before its flight: expired.
    second = run(new_job(auto_approve=True, name="Spring push"), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    lapsed = second.deals.order_by("pk").first()
    app.state.sandbox._deals[lapsed.deal_id].status = "expired"
    deal_refresh(lapsed)
    assert lapsed.status == DealStatus.EXPIRED
    reached.update(_states(lapsed))

    # A seller that books more than approved: held in booking; refused (failed), then cancelled at the seller.
    app.state.sandbox.overbook_pct = Decimal(20)
    third = run(new_job(name="Summer push"), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(third.pk), actor="ada")
    third = run(third, JobStage.BOOK)
    held = third.deals.order_by("pk").first()
    assert held.held
    held = services.deal_flag_resolve(deal_pk=held.pk, accept=False, actor="ada")
    app.state.sandbox._deals[held.deal_id].status = "cancelled"
    held = deal_refresh(held)
    assert held.status == DealStatus.CANCELLED
    assert _states(held) == ["quoted", "accepted", "booking", "failed", "cancelled"]
    reached.update(_states(held))

    assert reached == set(DealStatus.values)


def test_a_refused_deal_holds_its_money_until_the_seller_reports_it_cancelled(seller, settings):
    app, _ = seller
    app.state.sandbox.overprice_pct = Decimal(10)
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk), actor="ada")
    job = run(job, JobStage.BOOK)
    first, second = list(job.deals.order_by("pk"))[:2]
    holding = ledger.held_micros(first.recommendation)
    assert holding == first.recommendation.cost_micros > 0

    services.deal_flag_resolve(deal_pk=first.pk, accept=False, actor="ada")
    services.deal_flag_resolve(deal_pk=second.pk, accept=False, actor="ada")
    first.refresh_from_db()
    assert first.awaiting_cancellation and first.state_label == "refused" and not first.counted
    assert ledger.held_micros(first.recommendation) == holding  # the seller may still bill it
    assert set(BookedDeal.objects.filter(status="failed", refused_by__gt="")) == {first, second}

    # The scheduled read-back finds the seller cancelled the first; the second the buyer confirms by hand.
    app.state.sandbox._deals[first.deal_id].status = "cancelled"
    with time_machine.travel(timezone.now() + timedelta(hours=settings.DEAL_REFRESH_HOURS + 1)):
        assert deals_refresh_due()["moved"] >= 1
    first.refresh_from_db()
    assert first.status == DealStatus.CANCELLED and ledger.held_micros(first.recommendation) == 0
    assert "the seller reports the refused deal cancelled" in first.transitions.last().reason

    with pytest.raises(services.DealTransitionError, match="only a refused deal"):
        services.deal_decide(first.pk, "cancelled", actor="ada")
    services.deal_decide(second.pk, "cancelled", actor="ada", note="seller emailed")
    second.refresh_from_db()
    assert second.status == DealStatus.CANCELLED and ledger.held_micros(second.recommendation) == 0
    last = second.transitions.last()
    assert (last.actor, last.from_status) == ("ada", "failed")
    assert "as ada confirms; seller emailed" in last.reason and "released" in last.reason
