"""Reads shared by the pacing pages, the REST API and the MCP tools (``check_pacing``, ``review_budgets``).

A campaign is a booking job with its top-up jobs; every read takes any of its job ids and answers for the
campaign's first job (``root``), where its pacing rows live.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Abs, Coalesce
from django.utils import timezone

from buyer.sellers.money import decimal_to_micros, micros_to_decimal
from campaigns.models import BookedDeal, BookingJob, DealStatus, JobStatus
from pacing.delivery import PACED_STATUSES
from pacing.models import (
    AlertLevel,
    ChannelBudget,
    DealDelivery,
    PacingAlert,
    PacingSnapshot,
    ProposalStatus,
    ReallocationProposal,
    RunStatus,
    Scope,
    SnapshotRun,
)

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

# Deals whose money is committed at the seller: what "booked" sums.
COMMITTED_STATUSES = (*PACED_STATUSES, DealStatus.COMPLETED)
# Jobs that still plan, wait or book; a finished job counts only if it booked something.
ACTIVE_JOB_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.AWAITING_APPROVAL)
SERIES_LIMIT = 2000
# A refresh not done by then is given up (the page stops waiting for it) and may be asked for again.
REFRESH_TIMEOUT = timedelta(minutes=5)

PacingBand = Literal["on_track", "behind", "ahead", "no_data"]
_HUNDRED = Decimal(100)


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def campaign_root_get(job_id: Any) -> BookingJob | None:
    """The campaign (its first job, with the brief) that ``job_id`` belongs to; None when unknown. A campaign
    id answers too (the ``campaign_id`` of events), as does the id of any of its jobs."""
    key = _uuid(job_id)
    if key is None:
        return None
    job = (
        BookingJob.objects.select_related("campaign", "parent__campaign")
        .filter(Q(pk=key) | Q(campaign_id=key))
        .order_by("created_at")
        .first()
    )
    if job is None:
        return None
    return job.parent or job


def channel_budgets(job: BookingJob) -> dict[str, int]:
    """The campaign's channel budgets in micros: the plan's allocation, as approved reallocations changed it."""
    stored = dict(ChannelBudget.objects.filter(job=job).values_list("channel", "budget_micros"))
    return stored or planned_budgets(job)


def deal_pacing(deal: BookedDeal) -> PacingSnapshot | None:
    """The deal's row in its campaign's newest snapshot run; None until it is paced."""
    return PacingSnapshot.objects.current().filter(scope=Scope.DEAL, deal=deal).first()


def budgets_reallocated(job: BookingJob) -> bool:
    """Whether an approved reallocation has changed the plan's channel budgets of this campaign."""
    return ChannelBudget.objects.filter(job=job).exists()


def planned_budgets(job: BookingJob) -> dict[str, int]:
    """The channel budgets of the plan (``BookingJob.budget_allocations``), in micros."""
    return {
        channel: decimal_to_micros(Decimal(str(item.get("budget", "0"))))
        for channel, item in (job.budget_allocations or {}).items()
        if isinstance(item, dict)
    }


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


# --- pacing of one campaign (check_pacing, get_campaign_status) --------------------------------------------


@dataclass(frozen=True)
class PacingAssessment:
    status: PacingBand
    pacing_pct: Decimal | None
    deviation_pct: Decimal | None
    alert_level: str = ""
    detail: str = ""  # why there is no data: no snapshot yet, or nothing due yet
    in_grace: bool = False  # delivery started less than PACING_GRACE_HOURS ago: rated, not alerted on

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "status": self.status,
            "pacing_pct": _float(self.pacing_pct),
            "deviation_pct": _float(self.deviation_pct),
            "in_grace": self.in_grace,
        }
        if self.alert_level:
            answer["alert_level"] = self.alert_level
        if self.detail:
            answer["detail"] = self.detail
        return answer


