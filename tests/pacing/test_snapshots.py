"""Snapshots computed in SQL agree with the pacing maths, add up by channel and campaign, and form a series."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from campaigns.models import BookedDeal, PacingCurve
from pacing.maths import alert_level, assess, curve_share, elapsed_share, expected_micros, projected_micros
from pacing.models import PacingAlert, PacingSnapshot, Scope
from pacing.snapshots import snapshot_run_create, snapshot_take
from tests.pacing.conftest import END, START, at, deliver, make_campaign

pytestmark = pytest.mark.django_db


def _take(when):
    return snapshot_take(run=snapshot_run_create(), as_of=when)


def _row(run, **lookup) -> PacingSnapshot:
    return PacingSnapshot.objects.get(run=run, **lookup)


class SqlAgreesWithTheMaths(TestCase):
    """Random deals through the SQL path, rated again with ``maths`` from the same integers."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        cost=st.integers(min_value=1, max_value=10**13),
        delivered=st.decimals(min_value=0, max_value=2, places=4),
        hours=st.integers(min_value=-48, max_value=32 * 24),
        curve=st.sampled_from([c.value for c in PacingCurve]),
        grace=st.sampled_from([0, 24]),
    )
    def test_a_deal_row_is_the_maths_of_its_delivery(self, cost, delivered, hours, curve, grace):
        _job, deals = make_campaign(deals={"ctv": cost}, curve=curve)
        moment = at(1, 0) + timedelta(hours=hours)
        share = curve_share(curve, elapsed_share(START, END, moment))
        due = expected_micros(cost, share)
        actual = int(Decimal(due) * delivered)
        deliver(deals["ctv"], spend_micros=actual, as_of=moment)

        with self.settings(PACING_GRACE_HOURS=grace):
            run = _take(moment)
        row = _row(run, scope=Scope.DEAL)
        in_grace = 0 <= hours < grace  # booked a week before its flight, so its delivery starts with the flight

        # Expected spend in SQL is double precision over times SQLite keeps to the millisecond: within a micro
        # per billion of the exact figure.
        assert abs(row.expected_micros - due) <= 1 + cost // 10**9
        assert row.actual_micros == actual
        rated = assess(actual=actual, expected=row.expected_micros)
        held = in_grace and actual <= cost  # within grace, only spending more than the whole cost is reported
        assert (row.status, row.in_grace) == (rated.status, in_grace)
        assert row.alert_level == ("" if held else alert_level(actual=actual, expected=row.expected_micros))
        if rated.pacing_pct is None:
            assert row.pacing_pct is None and row.deviation_pct is None
        else:
            assert abs(row.pacing_pct - rated.pacing_pct) <= Decimal("0.01")
            assert row.deviation_pct == row.pacing_pct - 100
        projected = projected_micros(booked=cost, expected=row.expected_micros, actual=actual, share=share)
        assert abs(row.projected_micros - projected) <= 1 + projected // 10**6


def test_exactly_ten_and_twenty_five_percent_off_in_sql():
    # Mid-flight of a 30-day flight, so the expected spend is exactly half the cost.
    _job, deals = make_campaign(
        deals={"branding/1": 2_000_000_000, "branding/2": 2_000_000_000, "ctv/1": 2_000_000_000, "ctv/2": 2_000_000_000}
    )
    midpoint = at(16, 0)
    for name, spend in {
        "branding/1": 900_000_000,  # exactly 10 % under: nothing
        "branding/2": 899_999_999,  # a micro more: warning
        "ctv/1": 1_250_000_000,  # exactly 25 % over: warning
        "ctv/2": 1_250_000_001,  # a micro more: critical
    }.items():
        deliver(deals[name], spend_micros=spend, as_of=midpoint)

    run = _take(midpoint)

    rows = {r.deal_id: r for r in PacingSnapshot.objects.filter(run=run, scope=Scope.DEAL)}
    got = {name: (rows[d.pk].expected_micros, rows[d.pk].status, rows[d.pk].alert_level) for name, d in deals.items()}
    assert got == {
        "branding/1": (1_000_000_000, "on_track", ""),
        "branding/2": (1_000_000_000, "behind", "warning"),
        "ctv/1": (1_000_000_000, "ahead", "warning"),
        "ctv/2": (1_000_000_000, "ahead", "critical"),
    }


