"""Reads for the pacing pages and the MCP pacing and budget tools, and the pacing maths they share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from buyer.sellers.money import CENT, micros_to_decimal
from campaigns.models import BookedDeal, BookingJob, DealStatus, JobStatus

# Deals the seller holds for delivery: these are the ones pacing will watch.
PACED_STATUSES = (
    DealStatus.BOOKED,
    DealStatus.DELIVERING,
    DealStatus.MAKEGOOD_PENDING,
    DealStatus.PARTIALLY_CANCELED,
)


def deals_to_pace() -> QuerySet[BookedDeal]:
    """Booked deals that pacing will follow, soonest flight first, with their campaign and seller."""
    return (
        BookedDeal.objects.filter(status__in=PACED_STATUSES)
        .select_related("job__campaign", "seller")
        .only(
            "deal_id",
            "product_name",
            "channel",
            "deal_type",
            "impressions",
            "cost_micros",
            "flight_start",
            "flight_end",
            "status",
            "seller_url",
            "seller__name",
            "job__id",
            "job__campaign__name",
        )
        .order_by("flight_start", "job__campaign__name", "pk")
    )


# --- Pacing and budgets (the MCP tools and, later, the pacing pages) ------------------------------------------

# Deals whose money is committed at the seller: what "booked" sums.
COMMITTED_STATUSES = (*PACED_STATUSES, DealStatus.COMPLETED)
# Jobs that still plan, wait or book; a finished job counts only if it booked something.
ACTIVE_JOB_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.AWAITING_APPROVAL)

# A campaign more than this far (in percentage points of expected spend) off pace is behind or ahead.
PACING_TOLERANCE_PCT = Decimal(10)

PacingStatus = Literal["on_track", "behind", "ahead", "no_data"]
_HUNDRED = Decimal(100)
_PCT = Decimal("0.01")


def pacing_band(deviation_pct: Decimal) -> PacingStatus:
    """The operations guide's bands: below -10 % behind, above +10 % ahead, otherwise (both ends included) on track."""
    if deviation_pct < -PACING_TOLERANCE_PCT:
        return "behind"
    if deviation_pct > PACING_TOLERANCE_PCT:
        return "ahead"
    return "on_track"


@dataclass(frozen=True)
class PacingAssessment:
    status: PacingStatus
    pacing_pct: Decimal | None  # actual spend as a percentage of the spend expected by now
    deviation_pct: Decimal | None  # pacing_pct - 100

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "pacing_pct": _float(self.pacing_pct),
            "deviation_pct": _float(self.deviation_pct),
        }


def pacing_assess(*, spent: Decimal, expected: Decimal) -> PacingAssessment:
    """Compare actual with expected spend. Nothing expected yet: no_data, unless money was already spent (ahead)."""
    if expected <= 0:
        return PacingAssessment("no_data" if spent <= 0 else "ahead", None, None)
    pacing_pct = spent / expected * _HUNDRED
    deviation_pct = pacing_pct - _HUNDRED
    # Banded before rounding, so -10.004 % is behind even though it reads -10.00 %.
    return PacingAssessment(pacing_band(deviation_pct), _round_pct(pacing_pct), _round_pct(deviation_pct))


def expected_spend(*, budget: Decimal, flight_start: date, flight_end: date, as_of: date) -> Decimal:
    """Even (linear) delivery: the share of ``budget`` due by the end of ``as_of``, flight days inclusive."""
    days = (flight_end - flight_start).days + 1
    elapsed = min(max((as_of - flight_start).days + 1, 0), days)
    return (budget * elapsed / days).quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class ChannelPacing:
    channel: str
    budget: Decimal
    spent: Decimal
    assessment: PacingAssessment

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "budget": float(self.budget), "spent": float(self.spent)} | (
            self.assessment.as_dict()
        )


@dataclass(frozen=True)
class PacingReport:
    assessment: PacingAssessment
    channel_pacing: list[ChannelPacing]
    snapshot_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return self.assessment.as_dict() | {
            "channel_pacing": [channel.as_dict() for channel in self.channel_pacing],
            "snapshot_at": self.snapshot_at,
        }


NO_DATA = PacingReport(PacingAssessment("no_data", None, None), [], None)


def campaign_pacing(job_id: str) -> PacingReport:
    """The latest pacing of a campaign (booking job).

    No delivery snapshots are recorded yet, so every campaign answers ``no_data``; once they are, this reads the
    latest one and rates it (and each channel) with :func:`pacing_assess`.
    """
    return NO_DATA


@dataclass(frozen=True)
class CampaignBudget:
    job_id: str
    name: str
    status: str
    budget: Decimal
    booked: Decimal
    spent: Decimal

    @property
    def delivery_pct(self) -> Decimal:
        """Spend delivered as a percentage of what is booked (0 when nothing is booked)."""
        return _pct(self.spent, self.booked)

    @property
    def booked_pct(self) -> Decimal:
        return _pct(self.booked, self.budget)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.job_id,
            "name": self.name,
            "status": self.status,
            "budget": float(self.budget),
            "booked": float(self.booked),
            "spent": float(self.spent),
            "remaining": float(self.budget - self.booked),
            "booked_pct": float(self.booked_pct),
            "delivery_pct": float(self.delivery_pct),
        }


@dataclass(frozen=True)
class BudgetReview:
    budget: Decimal
    booked: Decimal
    spent: Decimal
    campaign_count: int
    campaigns: list[CampaignBudget]


def _budget_rows() -> QuerySet[BookingJob]:
    booked = (
        BookedDeal.objects.filter(job=OuterRef("pk"), status__in=COMMITTED_STATUSES)
        .order_by()
        .values("job")
        .annotate(total=Sum("cost_micros"))
        .values("total")
    )
    return (
        BookingJob.objects.select_related("campaign")
        .only("id", "status", "created_at", "campaign__name", "campaign__budget_micros")
        .annotate(booked_micros=Coalesce(Subquery(booked), Value(0)))
    )


def _campaign_budget(job: BookingJob) -> CampaignBudget:
    # Spend comes from delivery snapshots, which are not recorded yet.
    return CampaignBudget(
        job_id=str(job.pk),
        name=job.campaign.name,
        status=job.status,
        budget=job.campaign.budget,
        booked=micros_to_decimal(job.booked_micros),
        spent=Decimal(0),
    )


def budget_review(*, limit: int = 100) -> BudgetReview:
    """Totals over campaigns that are active or have committed deals, and the newest ``limit`` of them."""
    jobs = _budget_rows().filter(Q(status__in=ACTIVE_JOB_STATUSES) | Q(booked_micros__gt=0))
    totals = jobs.aggregate(budget=Sum("campaign__budget_micros"), booked=Sum("booked_micros"), count=Count("pk"))
    rows = [_campaign_budget(job) for job in jobs.order_by("-created_at", "-pk")[:limit]]
    return BudgetReview(
        budget=micros_to_decimal(totals["budget"] or 0),
        booked=micros_to_decimal(totals["booked"] or 0),
        spent=Decimal(0),
        campaign_count=totals["count"],
        campaigns=rows,
    )


def campaign_budget_get(job_id: str) -> CampaignBudget | None:
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        return None
    job = _budget_rows().filter(pk=key).first()
    return None if job is None else _campaign_budget(job)


def _pct(part: Decimal, whole: Decimal) -> Decimal:
    return _round_pct(part / whole * _HUNDRED) if whole > 0 else Decimal(0)


def _round_pct(value: Decimal) -> Decimal:
    return value.quantize(_PCT, rounding=ROUND_HALF_EVEN)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
