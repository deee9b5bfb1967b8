"""The pacing maths behind check_pacing: the guide's bands, the assessment and even-delivery expected spend."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pacing.selectors import NO_DATA, campaign_pacing, expected_spend, pacing_assess, pacing_band

money = st.decimals(min_value=0, max_value=10_000_000, places=2, allow_nan=False, allow_infinity=False)
deviations = st.decimals(min_value=-100, max_value=1000, places=4, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(
    ("deviation", "band"),
    [
        ("-100", "behind"),
        ("-10.01", "behind"),
        ("-10.0001", "behind"),
        ("-10", "on_track"),
        ("0", "on_track"),
        ("10", "on_track"),
        ("10.0001", "ahead"),
        ("250", "ahead"),
    ],
)
def test_bands_are_behind_below_minus_ten_and_ahead_above_plus_ten(deviation, band):
    assert pacing_band(Decimal(deviation)) == band


@given(deviations)
def test_the_band_depends_only_on_which_side_of_ten_percent_the_deviation_is(deviation):
    band = pacing_band(deviation)
    assert band == ("behind" if deviation < -10 else "ahead" if deviation > 10 else "on_track")


@given(spent=money, expected=money.filter(lambda m: m > 0))
def test_an_assessment_rates_the_exact_deviation_and_reports_it_rounded(spent, expected):
    result = pacing_assess(spent=spent, expected=expected)
    exact = spent / expected * 100 - 100
    assert result.status == pacing_band(exact)
    assert result.deviation_pct == result.pacing_pct - 100
    assert abs(result.deviation_pct - exact) <= Decimal("0.005")


def test_spending_exactly_as_expected_is_on_track():
    result = pacing_assess(spent=Decimal("500.00"), expected=Decimal("500.00"))
    assert (result.status, result.pacing_pct, result.deviation_pct) == ("on_track", Decimal(100), Decimal(0))
    assert pacing_assess(spent=Decimal(80), expected=Decimal(100)).as_dict() == {
        "status": "behind",
        "pacing_pct": 80.0,
        "deviation_pct": -20.0,
    }


def test_nothing_expected_yet_is_no_data_unless_money_was_spent():
    assert pacing_assess(spent=Decimal(0), expected=Decimal(0)).status == "no_data"
    assert pacing_assess(spent=Decimal(1), expected=Decimal(0)).status == "ahead"


@given(
    budget=money,
    start=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)),
    length=st.integers(min_value=0, max_value=400),
    offset=st.integers(min_value=-30, max_value=450),
)
def test_expected_spend_grows_evenly_from_nothing_to_the_budget(budget, start, length, offset):
    end = start + timedelta(days=length)
    as_of = start + timedelta(days=offset)
    spend = expected_spend(budget=budget, flight_start=start, flight_end=end, as_of=as_of)
    assert 0 <= spend <= budget
    later = expected_spend(budget=budget, flight_start=start, flight_end=end, as_of=as_of + timedelta(days=1))
    assert later >= spend
    if as_of < start:
        assert spend == 0
    if as_of >= end:
        assert spend == budget


def test_every_campaign_has_no_data_until_snapshots_are_recorded():
    assert campaign_pacing("any-job") is NO_DATA
    assert NO_DATA.as_dict() == {
        "status": "no_data",
        "pacing_pct": None,
        "deviation_pct": None,
        "channel_pacing": [],
        "snapshot_at": None,
    }
