"""The pacing maths: curves, the guide's 10 % / 25 % thresholds (exact at the edges), projections, reallocation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.models import PacingCurve
from pacing.maths import (
    MAX_PACING_PCT,
    MAX_PACING_RATIO,
    alert_level,
    assess,
    curve_share,
    days_left,
    elapsed_share,
    expected_micros,
    plan_reallocation,
    projected_micros,
)

CURVES = [c.value for c in PacingCurve]
shares = st.decimals(min_value=0, max_value=1, places=6)
micros = st.integers(min_value=0, max_value=10**15)  # up to a $1bn budget
positive_micros = st.integers(min_value=1, max_value=10**15)


# -- curves ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES)
def test_every_curve_starts_at_nothing_and_ends_at_everything(curve):
    assert curve_share(curve, Decimal(0)) == 0
    assert curve_share(curve, Decimal(1)) == 1
    assert curve_share(curve, Decimal(-1)) == 0 and curve_share(curve, Decimal(2)) == 1


@given(curve=st.sampled_from(CURVES), a=shares, b=shares)
def test_curves_never_fall_and_stay_within_the_budget(curve, a, b):
    low, high = sorted((a, b))
    assert 0 <= curve_share(curve, low) <= curve_share(curve, high) <= 1


@given(t=shares)
def test_asap_is_due_soonest_then_front_loaded_then_even_then_back_loaded(t):
    asap, front, even, back = (curve_share(c, t) for c in ("asap", "front_loaded", "even", "back_loaded"))
    assert asap >= front >= even >= back
    assert even == t


def test_half_way_through_each_curve():
    half = Decimal("0.5")
    assert [curve_share(c, half) for c in ("even", "front_loaded", "back_loaded", "asap")] == [
        Decimal("0.5"),
        Decimal("0.75"),
        Decimal("0.25"),
        Decimal(1),
    ]


@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    length=st.integers(min_value=0, max_value=400),
    seconds=st.integers(min_value=-10 * 86_400, max_value=420 * 86_400),
)
def test_elapsed_share_runs_from_the_first_day_at_midnight_to_the_last_day_at_midnight(start, length, seconds):
    end = start + timedelta(days=length)
    at = datetime.combine(start, datetime.min.time(), tzinfo=UTC) + timedelta(seconds=seconds)
    share = elapsed_share(start, end, at)
    assert 0 <= share <= 1
    total = (length + 1) * 86_400
    assert share == min(max(Fraction(seconds, total), Fraction(0)), Fraction(1)) or abs(
        share - Decimal(seconds) / Decimal(total)
    ) < Decimal("1e-20")
    assert elapsed_share(start, end, at + timedelta(hours=1)) >= share


def test_a_one_day_flight_is_half_gone_at_noon():
    assert elapsed_share(date(2027, 3, 1), date(2027, 3, 1), datetime(2027, 3, 1, 12, tzinfo=UTC)) == Decimal("0.5")


@given(booked=micros, share=shares)
def test_expected_spend_is_the_curve_share_of_the_booked_spend_to_the_micro(booked, share):
    expected = expected_micros(booked, share)
    assert 0 <= expected <= booked
    assert abs(Decimal(expected) - Decimal(booked) * share) <= Decimal("0.5")


# -- thresholds ------------------------------------------------------------------------------------


@given(expected=st.integers(min_value=1, max_value=10**13).map(lambda n: n * 100))
def test_exactly_ten_percent_off_raises_nothing_and_one_micro_more_a_warning(expected):
    tenth = expected // 10
    for actual in (expected - tenth, expected + tenth):
        assert alert_level(actual=actual, expected=expected) == ""
        assert assess(actual=actual, expected=expected).status == "on_track"
    assert alert_level(actual=expected - tenth - 1, expected=expected) == "warning"
    assert alert_level(actual=expected + tenth + 1, expected=expected) == "warning"


@given(expected=st.integers(min_value=1, max_value=10**13).map(lambda n: n * 100))
def test_exactly_twenty_five_percent_off_is_a_warning_and_one_micro_more_critical(expected):
    quarter = expected // 4
    for actual in (expected - quarter, expected + quarter):
        assert alert_level(actual=actual, expected=expected) == "warning"
    assert alert_level(actual=expected - quarter - 1, expected=expected) == "critical"
    assert alert_level(actual=expected + quarter + 1, expected=expected) == "critical"


@given(actual=micros, expected=positive_micros)
def test_the_level_follows_the_exact_deviation(actual, expected):
    deviation = abs(Fraction(actual - expected, expected))
    level = alert_level(actual=actual, expected=expected)
    assert level == ("critical" if deviation > Fraction(1, 4) else "warning" if deviation > Fraction(1, 10) else "")


@given(actual=micros, expected=positive_micros)
def test_an_assessment_is_behind_or_ahead_exactly_when_it_alerts(actual, expected):
    result = assess(actual=actual, expected=expected)
    exact = Decimal(actual) * 100 / Decimal(expected)
    if actual > expected * MAX_PACING_RATIO:  # a freak figure: stored at the bound
        assert result.pacing_pct == MAX_PACING_PCT
    else:
        assert abs(result.pacing_pct - exact) <= Decimal("0.005")
    assert result.deviation_pct == result.pacing_pct - 100
    if result.alert_level:
        assert result.status == ("ahead" if actual > expected else "behind")
        assert result.direction == ("over" if actual > expected else "under")
    else:
        assert (result.status, result.direction) == ("on_track", "")


def test_nothing_due_is_not_started_unless_money_was_already_spent():
    assert assess(actual=0, expected=0).as_dict() == {
        "status": "not_started",
        "alert_level": None,
        "pacing_pct": None,
        "deviation_pct": None,
    }
    early = assess(actual=1, expected=0)
    assert (early.status, early.alert_level, early.direction, early.pacing_pct) == ("ahead", "critical", "over", None)


@given(days_before=st.integers(min_value=1, max_value=60), spent=micros)
def test_a_day_before_the_flight_nothing_is_expected(days_before, spent):
    start = date(2027, 5, 10)
    at = datetime.combine(start, datetime.min.time(), tzinfo=UTC) - timedelta(days=days_before)
    share = curve_share("even", elapsed_share(start, start + timedelta(days=29), at))
    expected = expected_micros(50_000_000_000, share)
    assert expected == 0
    assert assess(actual=spent, expected=expected).status == ("ahead" if spent else "not_started")


# -- projections and days left ---------------------------------------------------------------------


@given(booked=positive_micros, share=st.decimals(min_value="0.01", max_value="0.99", places=4))
def test_on_pace_projects_the_booked_spend(booked, share):
    expected = expected_micros(booked, share)
    projected = projected_micros(booked=booked, expected=expected, actual=expected, share=share)
    # Only the rounding of the expected spend to a whole micro, scaled up by the rest of the flight, is lost.
    assert abs(projected - booked) <= Decimal("0.5") / share + 1


def test_projections_at_the_edges_of_the_flight():
    assert projected_micros(booked=100, expected=100, actual=70, share=Decimal(1)) == 70
    assert projected_micros(booked=100, expected=0, actual=0, share=Decimal(0)) == 100
    assert projected_micros(booked=100, expected=0, actual=130, share=Decimal(0)) == 130
    assert projected_micros(booked=1000, expected=500, actual=350, share=Decimal("0.5")) == 700


@given(
    start=st.dates(min_value=date(2020, 1, 1), max_value=date(2040, 1, 1)),
    length=st.integers(min_value=0, max_value=365),
    offset=st.integers(min_value=-50, max_value=450),
)
def test_days_left_count_down_from_the_whole_flight_to_zero(start, length, offset):
    end = start + timedelta(days=length)
    left = days_left(start, end, start + timedelta(days=offset))
    assert 0 <= left <= length + 1
    if offset <= 0:
        assert left == length + 1
    if offset > length:
        assert left == 0


# -- reallocation ----------------------------------------------------------------------------------

channel_states = st.dictionaries(
    keys=st.sampled_from(["branding", "ctv", "mobile_app", "performance", "social"]),
    values=st.fixed_dictionaries(
        {
            "status": st.sampled_from(["behind", "ahead", "on_track", "not_started"]),
            "budget": st.integers(min_value=0, max_value=10**12),
            "projected": st.integers(min_value=0, max_value=2 * 10**12),
        }
    ),
    min_size=1,
    max_size=5,
)


@given(
    channels=channel_states,
    campaign_budget=st.integers(min_value=1, max_value=5 * 10**12),
    minimum=st.integers(min_value=0, max_value=10**9),
    share=st.decimals(min_value=1, max_value=100, places=0),
)
def test_a_reallocation_moves_only_spare_money_from_behind_to_ahead_within_the_caps(
    channels, campaign_budget, minimum, share
):
    moves = plan_reallocation(
        channels=channels, campaign_budget_micros=campaign_budget, minimum_micros=minimum, max_share_pct=share
    )
    total = sum(m.amount_micros for m in moves)
    if not moves:
        return
    assert total >= minimum
    assert total <= campaign_budget * share / 100
    for move in moves:
        assert move.amount_micros > 0 and move.amount_micros % 10_000 == 0  # whole cents
        assert channels[move.from_channel]["status"] == "behind"
        assert channels[move.to_channel]["status"] == "ahead"
    for name, info in channels.items():
        given_away = sum(m.amount_micros for m in moves if m.from_channel == name)
        assert given_away <= max(0, info["budget"] - info["projected"])


def test_a_reallocation_is_capped_at_its_share_of_the_campaign_and_needs_a_minimum():
    channels = {
        "branding": {"status": "behind", "budget": 30_000_000_000, "projected": 21_000_000_000},
        "ctv": {"status": "ahead", "budget": 20_000_000_000, "projected": 23_000_000_000},
        "mobile_app": {"status": "on_track", "budget": 10_000_000_000, "projected": 10_000_000_000},
    }
    moves = plan_reallocation(
        channels=channels, campaign_budget_micros=60_000_000_000, minimum_micros=100_000_000, max_share_pct=Decimal(30)
    )
    assert [(m.from_channel, m.to_channel, m.amount_micros) for m in moves] == [("branding", "ctv", 9_000_000_000)]
    capped = plan_reallocation(
        channels=channels, campaign_budget_micros=60_000_000_000, minimum_micros=100_000_000, max_share_pct=Decimal(10)
    )
    assert sum(m.amount_micros for m in capped) == 6_000_000_000
    assert not plan_reallocation(
        channels=channels,
        campaign_budget_micros=60_000_000_000,
        minimum_micros=10_000_000_000,
        max_share_pct=Decimal(30),
    )
    assert not plan_reallocation(
        channels={k: v for k, v in channels.items() if k != "ctv"},
        campaign_budget_micros=60_000_000_000,
        minimum_micros=0,
        max_share_pct=Decimal(30),
    )