def _assessment(row: PacingSnapshot) -> PacingAssessment:
    if row.status == "not_started":
        return PacingAssessment("no_data", None, None, detail="not_started")
    return PacingAssessment(
        row.status,  # type: ignore[arg-type]
        row.pacing_pct,
        row.deviation_pct,
        row.alert_level,
        in_grace=row.in_grace,
    )


@dataclass(frozen=True)
class ChannelPacing:
    channel: str
    budget: Decimal
    booked: Decimal
    expected: Decimal
    spent: Decimal
    projected: Decimal
    assessment: PacingAssessment

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "budget": float(self.budget),
            "booked": float(self.booked),
            "expected": float(self.expected),
            "spent": float(self.spent),
            "projected": float(self.projected),
        } | self.assessment.as_dict()


@dataclass(frozen=True)
class PacingReport:
    assessment: PacingAssessment
    channel_pacing: list[ChannelPacing]
    snapshot_at: datetime | None
    expected: Decimal = Decimal(0)
    spent: Decimal = Decimal(0)
    projected: Decimal = Decimal(0)
    days_left: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.assessment.as_dict() | {
            "expected": float(self.expected),
            "spent": float(self.spent),
            "projected": float(self.projected),
            "days_left": self.days_left,
            "channel_pacing": [channel.as_dict() for channel in self.channel_pacing],
            "snapshot_at": self.snapshot_at,
        }


NO_DATA = PacingReport(PacingAssessment("no_data", None, None, detail="no_snapshot"), [], None)


def campaign_pacing(job_id: Any) -> PacingReport:
    """The latest pacing of a campaign: ``no_data`` until a snapshot exists (or while nothing is due yet)."""
    root = campaign_root_get(job_id)
    if root is None:
        return NO_DATA
    latest = list(PacingSnapshot.objects.current().filter(job=root).exclude(scope=Scope.DEAL))
    campaign = next((row for row in latest if row.scope == Scope.CAMPAIGN), None)
    if campaign is None:
        return NO_DATA
    budgets = channel_budgets(root)
    channels = [
        ChannelPacing(
            channel=row.channel,
            budget=micros_to_decimal(budgets.get(row.channel, row.booked_micros)),
            booked=row.booked,
            expected=row.expected,
            spent=row.actual,
            projected=row.projected,
            assessment=_assessment(row),
        )
        for row in sorted((r for r in latest if r.scope == Scope.CHANNEL), key=lambda r: r.channel)
    ]
    return PacingReport(
        assessment=_assessment(campaign),
        channel_pacing=channels,
        snapshot_at=campaign.as_of,
        expected=campaign.expected,
        spent=campaign.actual,
        projected=campaign.projected,
        days_left=campaign.days_left,
    )


def campaign_series(job_id: Any, *, scope: str = Scope.CAMPAIGN, key: str = "") -> list[PacingSnapshot]:
    """Snapshots of a campaign (or one of its channels or deals) over time, oldest first."""
    root = campaign_root_get(job_id)
    if root is None:
        return []
    rows = PacingSnapshot.objects.filter(job=root, scope=scope)
    if scope == Scope.CHANNEL:
        rows = rows.filter(channel=key)
    elif scope == Scope.DEAL:
        rows = rows.filter(deal_id=int(key) if str(key).isdigit() else -1)
    newest = list(rows.order_by("-as_of", "-pk")[:SERIES_LIMIT])
    return newest[::-1]


def campaign_channel_names(root: BookingJob) -> set[str]:
    """Every channel a campaign has: briefed, budgeted (a reallocation may add one) or snapshotted."""
    snapshotted = (
        PacingSnapshot.objects.current().filter(job=root, scope=Scope.CHANNEL).values_list("channel", flat=True)
    )
    return set(root.campaign.channels or []) | set(channel_budgets(root)) | set(snapshotted)


def campaign_latest_rows(root: BookingJob) -> dict[str, list[PacingSnapshot]]:
    """The latest channel and deal rows of a campaign, deals with their deal, seller and delivery."""
    rows = (
        PacingSnapshot.objects.current()
        .filter(job=root)
        .select_related("deal__seller", "deal__delivery")
        .order_by("scope", "channel", "deal_id")
    )
    grouped: dict[str, list[PacingSnapshot]] = {Scope.CAMPAIGN: [], Scope.CHANNEL: [], Scope.DEAL: []}
    for row in rows:
        grouped[row.scope].append(row)
    return grouped


