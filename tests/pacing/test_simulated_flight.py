"""A 30-day flight in simulated time against a sandbox seller over HTTP: the right alerts on the right days.

Three deals in three channels: branding delivers 30 % under, ctv 15 % over (until it has delivered everything
it booked, as an ad server stops a deal at its goal), mobile_app on pace. Each simulated day at noon the
scheduled tasks read delivery and take a snapshot, exactly as beat runs them. The first day is the grace
period (``PACING_GRACE_HOURS``, 24): rated, never alerted on.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
import time_machine
from django.conf import settings

from buyer.sandbox import create_app
from buyer.sellers.models import Seller
from campaigns.models import BookingJob, JobStatus
from pacing import services, tasks
from pacing.maths import alert_level, curve_share, elapsed_share, expected_micros
from pacing.models import ChannelBudget, PacingAlert, ProposalStatus, ReallocationProposal
from pacing.reallocation import proposal_approve, proposal_reject
from tests.conftest import serve_in_thread
from tests.pacing.conftest import END, START, at, book_campaign

pytestmark = pytest.mark.django_db

PROFILES = {"branding": "under:0.7", "ctv": "over:1.15", "mobile_app": "on_pace"}
CHANNELS = tuple(PROFILES)


def _pace(channel: str, day: int) -> Decimal:
    """The share of its plan a deal has delivered by noon of ``day`` under its profile."""
    t = Decimal(2 * day - 1) / 60
    factor = {"branding": Decimal("0.7"), "ctv": Decimal("1.15"), "mobile_app": Decimal(1)}[channel]
    return min(t * factor, Decimal(1)) / t


def _in_grace(day: int) -> bool:
    return at(day) < at(1, 0) + timedelta(hours=settings.PACING_GRACE_HOURS)


def _expected_level(channel: str, day: int) -> str:
    if _in_grace(day):
        return ""
    deviation = abs(_pace(channel, day) - 1)
    return "critical" if deviation > Decimal("0.25") else "warning" if deviation > Decimal("0.1") else ""


def _run_day(day: int) -> None:
    with time_machine.travel(at(day), tick=False):
        for seller_id, pks in services.delivery_plan():
            tasks.read_delivery_chunk.run(seller_id, pks)
        tasks.take_snapshots.run()


def _open_alerts(job: BookingJob) -> dict[str, tuple[str, str]]:
    return {a.scope_key: (a.direction, a.level) for a in PacingAlert.objects.filter(job=job, resolved_at__isnull=True)}


@pytest.mark.parametrize("models", ["answering", "failing"])
def test_a_thirty_day_flight_raises_exactly_the_right_alerts_and_proposes_a_reallocation(fast_sellers, request, models):
    if models == "failing":
        request.getfixturevalue("models_fail")
    fast_sellers.PACING_REALLOCATION_COOLDOWN_HOURS = 24 * 60  # one decision per campaign over this flight
    app = create_app()
    with serve_in_thread(app) as url:
        Seller.objects.create(name="Sandbox", base_url=url)
        with time_machine.travel(at(1, 0) - timedelta(days=3), tick=False):
            approved = book_campaign(start=START, channels=CHANNELS, budget=90_000, name="Approve the move")
            rejected = book_campaign(start=START, channels=CHANNELS, budget=90_000, name="Reject the move")
        for job in (approved, rejected):
            for deal in job.deals.all():
                put = httpx.put(
                    f"{url}/_sandbox/delivery/deals/{deal.deal_id}", json={"profile": PROFILES[deal.channel]}
                )
                assert put.status_code == 200
        deals = {job.pk: {d.channel: d for d in job.deals.all()} for job in (approved, rejected)}
        assert all(set(by_channel) == set(CHANNELS) for by_channel in deals.values())

        history: dict[int, dict] = {}
        for day in range(1, 31):
            _run_day(day)
            history[day] = {job.pk: _open_alerts(job) for job in (approved, rejected)}
            if day == 1:  # in grace: nothing is proposed yet
                assert not ReallocationProposal.objects.filter(job__in=(approved, rejected)).exists()
            if day == 2:
                for job, decide in ((approved, proposal_approve), (rejected, proposal_reject)):
                    proposal = ReallocationProposal.objects.get(job=job, status=ProposalStatus.PENDING)
                    with time_machine.travel(at(2, 13), tick=False):
                        decide(proposal_id=proposal.pk, actor="ada")

        with time_machine.travel(at(2, 14), tick=False):
            top_up = BookingJob.objects.get(parent=approved)
            for task in (tasks_campaigns().job_plan, tasks_campaigns().job_research):
                task.run(str(top_up.pk))

    for job in (approved, rejected):
        by_channel = deals[job.pk]
        costs = {c: d.cost_micros for c, d in by_channel.items()}
        for day, alerts in history.items():
            want = {}
            for channel in CHANNELS:
                level = _expected_level(channel, day)
                if level:
                    direction = "under" if _pace(channel, day) < 1 else "over"
                    want[f"deal:{by_channel[channel].pk}"] = want[f"channel:{channel}"] = (direction, level)
            # The campaign is judged on its sums, with the same thresholds.
            share = curve_share("even", elapsed_share(START, END, at(day)))
            expected = sum(expected_micros(cost, share) for cost in costs.values())
            actual = sum(int(expected_micros(cost, share) * _pace(c, day)) for c, cost in costs.items())
            level = "" if _in_grace(day) else alert_level(actual=actual, expected=expected)
            if level:
                want["campaign"] = ("under" if actual < expected else "over", level)
            assert alerts[job.pk] == want, f"{job.campaign.name}, day {day}"
        # Never a second alert for the same scope and direction: one row, updated or resolved.
        keys = list(PacingAlert.objects.filter(job=job).values_list("scope_key", "direction"))
        assert len(keys) == len(set(keys))

    # Nothing on the first day; then branding under to the end, ctv over until it has delivered all it booked,
    # mobile never.
    assert history[1][approved.pk] == {}
    assert history[2][approved.pk]["channel:branding"] == ("under", "critical")
    assert history[27][approved.pk]["channel:ctv"] == ("over", "warning")
    assert "channel:ctv" not in history[28][approved.pk]
    assert not any("mobile_app" in key for alerts in history.values() for key in alerts[approved.pk])

    # Approved: branding gave what it will not spend to ctv, and a top-up booking for exactly that is waiting
    # for a person; the campaign total is unchanged.
    (move,) = ReallocationProposal.objects.get(job=approved, status=ProposalStatus.APPROVED).moves.all()
    budgets = dict(ChannelBudget.objects.filter(job=approved).values_list("channel", "budget_micros"))
    assert (move.from_channel, move.to_channel) == ("branding", "ctv")
    assert sum(budgets.values()) == approved.campaign.budget_micros
    assert budgets["ctv"] == _planned(approved, "ctv") + move.amount_micros
    top_up.refresh_from_db()
    assert top_up.status == JobStatus.AWAITING_APPROVAL and top_up.campaign.budget_micros == move.amount_micros
    assert sum(r.cost_micros for r in top_up.recommendations.all()) <= move.amount_micros
    assert {r.channel for r in top_up.recommendations.all()} == {"ctv"}
    assert not top_up.deals.exists()  # nothing is booked without the usual approval

    # Rejected: nothing changed.
    assert not ChannelBudget.objects.filter(job=rejected).exists()
    assert not BookingJob.objects.filter(parent=rejected).exists()
    assert ReallocationProposal.objects.filter(job=rejected).count() == 1


def _planned(job: BookingJob, channel: str) -> int:
    return int(Decimal(job.budget_allocations[channel]["budget"]) * 1_000_000)


def tasks_campaigns():
    from campaigns import tasks as campaign_tasks

    return campaign_tasks
