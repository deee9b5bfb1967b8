"""Expected against actual spend over time as a server-rendered SVG line chart (no JavaScript).

Like the allocation chart it is an image with a title and a description for screen readers; the page prints
the same numbers in a table beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from buyer.words import count
from campaigns.charts import money

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 28, 36
Y_TICKS = 4


@dataclass(frozen=True)
class Point:
    at: datetime
    expected: Decimal
    actual: Decimal


def _nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value``: round numbers for the y axis."""
    if value <= 0:
        return Decimal(1)
    magnitude = Decimal(10) ** (len(str(int(value))) - 1)
    for step in (1, 2, Decimal("2.5"), 5, 10):
        if value <= step * magnitude:
            return Decimal(step) * magnitude
    return 10 * magnitude


def _n(value: float) -> str:
    """A coordinate with one decimal, as text (format_html escapes its arguments before formatting them)."""
    return f"{value:.1f}"


def pacing_chart_svg(points: list[Point], *, title: str, chart_id: str) -> SafeString:
    """Two lines, expected (dashed) and actual spend, over the snapshots' moments; every text is escaped."""
    if not points:
        return SafeString("")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_ceiling(max(max(p.expected, p.actual) for p in points))
    first, last = points[0].at.timestamp(), points[-1].at.timestamp()
    span = (last - first) or 1.0

    def x(point: Point) -> float:
        return LEFT + (point.at.timestamp() - first) / span * plot_w if len(points) > 1 else LEFT + plot_w / 2

    def y(amount: Decimal) -> float:
        return TOP + plot_h - float(amount / top) * plot_h

    def line(values: list[tuple[float, float]]) -> str:
        return " ".join(f"{_n(px)},{_n(py)}" for px, py in values)

    expected = [(x(p), y(p.expected)) for p in points]
    actual = [(x(p), y(p.actual)) for p in points]
    ticks = format_html_join(
        "",
        '<line class="chart-grid" x1="{}" y1="{}" x2="{}" y2="{}"></line>'
        '<text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (LEFT, _n(y(amount)), WIDTH - RIGHT, _n(y(amount)), LEFT - 6, _n(y(amount) + 4), money(amount))
            for amount in (top * i / Y_TICKS for i in range(Y_TICKS + 1))
        ),
    )
    local = [timezone.localtime(p.at) for p in (points[0], points[-1])]
    if len(points) == 1:  # one moment: one label under its dot
        dates = format_html(
            '<text class="chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
            _n(x(points[0])),
            HEIGHT - 12,
            f"{local[0]:%b %-d %H:%M}",
        )
    else:
        dates = format_html(
            '<text class="chart-axis" x="{}" y="{}">{}</text><text class="chart-axis" x="{}" y="{}" '
            'text-anchor="end">{}</text>',
            LEFT,
            HEIGHT - 12,
            f"{local[0]:%b %-d %H:%M}",
            WIDTH - RIGHT,
            HEIGHT - 12,
            f"{local[1]:%b %-d %H:%M}",
        )
    dots = format_html_join(
        "", '<circle class="chart-actual-dot" cx="{}" cy="{}" r="3"></circle>', ((_n(px), _n(py)) for px, py in actual)
    )
    if len(points) == 1:  # a line of one point draws nothing: show expected as a hollow dot too
        dots += format_html(
            '<circle class="chart-expected-dot" cx="{}" cy="{}" r="4"></circle>', _n(expected[0][0]), _n(expected[0][1])
        )
    legend = format_html(
        '<g class="chart-legend"><line class="chart-expected" x1="{}" y1="12" x2="{}" y2="12"></line>'
        '<text x="{}" y="16">expected</text><line class="chart-actual" x1="{}" y1="12" x2="{}" y2="12"></line>'
        '<text x="{}" y="16">actual</text></g>',
        LEFT,
        LEFT + 24,
        LEFT + 30,
        LEFT + 110,
        LEFT + 134,
        LEFT + 140,
    )
    end = points[-1]
    description = (
        f"{count(len(points), 'snapshot')} from {local[0]:%b %-d, %Y, %H:%M} to "
        f"{local[1]:%b %-d, %Y, %H:%M}; latest: expected {money(end.expected)}, actual {money(end.actual)}."
    )
    return format_html(
        '<svg class="chart pacing-chart" id="{}" role="img" aria-labelledby="{}-title {}-desc" viewBox="0 0 {} {}" '
        'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}{}{}'
        '<polyline class="chart-expected" points="{}"></polyline>'
        '<polyline class="chart-actual" points="{}"></polyline>{}</svg>',
        chart_id,
        chart_id,
        chart_id,
        WIDTH,
        HEIGHT,
        chart_id,
        title,
        chart_id,
        description,
        ticks,
        dates,
        legend,
        line(expected),
        line(actual),
        dots,
    )