def refresh_in_progress(root: BookingJob) -> SnapshotRun | None:
    """The campaign's refresh still under way, if one was asked for in the last few minutes."""
    return (
        SnapshotRun.objects.filter(
            job=root,
            status__in=[RunStatus.PENDING, RunStatus.RUNNING],
            created_at__gte=timezone.now() - REFRESH_TIMEOUT,
        )
        .order_by("-created_at")
        .first()
    )


def run_get(run_id: Any) -> SnapshotRun | None:
    try:
        return SnapshotRun.objects.filter(pk=int(run_id)).first()
    except (TypeError, ValueError):
        return None


# --- overview -----------------------------------------------------------------------------------------------


def _open_alerts(level: str | None = None) -> QuerySet[PacingAlert, dict[str, Any]]:
    alerts = PacingAlert.objects.filter(job=OuterRef("job_id"), resolved_at__isnull=True)
    if level:
        alerts = alerts.filter(level=level)
    return alerts.order_by().values("job").annotate(n=Count("pk")).values("n")


def pacing_overview(*, include_finished: bool = False, search: str = "") -> QuerySet[PacingSnapshot]:
    """Each campaign's latest campaign-level snapshot with its open alert counts, worst first: critical, then
    warnings, by how far off pace; campaigns whose flight ended are left out unless asked for."""
    rows = PacingSnapshot.objects.current().filter(scope=Scope.CAMPAIGN).select_related("job__campaign")
    if not include_finished:
        today = timezone.now().date()
        still_open = PacingAlert.objects.filter(job=OuterRef("job_id"), resolved_at__isnull=True)
        rows = rows.filter(Q(flight_end__gte=today) | Exists(still_open))
    if search:
        rows = rows.filter(job__campaign__name__icontains=search)
    return rows.annotate(
        open_alerts=Coalesce(Subquery(_open_alerts(), output_field=IntegerField()), Value(0)),
        critical_alerts=Coalesce(Subquery(_open_alerts(AlertLevel.CRITICAL), output_field=IntegerField()), Value(0)),
        warning_alerts=Coalesce(Subquery(_open_alerts(AlertLevel.WARNING), output_field=IntegerField()), Value(0)),
        severity=Case(
            When(alert_level=AlertLevel.CRITICAL, then=Value(0)),
            When(alert_level=AlertLevel.WARNING, then=Value(1)),
            default=Value(2),
        ),
        off_pace=Coalesce(Abs(F("deviation_pct")), Value(Decimal(0))),
    ).order_by("severity", "-critical_alerts", "-open_alerts", "-off_pace", "job__campaign__name", "pk")


def open_alert_counts() -> dict[str, int]:
    """Open alerts by level, for the navigation badge."""
    counts = dict(
        PacingAlert.objects.filter(resolved_at__isnull=True).values_list("level").annotate(n=Count("pk")).order_by()
    )
    return {"critical": counts.get(AlertLevel.CRITICAL, 0), "warning": counts.get(AlertLevel.WARNING, 0)}


def campaign_pacing_statuses(job_ids: list[Any]) -> dict[Any, PacingSnapshot]:
    """The latest campaign-level snapshot for each of these jobs (top-ups answer their campaign's), by job id."""
    keys = [k for k in (_uuid(j) for j in job_ids) if k is not None]
    if not keys:
        return {}
    roots = dict(BookingJob.objects.filter(pk__in=keys).values_list("pk", "parent_id"))
    wanted = {pk: parent or pk for pk, parent in roots.items()}
    latest = {
        row.job_id: row
        for row in PacingSnapshot.objects.current().filter(scope=Scope.CAMPAIGN, job_id__in=set(wanted.values()))
    }
    return {pk: latest[root] for pk, root in wanted.items() if root in latest}


