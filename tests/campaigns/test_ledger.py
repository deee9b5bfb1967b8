"""The budget ledger: reservations, commitments and releases of one campaign and its top-ups."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from campaigns import ledger
from campaigns.ledger import BudgetExceeded, LimitExceeded, committed_micros, earmarked_micros, held_micros
from campaigns.models import BookingJob, BudgetEntry, JobStage, JobStatus, Recommendation
from tests.factories import BookingJobFactory, CampaignFactory, RecommendationFactory

M = 1_000_000

pytestmark = pytest.mark.django_db


def campaign(budget: int, *, lines: tuple[int, ...], parent=None):
    job = BookingJobFactory(
        campaign=CampaignFactory(budget_micros=budget * M),
        status=JobStatus.AWAITING_APPROVAL,
        stage=JobStage.APPROVAL,
        parent=parent,
    )
    made = [RecommendationFactory(job=job, cost_micros=cost * M) for cost in lines]
    return job, made


operation = st.one_of(
    st.tuples(st.just("reserve"), st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True)),
    st.tuples(st.just("commit"), st.integers(0, 7), st.integers(0, 120)),  # booked at 0-120 % of its cost
    st.tuples(st.just("requote"), st.integers(0, 7), st.integers(50, 150)),  # a new price, then booked
    st.tuples(st.just("release"), st.integers(0, 7)),
    st.tuples(st.just("reallocate"), st.integers(1, 20_000), st.integers(0, 40_000)),  # amount, projected
    st.tuples(st.just("finish_top_up")),  # it ends: what it did not spend of the reallocation goes back
)


class CommitmentsNeverExceedTheBudget(TestCase):
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        budget=st.integers(10_000, 100_000),
        costs=st.lists(st.integers(1_000, 40_000), min_size=8, max_size=8),
        operations=st.lists(operation, max_size=25),
    )
    def test_under_any_interleaving_of_approvals_top_ups_and_re_quotes(self, budget, costs, operations):
        root, first = campaign(budget, lines=tuple(costs[:4]))
        top_up, second = campaign(budget, lines=tuple(costs[4:]), parent=root)
        lines = first + second
        finished = False
        for op in operations:
            match op:
                case ("reserve", picks):
                    chosen = [lines[i] for i in picks]
                    job = chosen[0].job
                    if finished and job.pk == top_up.pk:
                        continue
                    with contextlib.suppress(BudgetExceeded):
                        ledger.reserve(job, [c for c in chosen if c.job_id == job.pk])
                case ("commit", i, pct):
                    line = lines[i]
                    if held_micros(line) > 0:  # only a reserved line is booked; a seller may book for more
                        with contextlib.suppress(BudgetExceeded):
                            ledger.commit(line, cost_micros=held_micros(line) * pct // 100, reason="booked")
                case ("requote", i, pct):
                    line = lines[i]
                    new_cost = line.cost_micros * pct // 100
                    if held_micros(line) > 0 and new_cost <= held_micros(line):  # a dearer re-quote goes back
                        Recommendation.objects.filter(pk=line.pk).update(cost_micros=new_cost)
                        ledger.commit(line, cost_micros=new_cost, reason="re-quoted and booked")
                case ("release", i):
                    ledger.release(lines[i], reason="failed")
                case ("reallocate", amount, projected):
                    ledger.release_for_reallocation(
                        root,
                        channel="branding",
                        amount_micros=amount * M,
                        projected_micros=projected * M,
                        reason="moved",
                        top_up=None if finished else top_up,
                    )
                case ("finish_top_up",):
                    BookingJob.objects.filter(pk=top_up.pk).update(finished_at=timezone.now())
                    top_up.finished_at = timezone.now()
                    finished = True
                    ledger.give_back_unspent(top_up)
            assert committed_micros(root) + earmarked_micros(root) <= budget * M
            assert all(held_micros(line) >= 0 for line in lines)
        assert not BudgetEntry.objects.filter(root=top_up).exists()  # one ledger, under the first job


def test_a_refused_reservation_reserves_nothing_and_names_the_figures():
    root, lines = campaign(50_000, lines=(30_000, 25_000))
    ledger.reserve(root, lines[:1])

    with pytest.raises(BudgetExceeded, match=r"would commit \$55,000.00 of the campaign's \$50,000.00 budget"):
        ledger.reserve(root, lines[1:])

    assert committed_micros(root) == 30_000 * M and held_micros(lines[1]) == 0


def test_what_lines_hold_is_read_in_one_query_and_reserving_more_lines_costs_no_more_queries():
    root, lines = campaign(500_000, lines=(10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000))
    ledger.reserve(root, lines[:2])
    ledger.commit(lines[0], cost_micros=9_000 * M, reason="booked for less")
    with CaptureQueriesContext(connection) as read:
        held = ledger.held_by_line(lines)
    assert len(read) == 1
    assert held == {line.pk: held_micros(line) for line in lines}
    assert list(held.values()) == [9_000 * M, 20_000 * M, 0, 0, 0, 0, 0]

    with CaptureQueriesContext(connection) as one:
        ledger.reserve(root, lines[2:3])
    with CaptureQueriesContext(connection) as four:
        ledger.reserve(root, lines[3:])
    assert len(four) == len(one)
    assert committed_micros(root) == (9_000 + 20_000 + 30_000 + 40_000 + 50_000 + 60_000 + 70_000) * M


def test_a_line_booked_for_less_frees_the_difference_and_a_release_frees_it_all():
    root, (line,) = campaign(50_000, lines=(30_000,))
    ledger.reserve(root, [line])
    ledger.commit(line, cost_micros=28_000 * M, reason="booked for less")
    assert committed_micros(root) == 28_000 * M
    ledger.release(line, reason="cancelled")
    assert committed_micros(root) == 0
    assert [e.kind for e in BudgetEntry.objects.filter(recommendation=line)] == ["reserve", "commit", "release"]


def test_a_deal_dearer_than_its_reservation_takes_the_difference_only_if_the_budget_has_room():
    root, (line, other) = campaign(50_000, lines=(30_000, 19_000))
    ledger.reserve(root, [line, other])
    ledger.commit(line, cost_micros=30_500 * M, reason="booked 1 % over, within the tolerance")
    assert committed_micros(root) == 49_500 * M

    with pytest.raises(BudgetExceeded, match="has no room"):
        ledger.commit(other, cost_micros=20_000 * M, reason="booked more than the budget holds")

    assert held_micros(other) == 19_000 * M and committed_micros(root) <= 50_000 * M


def test_a_reallocation_releases_only_what_the_giving_channel_committed_and_will_not_spend():
    root, (giver, taker) = campaign(100_000, lines=(30_000, 50_000))
    Recommendation.objects.filter(pk=taker.pk).update(channel="ctv")
    ledger.reserve(root, [giver, taker])
    # branding was allocated $50,000 but booked $30,000 and will spend $28,000: $22,000 moves, $2,000 of it held.
    released = ledger.release_for_reallocation(
        root, channel="branding", amount_micros=22_000 * M, projected_micros=28_000 * M, reason="moved"
    )
    assert released == 2_000 * M and committed_micros(root) == 78_000 * M
    again = ledger.release_for_reallocation(
        root, channel="branding", amount_micros=22_000 * M, projected_micros=28_000 * M, reason="moved again"
    )
    assert again == 0 and committed_micros(root) == 78_000 * M  # never released twice


# --- platform limits: whatever path a line comes by ------------------------------------------------------------


def test_no_line_is_reserved_or_committed_above_the_per_line_maximum(settings):
    settings.MAX_LINE_USD = Decimal(25_000)
    root, (small, big) = campaign(100_000, lines=(20_000, 30_000))

    with pytest.raises(LimitExceeded, match=r"above the per-line maximum of \$25,000.00"):
        ledger.reserve(root, [small, big])
    assert committed_micros(root) == 0  # nothing of the refused approval

    ledger.reserve(root, [small])
    with pytest.raises(LimitExceeded, match="MAX_LINE_USD"):
        ledger.commit(small, cost_micros=26_000 * M, reason="the seller booked it dearer")
    assert held_micros(small) == 20_000 * M
    ledger.commit(small, cost_micros=25_000 * M, reason="at the maximum")
    assert held_micros(small) == 25_000 * M


def test_no_seller_holds_more_than_its_share_of_the_campaign_across_its_jobs(settings):
    settings.SELLER_MAX_SHARE_PCT = Decimal(40)
    root, (first, other_seller) = campaign(100_000, lines=(30_000, 30_000))
    top_up, (same_seller,) = campaign(100_000, lines=(15_000,), parent=root)
    Recommendation.objects.filter(pk=same_seller.pk).update(seller=first.seller, seller_url=first.seller_url)
    same_seller.refresh_from_db()
    ledger.reserve(root, [first, other_seller])

    with pytest.raises(LimitExceeded, match=r"\$45,000.00 at seller .* more than 40 % of the campaign's"):
        ledger.reserve(top_up, [same_seller])
    assert held_micros(same_seller) == 0

    ledger.commit(first, cost_micros=25_000 * M, reason="booked for less")  # freeing room at that seller
    ledger.reserve(top_up, [same_seller])
    assert committed_micros(root) == 70_000 * M


def test_a_line_booked_for_less_is_never_refused_by_a_limit_it_already_broke(settings):
    root, (line,) = campaign(100_000, lines=(30_000,))
    ledger.reserve(root, [line])
    settings.MAX_LINE_USD = Decimal(10_000)  # lowered after the approval
    ledger.commit(line, cost_micros=29_000 * M, reason="booked for less")
    assert held_micros(line) == 29_000 * M


def test_money_released_for_a_top_up_is_set_aside_for_it_until_it_ends():
    root, (giver, later) = campaign(100_000, lines=(60_000, 45_000))
    top_up, (spend,) = campaign(100_000, lines=(15_000,), parent=root)
    ledger.reserve(root, [giver])
    ledger.release_for_reallocation(
        root, channel="branding", amount_micros=20_000 * M, projected_micros=40_000 * M, reason="moved", top_up=top_up
    )
    assert committed_micros(root) == 40_000 * M and earmarked_micros(root) == 20_000 * M

    with pytest.raises(BudgetExceeded, match=r"\$20,000.00 set aside for top-up jobs"):
        ledger.reserve(root, [later])  # $40,000 + $45,000 fits $100,000 only by spending the top-up's money
    ledger.reserve(top_up, [spend])  # the top-up spends what was set aside for it
    assert earmarked_micros(root) == 5_000 * M

    BookingJob.objects.filter(pk=top_up.pk).update(finished_at=timezone.now())
    assert ledger.give_back_unspent(top_up) == 5_000 * M  # what its lines did not take goes back to branding
    assert committed_micros(root) == 60_000 * M and earmarked_micros(root) == 0
