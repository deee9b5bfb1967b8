"""The pacing chart: two lines over the snapshots, readable with a single snapshot too, every text escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pacing.charts import Point, pacing_chart_svg

MOMENT = datetime(2027, 3, 5, 12, tzinfo=UTC)


def test_one_snapshot_draws_both_figures_as_dots_with_one_date():
    svg = str(pacing_chart_svg([Point(MOMENT, Decimal(100), Decimal(80))], title="One", chart_id="c"))

    assert svg.count('class="chart-actual-dot"') == 1 and svg.count('class="chart-expected-dot"') == 1
    assert svg.count("Mar 5 12:00") == 1 and 'text-anchor="middle">Mar 5 12:00' in svg


def test_a_series_draws_lines_between_its_first_and_last_dates():
    points = [Point(MOMENT + timedelta(days=d), Decimal(100 * d), Decimal(90 * d)) for d in range(3)]

    svg = str(pacing_chart_svg(points, title="<b>Three</b>", chart_id="c"))

    assert svg.count('class="chart-actual-dot"') == 3 and 'class="chart-expected-dot"' not in svg
    assert "Mar 5 12:00" in svg and "Mar 7 12:00" in svg
    assert "<b>Three</b>" not in svg and "&lt;b&gt;Three&lt;/b&gt;" in svg


def test_no_snapshot_draws_nothing():
    assert pacing_chart_svg([], title="None", chart_id="c") == ""