# --- alerts, proposals, delivery ------------------------------------------------------------------------------


def alert_list(
    *,
    level: str | None = None,
    direction: str | None = None,
    state: str | None = None,
    job_id: Any = None,
    scope: str | None = None,
) -> QuerySet[PacingAlert]:
    """Alerts newest first; ``state`` is ``open`` or ``resolved``; a ``job_id`` narrows to its campaign."""
    alerts = PacingAlert.objects.select_related("job__campaign", "deal")
    if level:
        alerts = alerts.filter(level=level)
    if direction:
        alerts = alerts.filter(direction=direction)
    if state == "open":
        alerts = alerts.filter(resolved_at__isnull=True)
    elif state == "resolved":
        alerts = alerts.filter(resolved_at__isnull=False)
    if scope:
        alerts = alerts.filter(scope=scope)
    if job_id is not None:
        root = campaign_root_get(job_id)
        alerts = alerts.filter(job=root) if root else alerts.none()
    return alerts.order_by("-opened_at", "-pk")


def proposal_list(*, status: str | None = None, job_id: Any = None) -> QuerySet[ReallocationProposal]:
    proposals = ReallocationProposal.objects.select_related("job__campaign").prefetch_related(
        "moves", "budget_cuts__deal__seller"
    )
    if status:
        proposals = proposals.filter(status=status)
    if job_id is not None:
        root = campaign_root_get(job_id)
        proposals = proposals.filter(job=root) if root else proposals.none()
    return proposals.order_by("-created_at", "-pk")


def proposal_get(proposal_id: Any) -> ReallocationProposal | None:
    try:
        key = int(proposal_id)
    except (TypeError, ValueError):
        return None
    return (
        ReallocationProposal.objects.select_related("job__campaign")
        .prefetch_related("moves__top_up_job", "budget_cuts__deal__seller")
        .filter(pk=key)
        .first()
    )


def pending_proposal_count() -> int:
    return ReallocationProposal.objects.filter(status=ProposalStatus.PENDING).count()


@dataclass(frozen=True)
class DeliveryLine:
    """One deal's delivery: what was booked against what the seller reports delivered."""

    deal: BookedDeal
    delivery: DealDelivery | None

    @property
    def impressions_delivered(self) -> int:
        return self.delivery.impressions if self.delivery else 0

    @property
    def spend(self) -> Decimal:
        return self.delivery.spend if self.delivery else Decimal(0)

    @property
    def delivered_cpm(self) -> Decimal | None:
        impressions = self.impressions_delivered
        return (self.spend * 1000 / impressions).quantize(Decimal("0.01")) if impressions else None

    @property
    def delivered_pct(self) -> Decimal | None:
        if not self.deal.impressions:
            return None
        return (Decimal(self.impressions_delivered) * _HUNDRED / self.deal.impressions).quantize(Decimal("0.1"))

    def as_dict(self) -> dict[str, Any]:
        deal, state = self.deal, self.delivery
        return {
            "deal_id": deal.deal_id,
            "seller": deal.seller.name if deal.seller else deal.seller_url,
            "product_id": deal.product_id,
            "product_name": deal.product_name,
            "channel": deal.channel,
            "deal_type": deal.deal_type,
            "status": deal.status,
            "flight_start": deal.flight_start,
            "flight_end": deal.flight_end,
            "impressions_booked": deal.impressions,
            "impressions_delivered": self.impressions_delivered,
            "delivered_pct": _float(self.delivered_pct),
            "booked_cpm": float(deal.cpm),
            "booked_cost": float(deal.cost),
            "spend": float(self.spend),
            "delivered_cpm": _float(self.delivered_cpm),
            "as_of": state.as_of if state else None,
            "seller_status": state.seller_status if state else "",
            "delivery_error": state.error if state else "",
        }