def test_channel_and_campaign_rows_are_the_sums_of_their_deals():
    job, deals = make_campaign(deals={"branding/1": 10_000_000_000, "branding/2": 6_000_000_000, "ctv": 4_000_000_000})
    moment = at(10)
    deliver(deals["branding/1"], spend_micros=2_000_000_000, as_of=moment)
    deliver(deals["branding/2"], spend_micros=1_000_000_000, as_of=moment)
    deliver(deals["ctv"], spend_micros=2_000_000_000, as_of=moment)

    run = _take(moment)

    deal_rows = PacingSnapshot.objects.filter(run=run, scope=Scope.DEAL)
    branding = _row(run, scope=Scope.CHANNEL, channel="branding")
    campaign = _row(run, scope=Scope.CAMPAIGN)
    for field in ("booked_micros", "expected_micros", "actual_micros", "projected_micros", "impressions_booked"):
        assert getattr(branding, field) == sum(getattr(r, field) for r in deal_rows if r.channel == "branding")
        assert getattr(campaign, field) == sum(getattr(r, field) for r in deal_rows)
    assert campaign.job_id == job.pk and campaign.channel == "" and campaign.deal_id is None
    assert (campaign.flight_start, campaign.flight_end, campaign.days_left) == (START, END, 21)
    assert campaign.alert_level == alert_level(actual=campaign.actual_micros, expected=campaign.expected_micros)
    assert run.campaigns == 1 and run.deals == 3


def test_a_deal_never_read_is_not_started_and_one_whose_seller_failed_is_judged_now():
    _job, deals = make_campaign()
    from pacing.models import DealDelivery

    DealDelivery.objects.create(deal=deals["ctv"], checked_at=at(5), error="timeout")

    run = _take(at(5))

    assert _row(run, scope=Scope.DEAL, deal=deals["branding"]).status == "not_started"
    failed = _row(run, scope=Scope.DEAL, deal=deals["ctv"])
    assert (failed.status, failed.alert_level, failed.actual_micros) == ("behind", "critical", 0)
    assert failed.expected_micros > 0


def test_each_run_adds_to_the_series_and_only_the_last_is_latest():
    job, deals = make_campaign()
    for day in (1, 2, 3):
        deliver(deals["branding"], spend_micros=1_000_000_000 * day, as_of=at(day))
        deliver(deals["ctv"], spend_micros=600_000_000 * day, as_of=at(day))
        _take(at(day))

    series = PacingSnapshot.objects.filter(job=job, scope=Scope.CAMPAIGN).order_by("as_of")
    assert [s.actual_micros for s in series] == [1_600_000_000, 3_200_000_000, 4_800_000_000]
    current = PacingSnapshot.objects.current().filter(job=job)
    assert {row.run_id for row in current} == {series.last().run_id}
    assert current.count() == 1 + 2 + 2


def test_the_curves_expect_different_spend_at_the_same_moment():
    moment = at(8, 0)  # seven of the thirty days gone: t = 7/30
    expected = {}
    for curve in ("even", "front_loaded", "back_loaded", "asap"):
        job, deals = make_campaign(deals={"ctv": 4_000_000_000}, curve=curve)
        deliver(deals["ctv"], spend_micros=0, as_of=moment)
        run = _take(moment)
        expected[curve] = _row(run, job=job, scope=Scope.CAMPAIGN).expected_micros
    assert expected == {
        "even": 933_333_333,
        "front_loaded": 1_648_888_889,
        "back_loaded": 217_777_778,
        "asap": 1_866_666_667,
    }


