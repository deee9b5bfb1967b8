"""Reallocation proposals: when they are made, lapse and wait, and what deciding on them does and refuses."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Q

from buyer.events.models import Event, EventType
from campaigns.models import BookingJob
from pacing.models import ChannelBudget, ProposalStatus, ReallocationProposal
from pacing.reallocation import ProposalStateError, proposal_approve, proposal_reject
from pacing.snapshots import snapshot_run_create, snapshot_take
from tests.pacing.conftest import END, at, deliver, diverging_campaign, make_campaign

pytestmark = pytest.mark.django_db


def _snapshot(when):
    return snapshot_take(run=snapshot_run_create(), as_of=when)


def test_a_proposal_moves_what_the_under_pacing_channel_will_not_spend_capped_at_thirty_percent():
    job, _ = diverging_campaign()

    proposal = ReallocationProposal.objects.get(job=job)

    (move,) = proposal.moves.all()
    # branding: $30,000 budget, projected $21,000 → $9,000 spare; the cap is 30 % of $50,000 = $15,000.
    assert (move.from_channel, move.to_channel, move.amount_micros) == ("branding", "ctv", 9_000_000_000)
    assert proposal.amount_micros == 9_000_000_000 and proposal.status == ProposalStatus.PENDING
    assert "branding is 30.0 % behind" in proposal.rationale and "ctv is 15.0 % ahead" in proposal.rationale
    event = Event.objects.get(event_type=EventType.PACING_REALLOCATION_RECOMMENDED)
    assert event.flow_id == str(job.pk) and event.payload["amount"] == "9000"


def test_the_share_cap_and_the_minimum_are_settings(settings):
    settings.PACING_REALLOCATION_MAX_SHARE_PCT = Decimal(10)
    job, _ = diverging_campaign()
    assert ReallocationProposal.objects.get(job=job).amount_micros == 5_000_000_000
    settings.PACING_REALLOCATION_MIN_USD = Decimal(100_000)
    other, _ = diverging_campaign()
    assert not ReallocationProposal.objects.filter(job=other).exists()


def test_no_proposal_when_channels_do_not_diverge():
    _job, deals = make_campaign()
    deliver(deals["branding"], spend_micros=10_500_000_000, as_of=at(16, 0))  # under
    deliver(deals["ctv"], spend_micros=9_000_000_000, as_of=at(16, 0))  # under too
    _snapshot(at(16, 0))
    assert not ReallocationProposal.objects.exists()


def test_a_pending_proposal_lapses_when_the_channels_are_back_on_pace_and_one_waits_at_a_time():
    job, deals = diverging_campaign(moment=at(10, 0))
    first = ReallocationProposal.objects.get(job=job)
    deliver(deals["branding"], spend_micros=6_300_000_000, as_of=at(11, 0))  # still diverging
    deliver(deals["ctv"], spend_micros=7_700_000_000, as_of=at(11, 0))
    _snapshot(at(11, 0))
    assert list(ReallocationProposal.objects.filter(job=job)) == [first]  # one pending at a time

    deliver(deals["branding"], spend_micros=10_500_000_000, as_of=at(11, 12))  # on pace again
    deliver(deals["ctv"], spend_micros=7_700_000_000, as_of=at(11, 12))  # exactly 10 % over: on track
    _snapshot(at(11, 12))

    first.refresh_from_db()
    assert (first.status, first.decision_note) == (ProposalStatus.EXPIRED, "the channels are no longer diverging")
    assert Event.objects.filter(event_type=EventType.PACING_REALLOCATION_EXPIRED, flow_id=str(job.pk)).exists()


def test_an_undecided_proposal_lapses_and_cannot_be_approved_after(settings):
    job, _ = diverging_campaign()
    proposal = ReallocationProposal.objects.get(job=job)
    with (
        time_machine.travel(proposal.expires_at + timedelta(minutes=1), tick=False),
        pytest.raises(ProposalStateError, match="lapsed"),
    ):
        proposal_approve(proposal_id=proposal.pk, actor="ada")
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.EXPIRED
    assert not ChannelBudget.objects.exists()


def test_after_a_decision_the_next_proposal_waits_for_the_cool_down(settings):
    settings.PACING_REALLOCATION_COOLDOWN_HOURS = 24
    job, deals = diverging_campaign(moment=at(10, 0))
    with time_machine.travel(at(10, 1), tick=False):
        proposal_reject(proposal_id=ReallocationProposal.objects.get(job=job).pk, actor="ada")
    for hours, expected in ((12, 1), (26, 2)):
        moment = at(10, 0) + timedelta(hours=hours)
        t = (9 * 24 + hours) / (30 * 24)
        deliver(deals["branding"], spend_micros=int(30_000_000_000 * t * 0.7), as_of=moment)
        deliver(deals["ctv"], spend_micros=int(20_000_000_000 * t * 1.15), as_of=moment)
        _snapshot(moment)
        assert ReallocationProposal.objects.filter(job=job).count() == expected, hours


def test_approving_refuses_when_the_campaign_is_over_or_the_budget_is_gone():
    job, _ = diverging_campaign()
    proposal = ReallocationProposal.objects.get(job=job)
    ChannelBudget.objects.create(job=job, channel="branding", budget_micros=1_000_000_000)
    ChannelBudget.objects.create(job=job, channel="ctv", budget_micros=49_000_000_000)
    with time_machine.travel(at(16, 1), tick=False), pytest.raises(ProposalStateError, match="no longer has"):
        proposal_approve(proposal_id=proposal.pk, actor="ada")
    ChannelBudget.objects.all().delete()
    with time_machine.travel(at(1, 0) + timedelta(days=45), tick=False):
        ReallocationProposal.objects.filter(pk=proposal.pk).update(expires_at=at(1, 0) + timedelta(days=50))
        with pytest.raises(ProposalStateError, match="flight has ended"):
            proposal_approve(proposal_id=proposal.pk, actor="ada")
    assert not ChannelBudget.objects.exists() and BookingJob.objects.count() == 1
    assert ReallocationProposal.objects.get().status == ProposalStatus.PENDING


def test_a_top_up_runs_from_today_to_the_end_of_the_flight_with_the_moved_money_only():
    job, _ = diverging_campaign()
    proposal = ReallocationProposal.objects.get(job=job)
    with time_machine.travel(at(16, 2), tick=False):
        proposal_approve(proposal_id=proposal.pk, actor="ada")

    top_up = BookingJob.objects.get(parent=job)
    campaign = top_up.campaign
    assert (campaign.start_date, campaign.end_date) == (at(16).date(), END)
    assert campaign.budget_micros == proposal.amount_micros and campaign.channels == ["ctv"]
    assert campaign.brief["top_up_of"] == str(job.pk) and campaign.name.endswith("· top-up CTV")
    assert top_up.status == "pending" and not top_up.auto_approve
    created = Event.objects.get(event_type=EventType.CAMPAIGN_CREATED, flow_id=str(top_up.pk))
    assert created.payload["top_up_of"] == str(job.pk)


def test_approving_refuses_when_the_giving_channel_no_longer_leaves_that_money_unspent():
    job, deals = diverging_campaign(moment=at(10, 0))
    proposal = ReallocationProposal.objects.get(job=job)
    # Branding caught up meanwhile: on pace, it will spend its whole budget.
    deliver(deals["branding"], spend_micros=9_300_000_000, as_of=at(11, 0))
    deliver(deals["ctv"], spend_micros=7_700_000_000, as_of=at(11, 0))
    snapshot_take(run=snapshot_run_create(), as_of=at(11, 0))
    ReallocationProposal.objects.filter(pk=proposal.pk).update(status=ProposalStatus.PENDING)

    with time_machine.travel(at(11, 1), tick=False), pytest.raises(ProposalStateError, match="now projected"):
        proposal_approve(proposal_id=proposal.pk, actor="ada")
    assert not ChannelBudget.objects.exists() and BookingJob.objects.count() == 1


def test_an_older_moment_never_becomes_the_latest_snapshot():
    job, deals = make_campaign()
    deliver(deals["ctv"], spend_micros=1_000_000_000, as_of=at(5))
    newer = _snapshot(at(5))
    _snapshot(at(3))  # a replay of an earlier moment, run afterwards
    job.refresh_from_db()
    assert job.latest_pacing.run_id == newer.pk


def _top_up_of_a_committed_campaign() -> tuple[BookingJob, int, BookingJob]:
    """A campaign whose deals are committed in its ledger, as approval and booking would have, and the top-up
    job its approved reallocation started: (job, what it committed before, top-up)."""
    from campaigns import ledger

    job, _ = diverging_campaign()
    for line in job.recommendations.all():
        ledger.reserve(job, [line])
        ledger.commit(line, cost_micros=line.cost_micros, reason="booked")
    before = ledger.committed_micros(job)
    proposal = ReallocationProposal.objects.get(job=job)
    with time_machine.travel(at(16, 2), tick=False):
        proposal_approve(proposal_id=proposal.pk, actor="ada")
    return job, before, BookingJob.objects.get(parent=job)


def test_money_a_top_up_does_not_commit_goes_back_to_the_channel_that_gave_it():
    from campaigns import ledger, services
    from campaigns.models import JobStatus, RecommendationStatus
    from tests.factories import BookedDealFactory, RecommendationFactory

    job, before, top_up = _top_up_of_a_committed_campaign()
    # branding committed $30,000 and is projected to spend $21,000: the $9,000 moved is released for the top-up.
    assert ledger.committed_micros(job) == before - 9_000_000_000
    line = RecommendationFactory(
        job=top_up, channel="ctv", cost_micros=4_000_000_000, status=RecommendationStatus.APPROVED
    )
    ledger.reserve(top_up, [line])

    # The top-up books one $4,000 line and ends: the $5,000 it did not commit counts on branding again.
    ledger.commit(line, cost_micros=4_000_000_000, reason="booked")
    BookedDealFactory(recommendation=line, job=top_up)
    assert ledger.committed_micros(job) == before - 5_000_000_000
    services.job_transition(top_up, status=JobStatus.COMPLETED, stage="done", expect=Q(), dispatch=False)
    assert ledger.committed_micros(job) == before
    assert ledger.give_back_unspent(top_up) == 0  # nothing twice

    # Its deal is then cancelled at the seller: that $4,000 goes back to branding too, never more than it gave.
    ledger.release(line, reason="cancelled at the seller")
    assert ledger.committed_micros(job) == before
    back = top_up.budget_entries.model.objects.filter(job=top_up, kind="reserve", recommendation__isnull=True)
    assert sorted(e.amount_micros for e in back) == [4_000_000_000, 5_000_000_000]
    assert all(e.channel == "branding" for e in back)


def test_a_top_up_that_fails_gives_back_everything_it_was_given():
    from campaigns import ledger, services
    from campaigns.models import JobStatus

    job, before, top_up = _top_up_of_a_committed_campaign()

    services.job_transition(
        top_up, status=JobStatus.FAILED, stage="done", expect=Q(), dispatch=False, failure_reason="no quotes"
    )

    assert ledger.committed_micros(job) == before
    given = top_up.budget_entries.model.objects.filter(job=top_up, kind="reserve", recommendation__isnull=True)
    assert [(e.channel, e.amount_micros) for e in given] == [("branding", 9_000_000_000)]