def campaign_delivery(job_id: Any) -> list[DeliveryLine]:
    """Every committed deal of the campaign (top-ups included) with its latest delivery."""
    root = campaign_root_get(job_id)
    if root is None:
        return []
    deals = (
        BookedDeal.objects.filter(Q(job=root) | Q(job__parent=root), status__in=COMMITTED_STATUSES)
        .select_related("seller", "delivery")
        .order_by("channel", "booked_at", "pk")
    )
    return [DeliveryLine(deal, getattr(deal, "delivery", None)) for deal in deals]


# --- budgets (review_budgets) -------------------------------------------------------------------------------


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


def _campaign_deals() -> QuerySet[BookedDeal]:
    return BookedDeal.objects.filter(
        Q(job=OuterRef("pk")) | Q(job__parent=OuterRef("pk")), status__in=COMMITTED_STATUSES
    ).order_by()


class _BudgetFigures(TypedDict):
    booked_micros: int
    spent_micros: int


def _budget_rows() -> QuerySet[WithAnnotations[BookingJob, _BudgetFigures]]:
    """Campaigns (first jobs only: a top-up's budget is part of its campaign's), with booked and spent micros."""
    booked = _campaign_deals().annotate(one=Value(1)).values("one").annotate(total=Sum("cost_micros")).values("total")
    spent = (
        _campaign_deals()
        .annotate(one=Value(1))
        .values("one")
        .annotate(total=Sum("delivery__spend_micros"))
        .values("total")
    )
    return (
        BookingJob.objects.filter(parent__isnull=True)
        .select_related("campaign")
        .only("id", "status", "created_at", "campaign__name", "campaign__budget_micros")
        .annotate(booked_micros=Coalesce(Subquery(booked), Value(0)), spent_micros=Coalesce(Subquery(spent), Value(0)))
    )


def _campaign_budget(job: WithAnnotations[BookingJob, _BudgetFigures]) -> CampaignBudget:
    return CampaignBudget(
        job_id=str(job.pk),
        name=job.campaign.name,
        status=job.status,
        budget=job.campaign.budget,
        booked=micros_to_decimal(job.booked_micros),
        spent=micros_to_decimal(job.spent_micros),
    )


def budget_review(*, limit: int = 100) -> BudgetReview:
    """Totals over campaigns that are active or have committed deals, and the newest ``limit`` of them."""
    jobs = _budget_rows().filter(Q(status__in=ACTIVE_JOB_STATUSES) | Q(booked_micros__gt=0))
    totals = jobs.aggregate(
        budget=Sum("campaign__budget_micros"), booked=Sum("booked_micros"), spent=Sum("spent_micros"), count=Count("pk")
    )
    rows = [_campaign_budget(job) for job in jobs.order_by("-created_at", "-pk")[:limit]]
    return BudgetReview(
        budget=micros_to_decimal(totals["budget"] or 0),
        booked=micros_to_decimal(totals["booked"] or 0),
        spent=micros_to_decimal(totals["spent"] or 0),
        campaign_count=totals["count"],
        campaigns=rows,
    )


def campaign_budget_get(job_id: Any) -> CampaignBudget | None:
    root = campaign_root_get(job_id)
    if root is None:
        return None
    job = _budget_rows().filter(pk=root.pk).first()
    return None if job is None else _campaign_budget(job)


def _pct(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole * _HUNDRED).quantize(Decimal("0.01")) if whole > 0 else Decimal(0)


def deals_to_pace() -> QuerySet[BookedDeal]:
    """Booked deals pacing follows, soonest flight first, with their campaign, seller and delivery."""
    return (
        BookedDeal.objects.filter(status__in=PACED_STATUSES)
        .select_related("job__campaign", "seller", "delivery")
        .order_by("flight_start", "job__campaign__name", "pk")
    )


def deals_not_paced_yet() -> QuerySet[BookedDeal]:
    """Booked deals whose campaign has no snapshot yet (flights not started, or not read yet)."""
    paced = Q(job__latest_pacing__isnull=False) | Q(job__parent__latest_pacing__isnull=False)
    return deals_to_pace().exclude(paced)
