"""The budget ledger: reservations, commitments and releases of one campaign and its top-ups."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from campaigns import ledger
from campaigns.ledger import BudgetExceeded, committed_micros, held_micros
from campaigns.models import BudgetEntry, JobStage, JobStatus, Recommendation
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
        for op in operations:
            match op:
                case ("reserve", picks):
                    chosen = [lines[i] for i in picks]
                    job = chosen[0].job
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
                    )
            assert committed_micros(root) <= budget * M
            assert all(held_micros(line) >= 0 for line in lines)
        assert not BudgetEntry.objects.filter(root=top_up).exists()  # one ledger, under the first job


def test_a_refused_reservation_reserves_nothing_and_names_the_figures():
    root, lines = campaign(50_000, lines=(30_000, 25_000))
    ledger.reserve(root, lines[:1])

    with pytest.raises(BudgetExceeded, match=r"would commit \$55,000.00 of the campaign's \$50,000.00 budget"):
        ledger.reserve(root, lines[1:])

    assert committed_micros(root) == 30_000 * M and held_micros(lines[1]) == 0


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
