"""How a sandbox package delivers: spend that accrues over its flight, and the metrics that spend buys.

Delivery is a pure function of the package's plan and the moment asked about, so the same question always gets
the same answer and a test moves time by moving the sandbox clock.

A plan is a *segment*: from ``since`` the package spends what is left of its budget (``budget - spent_before``)
over the rest of its flight along its pacing curve, times the product's fill rate (an auction does not win every
impression it bids on). Pausing, resuming or changing the budget closes the segment at that moment and opens a
new one, so the remaining budget is re-planned over the remaining flight, as an ad server catches up.

Pacing curves, as the share of the plan delivered after a share ``x`` of the flight:

================  ==================================================================================
``even``          ``x``
``front_loaded``  ``1 - (1 - x)²`` (twice the even rate at the start, nothing at the end)
``asap``          ``min(1, 4x)`` (the whole plan in the first quarter of the flight)
================  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from buyer.sandbox_adcp.catalog import CatalogProduct, PricingSpec

PACINGS: tuple[str, ...] = ("even", "asap", "front_loaded")
CENT = Decimal("0.01")
ZERO = Decimal(0)
ONE = Decimal(1)


def curve(pacing: str, x: Decimal) -> Decimal:
    """Share of a plan delivered after share ``x`` (clamped to [0, 1]) of its flight."""
    x = min(ONE, max(ZERO, x))
    if pacing == "front_loaded":
        return ONE - (ONE - x) * (ONE - x)
    if pacing == "asap":
        return min(ONE, 4 * x)
    return x


def flight_share(start: datetime, end: datetime, moment: datetime) -> Decimal:
    """How much of the flight ``[start, end]`` has passed at ``moment``, in [0, 1]."""
    total = (end - start).total_seconds()
    if total <= 0:
        return ONE
    elapsed = (moment - start).total_seconds()
    return min(ONE, max(ZERO, Decimal(str(elapsed)) / Decimal(str(total))))


@dataclass(frozen=True)
class Segment:
    """One plan: from ``since``, spend what is left of ``budget`` after ``spent_before`` over the flight
    ``[start, end]`` along ``pacing``, winning ``fill`` of it, at ``rate`` a unit; nothing while ``paused``.

    A segment keeps the terms it was made under, so a later change never rewrites what was delivered before.
    """

    since: datetime
    spent_before: Decimal
    budget: Decimal
    paused: bool
    start: datetime
    end: datetime
    pacing: str
    fill: Decimal
    rate: Decimal


def spend_at(segment: Segment, moment: datetime) -> Decimal:
    """Cumulative spend at ``moment`` (never more than the budget, never less than what was spent before)."""
    if segment.paused or moment <= segment.since:
        return segment.spent_before
    x0 = flight_share(segment.start, segment.end, max(segment.since, segment.start))
    x1 = flight_share(segment.start, segment.end, moment)
    done = curve(segment.pacing, x0)
    if x1 <= x0 or done >= ONE:
        return segment.spent_before
    remaining = max(ZERO, segment.budget - segment.spent_before)
    share = (curve(segment.pacing, x1) - done) / (ONE - done)
    return min(segment.budget, segment.spent_before + remaining * segment.fill * share)


@dataclass(frozen=True)
class Metrics:
    """What a package has delivered: spend in dollars and the counts it bought."""

    spend: Decimal
    impressions: int
    clicks: int
    completed_views: int | None = None
    completion_rate: float | None = None

    def __add__(self, other: Metrics) -> Metrics:
        views = None
        if self.completed_views is not None or other.completed_views is not None:
            views = (self.completed_views or 0) + (other.completed_views or 0)
        return Metrics(
            spend=self.spend + other.spend,
            impressions=self.impressions + other.impressions,
            clicks=self.clicks + other.clicks,
            completed_views=views,
            completion_rate=self.completion_rate if self.completion_rate is not None else other.completion_rate,
        )

    def __sub__(self, other: Metrics) -> Metrics:
        views = None if self.completed_views is None else self.completed_views - (other.completed_views or 0)
        return Metrics(
            spend=self.spend - other.spend,
            impressions=self.impressions - other.impressions,
            clicks=self.clicks - other.clicks,
            completed_views=views,
            completion_rate=self.completion_rate,
        )


NOTHING = Metrics(spend=ZERO, impressions=0, clicks=0)


def delivered(
    segments: Sequence[Segment], moment: datetime, *, product: CatalogProduct, option: PricingSpec
) -> Metrics:
    """What a package with these plans (oldest first) has delivered by ``moment``, each plan at its own rate."""
    total = NOTHING
    for index, segment in enumerate(segments):
        if index > 0 and segment.since > moment:
            break
        following = segments[index + 1].since if index + 1 < len(segments) else None
        until = moment if following is None or following > moment else following
        spent = spend_at(segment, until) - segment.spent_before
        if spent > 0:
            total = total + metrics_for(spent, product=product, option=option, rate=segment.rate)
    return total


def metrics_for(spend: Decimal, *, product: CatalogProduct, option: PricingSpec, rate: Decimal) -> Metrics:
    """Turn spend into impressions, clicks and views at ``rate`` for the option's pricing model.

    ``rate`` is the fixed price or, on an auction option, the buyer's bid (the sandbox clears at the bid).
    A flat-rate option's ``rate`` is the whole fee; its impressions are the product's estimate pro rata.
    """
    completed: int | None = None
    completion_rate: float | None = None
    if option.model == "flat_rate":
        share = spend / rate if rate > 0 else ZERO
        impressions = _floor(Decimal(product.flat_impressions) * share)
    elif option.model == "vcpm":
        viewable = spend / rate * 1000 if rate > 0 else ZERO
        impressions = _floor(viewable / product.viewability)
    elif option.model == "cpcv":
        views = _floor(spend / rate) if rate > 0 else 0
        impressions = _floor(Decimal(views) / product.completion_rate)
        completed, completion_rate = views, float(product.completion_rate)
    else:  # cpm
        impressions = _floor(spend / rate * 1000) if rate > 0 else 0
    if completed is None and "video_vast" in product.format_kinds:
        completed = _floor(Decimal(impressions) * product.completion_rate)
        completion_rate = float(product.completion_rate)
    clicks = _floor(Decimal(impressions) * product.ctr)
    return Metrics(spend, impressions, clicks, completed, completion_rate)


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


__all__ = ["NOTHING", "PACINGS", "Metrics", "Segment", "curve", "delivered", "flight_share", "metrics_for", "spend_at"]