def test_campaigns_long_over_are_left_alone_and_top_ups_pace_with_their_campaign():
    from campaigns.models import DealStatus
    from tests.factories import BookedDealFactory, BookingJobFactory, RecommendationFactory

    _finished, old = make_campaign(start=START - timedelta(days=60), end=START - timedelta(days=31))
    for deal in old.values():
        deal.status = DealStatus.COMPLETED
        deal.save(update_fields=["status"])
    job, _ = make_campaign()
    top_up = BookingJobFactory(parent=job, campaign=job.campaign)
    BookedDealFactory(recommendation=RecommendationFactory(job=top_up, channel="ctv", cost_micros=5_000_000_000))

    run = _take(at(3))

    assert set(PacingSnapshot.objects.filter(run=run).values_list("job_id", flat=True)) == {job.pk}
    assert _row(run, scope=Scope.CHANNEL, channel="ctv").booked_micros == 25_000_000_000


def test_a_seller_that_stops_answering_or_goes_quiet_is_judged_against_what_is_due_now():
    from pacing.models import DealDelivery

    _, deals = make_campaign(deals={"branding": 10_000_000_000, "ctv": 10_000_000_000})
    for deal in deals.values():
        deliver(deal, spend_micros=1_166_666_667, as_of=at(4))  # on pace at noon of day 4 (t = 3.5/30)
    DealDelivery.objects.filter(deal=deals["branding"]).update(consecutive_errors=3, error="timeout")

    run = _take(at(9))  # the ctv seller's last word is five days old, the branding seller now fails

    for name in ("branding", "ctv"):
        row = _row(run, scope=Scope.DEAL, deal=deals[name])
        assert (row.status, row.alert_level) == ("behind", "critical"), name
    fresh = _take(at(4, 13))  # an hour after a good reading: judged when the figures were true
    assert _row(fresh, scope=Scope.DEAL, deal=deals["ctv"]).status == "on_track"


def test_a_deal_completed_early_projects_what_it_spent():
    from campaigns.models import BookedDeal, DealStatus

    _, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=10_000_000_000, as_of=at(20))
    BookedDeal.objects.filter(pk=deals["ctv"].pk).update(status=DealStatus.COMPLETED)

    row = _row(_take(at(21)), scope=Scope.DEAL)

    assert row.projected_micros == row.actual_micros == 10_000_000_000
    assert row.status == "ahead"  # it delivered early: budget burned ahead of plan


def test_a_freak_figure_is_stored_within_bounds_instead_of_failing_the_run():
    _, deals = make_campaign(deals={"ctv": 100_000_000_000_000, "branding": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=900_000_000_000_000, as_of=at(1, 0) + timedelta(seconds=2))
    deliver(deals["branding"], spend_micros=1_000, as_of=at(1, 0) + timedelta(seconds=2))

    run = _take(at(1, 0) + timedelta(seconds=2))

    row = _row(run, scope=Scope.DEAL, deal=deals["ctv"])
    assert row.pacing_pct == Decimal("999999.99") and row.alert_level == "critical"
    assert row.projected_micros == 900_000_000_000_000  # it has spent that: a deal ahead finishes, no more
    assert _row(run, scope=Scope.CAMPAIGN).projected_micros <= 2 * 10**15


# --- the grace period -----------------------------------------------------------------------------------------


def test_no_alert_is_raised_in_a_deals_first_day_and_the_same_figures_alert_after_it():
    _, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=0, as_of=at(1, 23))

    first = _row(_take(at(1, 23)), scope=Scope.DEAL)
    deliver(deals["ctv"], spend_micros=0, as_of=at(2, 1))
    after = _row(_take(at(2, 1)), scope=Scope.DEAL)

    assert (first.status, first.alert_level, first.in_grace) == ("behind", "", True)
    assert (after.status, after.alert_level, after.in_grace) == ("behind", "critical", False)
    assert PacingAlert.objects.filter(scope=Scope.DEAL, resolved_at__isnull=True).count() == 1


def test_a_deal_booked_mid_flight_has_its_grace_from_its_booking():
    booked = at(10, 6)
    _, deals = make_campaign(deals={"ctv": 10_000_000_000, "branding": 10_000_000_000}, booked_at=booked)
    for deal in deals.values():
        deliver(deal, spend_micros=0, as_of=at(10, 18))

    run = _take(at(10, 18))

    assert {r.scope: (r.in_grace, r.alert_level) for r in PacingSnapshot.objects.filter(run=run)} == {
        Scope.DEAL: (True, ""),
        Scope.CHANNEL: (True, ""),
        Scope.CAMPAIGN: (True, ""),
    }
    with override_settings(PACING_GRACE_HOURS=12):  # a setting: twelve hours have passed since the booking
        later = _take(at(10, 18))
    assert _row(later, scope=Scope.CAMPAIGN).alert_level == "critical"


