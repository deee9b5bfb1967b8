"""Server-rendered SVG charts: no JavaScript, readable by screen readers (``role="img"`` with a title and a
description; the page shows the same numbers in a table next to the chart)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from campaigns.templatetags.campaign_labels import channel as channel_label

WIDTH = 640
LABEL_WIDTH = 130
BAR_AREA = 330
ROW_HEIGHT = 30
BAR_HEIGHT = 18


@dataclass(frozen=True)
class Bar:
    label: str
    amount: Decimal
    percentage: Decimal
    note: str = ""
    key: str = ""  # the channel's code, where ``label`` is its name


def money(amount: Decimal) -> str:
    """``$36,000`` or ``$36,000.50``: whole amounts without cents, as the tables show them."""
    if amount == amount.to_integral_value():
        return f"${amount:,.0f}"
    return f"${amount:,.2f}"


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def allocation_bars(allocations: dict[str, Any]) -> list[Bar]:
    """The plan's budget split (``BookingJob.budget_allocations``), largest first."""
    bars = [
        Bar(
            label=channel_label(str(item.get("channel") or channel)),
            key=str(item.get("channel") or channel),
            amount=_decimal(item.get("budget")),
            percentage=_decimal(item.get("percentage")),
            note=str(item.get("rationale") or ""),
        )
        for channel, item in allocations.items()
        if isinstance(item, dict)
    ]
    return sorted(bars, key=lambda bar: bar.amount, reverse=True)


def bar_chart_svg(bars: list[Bar], *, title: str, chart_id: str) -> SafeString:
    """Horizontal bars, one per item, scaled to 100 %; every label and value is escaped."""
    height = ROW_HEIGHT * len(bars) + 8
    rows = []
    for index, bar in enumerate(bars):
        y = 4 + index * ROW_HEIGHT
        share = min(max(bar.percentage, Decimal(0)), Decimal(100))
        width = (share / 100 * BAR_AREA).quantize(Decimal("0.1"))
        rows.append(
            (
                y + BAR_HEIGHT - 4,
                bar.label,
                LABEL_WIDTH,
                y,
                BAR_AREA,
                BAR_HEIGHT,
                LABEL_WIDTH,
                y,
                width,
                BAR_HEIGHT,
                LABEL_WIDTH + BAR_AREA + 8,
                y + BAR_HEIGHT - 4,
                f"{bar.percentage.normalize():f}%",
                money(bar.amount),
            )
        )
    description = "; ".join(f"{bar.label}: {bar.percentage.normalize():f}%, {money(bar.amount)}" for bar in bars)
    body = format_html_join(
        "",
        '<g><text class="chart-label" x="0" y="{}">{}</text>'
        '<rect class="chart-track" x="{}" y="{}" width="{}" height="{}" rx="2"></rect>'
        '<rect class="chart-bar" x="{}" y="{}" width="{}" height="{}" rx="2"></rect>'
        '<text class="chart-value" x="{}" y="{}">{} · {}</text></g>',
        rows,
    )
    return format_html(
        '<svg class="chart" id="{}" role="img" aria-labelledby="{}-title {}-desc" viewBox="0 0 {} {}" '
        'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        chart_id,
        chart_id,
        chart_id,
        WIDTH,
        height,
        chart_id,
        title,
        chart_id,
        description,
        body,
    )