def test_a_campaign_is_in_grace_only_while_every_deal_is():
    _, deals = make_campaign(deals={"ctv": 10_000_000_000, "branding": 10_000_000_000})
    BookedDeal.objects.filter(pk=deals["ctv"].pk).update(booked_at=at(10, 6))  # a top-up, say
    for deal in deals.values():
        deliver(deal, spend_micros=0, as_of=at(10, 18))

    run = _take(at(10, 18))

    assert _row(run, scope=Scope.CHANNEL, channel="ctv").in_grace is True
    assert _row(run, scope=Scope.CHANNEL, channel="branding").alert_level == "critical"
    campaign = _row(run, scope=Scope.CAMPAIGN)
    assert (campaign.in_grace, campaign.alert_level) == (False, "critical")


def test_a_deal_whose_flight_has_not_started_does_not_end_the_campaigns_grace():
    _, deals = make_campaign(deals={"ctv": 10_000_000_000, "branding": 10_000_000_000})
    BookedDeal.objects.filter(pk=deals["branding"].pk).update(flight_start=START + timedelta(days=7))
    deliver(deals["ctv"], spend_micros=0, as_of=at(1, 18))

    run = _take(at(1, 18))

    branding = _row(run, scope=Scope.CHANNEL, channel="branding")
    assert (branding.status, branding.in_grace) == ("not_started", False)
    assert (_row(run, scope=Scope.CAMPAIGN).in_grace, _row(run, scope=Scope.CAMPAIGN).alert_level) == (True, "")
    assert not PacingAlert.objects.exists()
    later = _take(at(2, 1))  # the ctv deal's first day is over: its silence is news now
    assert (_row(later, scope=Scope.CAMPAIGN).in_grace, _row(later, scope=Scope.CAMPAIGN).alert_level) == (
        False,
        "critical",
    )


def test_the_grace_period_ends_exactly_when_its_hours_are_up_and_never_covers_a_completed_deal():
    _, deals = make_campaign(deals={"ctv": 10_000_000_000, "branding": 10_000_000_000})
    BookedDeal.objects.filter(pk=deals["branding"].pk).update(status="completed")
    for deal in deals.values():
        deliver(deal, spend_micros=0, as_of=at(1, 23))
    run = _take(at(1, 23))
    assert _row(run, scope=Scope.DEAL, deal=deals["ctv"]).in_grace is True
    assert _row(run, scope=Scope.DEAL, deal=deals["branding"]).in_grace is False
    assert _row(_take(at(2, 0)), scope=Scope.DEAL, deal=deals["ctv"]).in_grace is False


def test_grace_never_hides_a_deal_that_spent_more_than_its_whole_cost():
    _, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=10_000_000_001, as_of=at(1, 2))

    row = _row(_take(at(1, 2)), scope=Scope.DEAL)

    assert (row.in_grace, row.status, row.alert_level) == (True, "ahead", "critical")


def test_a_deal_spending_before_its_flight_is_not_in_grace():
    _, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=1_000_000, as_of=at(1, 0) - timedelta(hours=3))

    row = _row(_take(at(1, 0) - timedelta(hours=3)), scope=Scope.DEAL)

    assert (row.in_grace, row.status, row.alert_level) == (False, "ahead", "critical")


def test_a_deal_running_ahead_projects_its_booked_cost_not_more():
    _, deals = make_campaign(deals={"ctv": 20_000_000_000})
    deliver(deals["ctv"], spend_micros=11_500_000_000, as_of=at(16, 0))  # 15 % ahead of the $10,000 due

    row = _row(_take(at(16, 0)), scope=Scope.DEAL)

    assert (row.status, row.projected_micros) == ("ahead", 20_000_000_000)  # the seller stops at the booking
    assert projected_micros(
        booked=20_000_000_000, expected=10_000_000_000, actual=11_500_000_000, share=Decimal("0.5")
    ) == (20_000_000_000)
