"""Every write to campaigns, jobs, recommendations and deals. The flow steps and all interfaces call these.

A job row is the only truth about a booking's state. Steps *claim* a job with a conditional UPDATE that also
bumps ``attempts``; the claimed ``attempts`` value is then a fencing token: a step may only advance the job
while nobody else has re-claimed it, so a presumed-dead worker that wakes up cannot overwrite newer work.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from buyer.errors import Conflict, DomainError, NotFound
from buyer.events.models import EventType
from buyer.events.services import FlowIds, event_emit
from buyer.sellers.money import decimal_to_micros, micros_to_decimal
from buyer.sellers.types import Deal
from campaigns import ledger
from campaigns.models import (
    TERMINAL_STATUSES,
    BookedDeal,
    BookingJob,
    Campaign,
    DealStatus,
    DealTransition,
    JobStage,
    JobStatus,
    PacingCurve,
    Recommendation,
    RecommendationStatus,
    channel_label,
)
from campaigns.schemas import CampaignBriefIn

logger = logging.getLogger(__name__)

MAX_ERRORS_KEPT = 200
# The actor recorded for what the buyer's own processes do (booking, delivery tracking), as against a person.
SYSTEM_ACTOR = "system"
# Who approved a line that auto_approve approved (``Recommendation.approved_by``).
AUTO_APPROVER = "auto"


class JobNotFound(NotFound):
    """No job has this id (API: 404)."""

    def __init__(self, job_id: object = ""):
        super().__init__("Job not found")
        self.job_id = job_id


class JobStateError(Conflict):
    """The job is not in a state that allows this action (API: 409)."""


class PlanReviewError(DomainError):
    """A reviewed split that cannot stand: a channel outside the plan, amounts not adding up (API: 400)."""


class IdempotencyConflict(Conflict):
    """A client reference reused for a different request (API: 409)."""


class DealNotFound(NotFound):
    def __init__(self, deal: object = ""):
        super().__init__("Deal not found")


class DuplicateDealId(Conflict):
    """The seller answered a line's booking with a deal id already recorded for another line: nothing is recorded
    (one deal is never counted twice); the line is to be checked with the seller."""


class DealTransitionError(Conflict):
    """A deal state change the state machine does not allow (API: 409)."""


class ApprovalSelectionError(DomainError):
    """An approval named ids that match no line awaiting approval, or a product id that more than one line
    shares (API: 400). The message names each."""


@dataclass(frozen=True)
class ApprovalResult:
    job: BookingJob
    approved: list[Recommendation]
    rejected: list[Recommendation]

    @property
    def total_cost(self) -> Decimal:
        return sum((r.cost for r in self.approved), Decimal(0))

    @property
    def total_impressions(self) -> int:
        return sum(r.impressions for r in self.approved)


# --- Creating and dispatching ------------------------------------------------------------------------------


@transaction.atomic
def job_create(
    *,
    name: str,
    objectives: list[str],
    budget: Decimal,
    start_date: date,
    end_date: date,
    target_audience: dict[str, Any],
    kpis: dict[str, Any],
    channels: list[str],
    formats: list[str],
    constraints: dict[str, Any],
    brief: dict[str, Any],
    auto_approve: bool,
    client_reference: str | None = None,
    pacing_curve: str = PacingCurve.EVEN,
    parent: BookingJob | None = None,
    negotiation_strategy: str = "",
) -> BookingJob:
    """Store the brief and a pending job, and start the flow once the transaction commits.

    With a ``client_reference`` (the API's Idempotency-Key) a repeated request returns the first job; the
    same reference with a different brief is refused. Concurrent requests with one reference make one job: the
    losers' campaign is undone with their savepoint, and they answer with the winner's job."""
    if client_reference:
        existing = _job_for_reference(client_reference, brief=brief, auto_approve=auto_approve)
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(
                name=name,
                objectives=objectives,
                budget_micros=decimal_to_micros(budget),
                start_date=start_date,
                end_date=end_date,
                target_audience=target_audience,
                kpis=kpis,
                channels=channels,
                formats=formats,
                constraints=constraints,
                pacing_curve=pacing_curve,
                negotiation_strategy=negotiation_strategy,
                brief=brief,
            )
            job = BookingJob.objects.create(
                campaign=campaign, auto_approve=auto_approve, client_reference=client_reference, parent=parent
            )
    except IntegrityError:
        if not client_reference:
            raise
        # A concurrent request with the same reference committed first (the unique index waited for it).
        winner = _job_for_reference(client_reference, brief=brief, auto_approve=auto_approve)
        if winner is None:
            raise
        return winner
    payload: dict[str, Any] = {"name": name, "budget": budget, "channels": channels, "auto_approve": auto_approve}
    if parent is not None:
        payload["top_up_of"] = str(parent.pk)
    event_emit(EventType.CAMPAIGN_CREATED, flow_id=str(job.id), campaign_id=str(campaign.id), payload=payload)
    job_dispatch(job)
    return job


def _job_for_reference(reference: str, *, brief: dict[str, Any], auto_approve: bool) -> BookingJob | None:
    existing = BookingJob.objects.select_related("campaign").filter(client_reference=reference).first()
    if existing is not None and (existing.campaign.brief != brief or existing.auto_approve != auto_approve):
        raise IdempotencyConflict("This Idempotency-Key was already used for a different booking request")
    return existing


def job_create_from_brief(
    brief: CampaignBriefIn, *, auto_approve: bool, client_reference: str | None = None
) -> BookingJob:
    """``job_create`` for a validated brief: the one mapping shared by the API, the pages and the MCP tool."""
    return job_create(
        name=brief.name,
        objectives=brief.objectives,
        budget=brief.budget,
        start_date=brief.start_date,
        end_date=brief.end_date,
        target_audience=brief.target_audience,
        kpis=brief.kpis,
        channels=[str(c) for c in brief.channels or []],
        formats=[f.lower() for f in brief.formats or []],
        constraints=brief.constraints,
        brief=brief.model_dump(mode="json"),
        auto_approve=auto_approve,
        client_reference=client_reference,
        pacing_curve=brief.pacing or PacingCurve.EVEN,
        negotiation_strategy=brief.negotiation or "",
    )


TOP_UP_NAME_SUFFIX = " · top-up "


def job_create_top_up(*, parent: BookingJob, channel: str, amount: Decimal, reason: str) -> BookingJob:
    """A booking job that spends ``amount`` more on one ``channel`` of ``parent``'s campaign, for the rest of
    its flight, through the normal flow: research at the sellers, real quotes, and a person's approval (never
    auto-approved). Its deals are paced as part of the parent's campaign."""
    root = parent.parent or parent
    source = root.campaign
    if amount <= 0:
        raise ValueError("a top-up needs a positive amount")
    today = timezone.now().date()
    if source.end_date < today:
        raise JobStateError("The campaign's flight has ended; there is nothing left to top up")
    start = max(source.start_date, today)
    label = channel_label(channel)
    name = (source.name[: 100 - len(TOP_UP_NAME_SUFFIX) - len(label)] + TOP_UP_NAME_SUFFIX + label)[:100]
    brief = {
        **(source.brief or {}),
        "name": name,
        "budget": str(amount),
        "channels": [channel],
        "start_date": start.isoformat(),
        "end_date": source.end_date.isoformat(),
        "top_up_of": str(root.pk),
        "top_up_reason": reason,
    }
    return job_create(
        name=name,
        objectives=list(source.objectives or []),
        budget=amount,
        start_date=start,
        end_date=source.end_date,
        target_audience=source.target_audience or {},
        kpis=source.kpis or {},
        channels=[channel],
        formats=list(source.formats or []),
        constraints=source.constraints or {},
        brief=brief,
        auto_approve=False,
        pacing_curve=source.pacing_curve,
        parent=root,
        negotiation_strategy=source.negotiation_strategy,
    )


def job_dispatch(job: BookingJob) -> None:
    """Send the task for the job's current stage once the surrounding transaction commits."""
    from campaigns import tasks

    task = {
        JobStage.PLAN: tasks.job_plan,
        JobStage.RESEARCH: tasks.job_research,
        JobStage.NEGOTIATE: tasks.job_negotiate,
        JobStage.BOOK: tasks.job_book,
    }.get(JobStage(job.stage))
    if task is not None:
        job_id = str(job.id)
        transaction.on_commit(lambda: task.delay(job_id))


# --- Claiming and advancing (used by the flow steps) -------------------------------------------------------


def job_claim(job_id: str, *, stage: JobStage) -> BookingJob | None:
    """Claim ``stage`` of a job for this worker, or None when it is not due (done, leased, cancelled)."""
    now = timezone.now()
    job = BookingJob(pk=job_id, stage=stage)
    claimed = job_transition(
        job,
        status=JobStatus.RUNNING,
        stage=stage,
        # A booking step is claimed even when a cancel is asked for: it reads back what a killed attempt may
        # have booked, then ends the job cancelled. Other steps stop at a cancel.
        expect=Q(stage=stage, status__in=[JobStatus.PENDING, JobStatus.RUNNING])
        & (Q(cancel_requested=False) | Q(stage=JobStage.BOOK))
        & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)),
        dispatch=False,
        attempts=F("attempts") + 1,
        lease_expires_at=now + timedelta(seconds=settings.JOB_STEP_LEASE_SECONDS),
    )
    if not claimed:
        return None
    job = BookingJob.objects.select_related("campaign").get(pk=job_id)
    if job.attempts > settings.JOB_MAX_ATTEMPTS + (BOOK_RECOVERY_ATTEMPTS if stage == JobStage.BOOK else 0):
        job_fail(job, f"Step '{stage}' did not finish after {job.attempts - 1} attempts.")
        return None
    return job


# A booking step that exhausted its attempts gets this many more, to read back what the seller booked (and
# book nothing new) before the job ends: a deal made by a killed attempt is recorded, never lost.
BOOK_RECOVERY_ATTEMPTS = 2


def job_in_recovery(job: BookingJob) -> bool:
    """A booking step past its attempts: it only reads back deals the seller already made, then finishes."""
    return job.stage == JobStage.BOOK and job.attempts > settings.JOB_MAX_ATTEMPTS


def claimed(job: BookingJob) -> Q:
    """The fence of a claimed step: same stage, running, not re-claimed since (``attempts`` is the token)."""
    return Q(stage=job.stage, status=JobStatus.RUNNING, attempts=job.attempts)


AWAITING = Q(status=JobStatus.AWAITING_APPROVAL, stage=JobStage.APPROVAL)


def _fenced(job: BookingJob):
    return BookingJob.objects.filter(claimed(job), pk=job.pk)


def job_transition(
    job: BookingJob,
    *,
    status: JobStatus,
    stage: JobStage,
    expect: Q,
    event: EventType | None = None,
    payload: dict[str, Any] | None = None,
    dispatch: bool = True,
    **fields: Any,
) -> bool:
    """The one writer of a job's ``status`` and ``stage``: every change of either passes here.

    The update is conditional on ``expect`` (what the caller believes the job is: claimed by it, awaiting
    approval…) and on the job not having finished, so a finished job never changes again and ``finished_at``
    is set exactly once. A new stage starts with no lease and no attempts. Ending a job releases its approved
    lines that have no deal (``booking_failed``, with why), so no finished job holds a line still ``approved``.
    On success the event is emitted and the next stage's task dispatched, in the same transaction; returns
    whether the job moved. A claim (``dispatch=False``) runs the stage itself: it sends no task."""
    now = timezone.now()
    values: dict[str, Any] = {"status": status, "stage": stage, "updated_at": now, "lease_expires_at": None}
    if stage != job.stage:
        values["attempts"] = 0
    terminal = status in TERMINAL_STATUSES
    if terminal:
        values |= {"finished_at": now, "progress": 1.0}
    values |= fields
    with transaction.atomic():
        rows = BookingJob.objects.filter(expect, pk=job.pk).exclude(status__in=TERMINAL_STATUSES)
        if not rows.update(**values):
            logger.info("job %s: not moved to %s/%s (state changed meanwhile)", job.pk, status, stage)
            return False
        for key, value in values.items():
            if not hasattr(value, "resolve_expression"):
                setattr(job, key, value)
        if terminal:
            why = values.get("failure_reason") or f"the job {status}"
            Recommendation.objects.filter(
                job_id=job.pk, status=RecommendationStatus.APPROVED, deal__isnull=True
            ).update(status=RecommendationStatus.BOOKING_FAILED, status_reason=f"not booked: {why}"[:500])
            ledger.release_job(job, reason=f"not booked: {why}")
            ledger.give_back_unspent(job)  # a top-up: what it did not commit of a reallocation's money
            Recommendation.objects.filter(job_id=job.pk, status=RecommendationStatus.PENDING_APPROVAL).update(
                status=RecommendationStatus.REJECTED, status_reason=f"not decided: {why}"[:500]
            )
        if event is not None:
            event_emit(event, flow_id=str(job.pk), campaign_id=str(job.campaign_id), payload=payload or {})
        if dispatch:
            job_dispatch(job)
    return True


def job_agents_set(job: BookingJob, records: dict[str, Any]) -> dict[str, Any]:
    """Set keys of ``BookingJob.agents`` (who decided what) on the row as it is now, under its lock: a step, a
    page asking the reporting agent and the execution check never overwrite each other's keys."""
    with transaction.atomic():
        current = BookingJob.objects.select_for_update(of=("self",)).filter(pk=job.pk).values_list("agents", flat=True)
        merged = {**(current.first() or {}), **records}
        BookingJob.objects.filter(pk=job.pk).update(agents=merged)
    job.agents = merged
    return merged


def job_progress(job: BookingJob, progress: float) -> None:
    _fenced(job).update(progress=progress, updated_at=timezone.now())


def job_add_errors(job: BookingJob, errors: Iterable[str]) -> None:
    """Append step errors to the job (kept bounded); they are shown in ``errors`` of the API."""
    new = [e for e in errors if e]
    if not new:
        return
    with transaction.atomic():
        locked = BookingJob.objects.select_for_update().get(pk=job.pk)
        merged = (list(locked.errors) + new)[-MAX_ERRORS_KEPT:]
        BookingJob.objects.filter(pk=job.pk).update(errors=merged, updated_at=timezone.now())
    job.errors = merged


def job_advance(
    job: BookingJob,
    *,
    stage: JobStage,
    status: JobStatus,
    progress: float,
    event: EventType | None = None,
    payload: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move a claimed job to its next stage (fenced by the claim); see ``job_transition``."""
    return job_transition(
        job, status=status, stage=stage, expect=claimed(job), event=event, payload=payload, progress=progress, **fields
    )


def job_fail(job: BookingJob, reason: str, *, expect: Q | None = None) -> bool:
    """End an unfinished job as failed with a reason (recorded in ``errors`` and a ``job.failed`` event)."""
    with transaction.atomic():
        failed = job_transition(
            job,
            status=JobStatus.FAILED,
            stage=JobStage.DONE,
            expect=expect or Q(),
            event=EventType.JOB_FAILED,
            payload={"reason": reason},
            failure_reason=reason,
        )
        if failed:
            job_add_errors(job, [reason])
    return failed


# --- Approvals ----------------------------------------------------------------------------------------------


def _job_for_update(job_id: str) -> BookingJob:
    """The job, locked; ``JobNotFound`` for an unknown or malformed id."""
    try:
        return BookingJob.objects.select_for_update().select_related("campaign").get(pk=job_id)
    except (BookingJob.DoesNotExist, ValidationError, ValueError):
        raise JobNotFound(job_id) from None


def _lock_awaiting(job_id: str) -> BookingJob:
    job = _job_for_update(job_id)
    if job.status != JobStatus.AWAITING_APPROVAL or job.stage != JobStage.APPROVAL:
        raise JobStateError(f"Job is {job.status}; only a job awaiting approval can be approved or rejected")
    return job


@transaction.atomic
def job_approve(
    *,
    job_id: str,
    product_ids: Iterable[str] = (),
    recommendation_ids: Iterable[str] = (),
    actor: str = "",
    keep_rest: bool = False,
) -> ApprovalResult:
    """Approve the lines named by seller product id or by our recommendation id, reject the rest (or, with
    ``keep_rest``, leave them awaiting a decision until the approval expires: the job comes back to approval
    once the approved lines are booked), and start booking. The two are separate namespaces: a product id never
    matches a recommendation's primary key. A product id that several lines share (two sellers may use the
    same one) must be given as recommendation ids; anything that matches no line awaiting approval is refused,
    naming it, and nothing changes."""
    job = _lock_awaiting(job_id)
    lines = list(job.recommendations.filter(status=RecommendationStatus.PENDING_APPROVAL).order_by("priority"))
    by_product: dict[str, list[Recommendation]] = defaultdict(list)
    for line in lines:
        by_product[line.product_id].append(line)
    by_pk = {str(line.pk): line for line in lines}
    chosen: dict[int, Recommendation] = {}
    problems: list[str] = []
    unknown_products = [pid for pid in dict.fromkeys(product_ids) if pid not in by_product]
    unknown_lines = [rid for rid in dict.fromkeys(recommendation_ids) if rid not in by_pk]
    if unknown_products:
        problems.append(f"no line awaiting approval has product id {_listed(unknown_products)}")
    if unknown_lines:
        problems.append(f"no line awaiting approval has recommendation id {_listed(unknown_lines)}")
    for pid in dict.fromkeys(product_ids):
        matches = by_product.get(pid, [])
        if len(matches) > 1:
            which = ", ".join(f"{m.pk} ({m.seller_name})" for m in matches)
            problems.append(
                f"product id {pid!r} matches {len(matches)} lines ({which}); approve them by recommendation_ids"
            )
        elif matches:
            chosen[matches[0].pk] = matches[0]
    for rid in dict.fromkeys(recommendation_ids):
        if rid in by_pk:
            chosen[by_pk[rid].pk] = by_pk[rid]
    if problems:
        raise ApprovalSelectionError("Nothing was approved: " + "; ".join(problems) + ".")
    if not chosen:
        raise ApprovalSelectionError("Nothing was approved: name at least one line.")
    approved = [r for r in lines if r.pk in chosen]
    rejected = [] if keep_rest else [r for r in lines if r.pk not in chosen]
    return _apply_approval(job, approved, rejected, actor=actor)


def _listed(ids: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


@transaction.atomic
def job_approve_all(*, job_id: str, actor: str = "") -> ApprovalResult:
    job = _lock_awaiting(job_id)
    lines = list(job.recommendations.filter(status=RecommendationStatus.PENDING_APPROVAL).order_by("priority"))
    return _apply_approval(job, lines, [], actor=actor)


@transaction.atomic
def job_reject_all(*, job_id: str, actor: str = "", reason: str = "") -> ApprovalResult:
    job = _lock_awaiting(job_id)
    lines = list(job.recommendations.filter(status=RecommendationStatus.PENDING_APPROVAL))
    return _apply_approval(job, [], lines, actor=actor, reason=reason)


def _apply_approval(
    job: BookingJob,
    approved: list[Recommendation],
    rejected: list[Recommendation],
    *,
    actor: str,
    reason: str = "",
) -> ApprovalResult:
    total = sum((r.cost_micros for r in approved), 0)
    if total > job.campaign.budget_micros:
        # Lines are selected within budget, so this means tampering or a bug: refuse to move money.
        raise JobStateError("Approved lines exceed the brief budget")
    # The campaign's ledger (shared with its top-ups) holds the approved money, or refuses it.
    ledger.reserve(job, approved, reason=f"approved by {actor or 'a person'}")
    Recommendation.objects.filter(pk__in=[r.pk for r in approved]).update(
        status=RecommendationStatus.APPROVED, approved_by=(actor or "a person")[:150], approved_at=timezone.now()
    )
    Recommendation.objects.filter(pk__in=[r.pk for r in rejected]).update(
        status=RecommendationStatus.REJECTED, status_reason=reason or "not approved"
    )
    for r in approved:
        r.status = RecommendationStatus.APPROVED
    for r in rejected:
        r.status = RecommendationStatus.REJECTED
    flow: FlowIds = {"flow_id": str(job.pk), "campaign_id": str(job.campaign_id)}
    if approved:
        event_emit(
            EventType.APPROVAL_GRANTED,
            **flow,
            payload={
                "product_ids": [r.product_id for r in approved],
                "total_cost": micros_to_decimal(total),
                "actor": actor,
                "auto_approve": job.auto_approve,
            },
        )
    if rejected:
        event_emit(
            EventType.APPROVAL_REJECTED,
            **flow,
            payload={"product_ids": [r.product_id for r in rejected], "actor": actor},
        )
    if approved:
        moved = job_transition(job, status=JobStatus.RUNNING, stage=JobStage.BOOK, expect=AWAITING, progress=0.9)
    else:
        reason = reason or "All recommendations were rejected."
        moved = job_transition(
            job,
            status=JobStatus.CANCELLED,
            stage=JobStage.DONE,
            expect=AWAITING,
            event=EventType.JOB_CANCELLED,
            payload={"reason": reason},
            failure_reason=reason,
        )
    if not moved:  # the row is locked by the caller, so this is a bug: refuse rather than half-approve
        raise JobStateError("The job changed while it was being approved; nothing was approved")
    return ApprovalResult(job=job, approved=approved, rejected=rejected)


PLAN_REVIEWING = Q(status=JobStatus.AWAITING_PLAN_REVIEW, stage=JobStage.PLAN_REVIEW)


@transaction.atomic
def job_plan_review(*, job_id: str, amounts: dict[str, Decimal] | None, actor: str) -> BookingJob:
    """A person's review of the budget split of a job stopped for it (the brief's ``plan_review``): the split
    as planned (``amounts`` None) or as adjusted — channels of the plan only, amounts in cents adding up to the
    budget exactly, at least one funded — and then research starts."""
    job = _job_for_update(job_id)
    if job.status != JobStatus.AWAITING_PLAN_REVIEW:
        raise JobStateError(f"Job is {job.status}: only a job awaiting plan review can have its plan reviewed")
    planned = dict(job.budget_allocations or {})
    allocations = planned
    if amounts is not None:
        unknown = sorted(set(amounts) - set(planned))
        if unknown:
            raise PlanReviewError(f"Channels {unknown} are not in the plan; the plan has {sorted(planned)}")
        given = {channel: Decimal(str(amounts.get(channel, 0))) for channel in planned}
        odd = [c for c, v in given.items() if not v.is_finite() or abs(v) > 10**10 or v != v.quantize(Decimal("0.01"))]
        if odd:
            raise PlanReviewError(f"Amounts must be dollars and cents; {', '.join(sorted(odd))} is not")
        cents = {channel: value.quantize(Decimal("0.01")) for channel, value in given.items()}
        if any(v < 0 for v in cents.values()) or not any(v > 0 for v in cents.values()):
            raise PlanReviewError("Amounts must not be negative, and at least one channel must be funded")
        total = sum(cents.values(), Decimal(0))
        if total != job.campaign.budget:
            raise PlanReviewError(
                f"The amounts add up to ${total:,.2f}; they must add up to the budget, ${job.campaign.budget:,.2f}"
            )
        allocations = {
            channel: {
                "channel": channel,
                "budget": str(amount),
                "percentage": str((amount / job.campaign.budget * 100).quantize(Decimal("0.01"))),
                "rationale": planned[channel]["rationale"]
                if amount == Decimal(str(planned[channel]["budget"]))
                else f"Set to ${amount:,.2f} by {actor or 'a person'} in plan review (planned "
                f"${Decimal(str(planned[channel]['budget'])):,.2f}: {planned[channel]['rationale']})",
            }
            for channel, amount in cents.items()
            if amount > 0
        }
    job_transition(
        job,
        status=JobStatus.RUNNING,
        stage=JobStage.RESEARCH,
        expect=PLAN_REVIEWING,
        event=EventType.PLAN_REVIEWED,
        payload={"actor": actor, "adjusted": allocations != planned, "allocations": allocations},
        budget_allocations=allocations,
        approval_expires_at=None,
    )
    job.refresh_from_db()
    return job


@transaction.atomic
def job_cancel(*, job_id: str, reason: str = "Cancelled by user.") -> BookingJob:
    """Cancel a job that has not finished. A booking in progress stops before its next line (the step itself
    then ends the job cancelled, with what it had booked)."""
    job = _job_for_update(job_id)
    if job.is_terminal:
        raise JobStateError(f"Job is already {job.status}")
    now = timezone.now()
    awaiting_seller = job.stage == JobStage.AWAIT_SELLER
    if awaiting_seller or (
        job.stage == JobStage.BOOK and (job.attempts > 0 or (job.lease_expires_at and job.lease_expires_at > now))
    ):
        # A booking step has run: only it can tell what the seller booked. It stops before its next line (or,
        # if its worker died, the next claim reads back what was booked) and ends the job cancelled. Orders a
        # seller is reviewing (AWAIT_SELLER) cannot be withdrawn before it decides: they stay followed, and the
        # job ends cancelled once the last is decided, with what was booked.
        BookingJob.objects.filter(pk=job.pk).update(cancel_requested=True, failure_reason=reason, updated_at=now)
        job.cancel_requested = True
        return job
    job_transition(
        job,
        status=JobStatus.CANCELLED,
        stage=JobStage.DONE,
        expect=Q(),
        event=EventType.JOB_CANCELLED,
        payload={"reason": reason},
        cancel_requested=True,
        failure_reason=reason,
    )
    job.refresh_from_db()
    return job


# --- Deals --------------------------------------------------------------------------------------------------


def deal_record(*, recommendation: Recommendation, deal: Deal, flag: str = "") -> BookedDeal:
    """Store a seller-issued deal for a line, once, and commit its cost in the campaign's ledger; a deal the
    budget cannot hold is stored held instead (see ``_deal_record``)."""
    with transaction.atomic():  # the commit and the deal together: a deal refused below commits nothing
        if not flag:
            cost = decimal_to_micros(deal.final_cpm * deal.impressions / 1000)
            try:
                with transaction.atomic():
                    ledger.commit(recommendation, cost_micros=cost, reason=f"deal {deal.deal_id} booked")
            except ledger.LimitExceeded as exc:
                flag = f"the seller booked deal {deal.deal_id} beyond a platform limit ({exc}): held"
            except ledger.BudgetExceeded as exc:
                flag = f"the seller booked deal {deal.deal_id} for more than the campaign's budget holds ({exc}): held"
        return _deal_record(recommendation=recommendation, deal=deal, flag=flag)


def _deal_record(*, recommendation: Recommendation, deal: Deal, flag: str = "") -> BookedDeal:
    """Store a seller-issued deal for a line, once. A replay for the same line returns the stored deal.

    With a ``flag`` (the seller's read-back differs from the approved line) the deal is stored but held in
    ``booking``, its line ``flagged`` and a ``deal.price_mismatch`` event emitted: it is not counted as booked
    until a person accepts it (``deal_flag_resolve``)."""
    cost = decimal_to_micros(deal.final_cpm * deal.impressions / 1000)
    with transaction.atomic():
        try:
            with transaction.atomic():  # a replay for the same line meets the unique line: the stored deal
                booked = BookedDeal.objects.create(
                    recommendation=recommendation,
                    job_id=recommendation.job_id,
                    seller_id=recommendation.seller_id,
                    seller_url=recommendation.seller_url,
                    deal_id=deal.deal_id,
                    quote_id=deal.quote_id,
                    product_id=deal.product_id or recommendation.product_id,
                    product_name=deal.product_name or recommendation.product_name,
                    channel=recommendation.channel,
                    deal_type=deal.deal_type,
                    impressions=deal.impressions,
                    cpm_micros=decimal_to_micros(deal.final_cpm),
                    cost_micros=cost,
                    buyer_tier=deal.buyer_tier,
                    flight_start=deal.flight_start,
                    flight_end=deal.flight_end,
                    status=DealStatus.BOOKING if flag else DealStatus.BOOKED,
                    seller_status=deal.status,
                    flag=flag[:500],
                    pricing=deal.raw.get("pricing", {}),
                    terms=deal.raw.get("terms", {}),
                    activation_instructions=deal.activation_instructions,
                    openrtb_params=deal.openrtb_params,
                    expires_at=deal.expires_at,
                )
        except IntegrityError:
            existing = BookedDeal.objects.filter(recommendation=recommendation).first()
            if existing is not None:
                return existing  # a replay for this line
            other = (
                BookedDeal.objects.filter(seller_url=recommendation.seller_url, deal_id=deal.deal_id)
                .values_list("recommendation__product_id", "job_id")
                .first()
            )
            where = f" (product {other[0]} of job {other[1]})" if other else ""
            raise DuplicateDealId(
                f"the seller answered with deal {deal.deal_id}, already recorded for another line{where}: not "
                "recorded twice; check with the seller whether this line was booked"
            ) from None
        payload = {
            "product_id": booked.product_id,
            "seller": recommendation.seller_name,
            "quote_id": deal.quote_id,
            "cpm": deal.final_cpm,
            "impressions": deal.impressions,
            "cost": micros_to_decimal(cost),
        }
        history = _history_before_issue(booked, recommendation)
        if flag:
            history.append(
                DealTransition(
                    deal=booked,
                    from_status=DealStatus.ACCEPTED,
                    to_status=DealStatus.BOOKING,
                    reason=f"booking requested at the seller; held: {flag}"[:2000],
                    actor=SYSTEM_ACTOR,
                )
            )
            DealTransition.objects.bulk_create(history)
            Recommendation.objects.filter(pk=recommendation.pk).update(
                status=RecommendationStatus.FLAGGED, status_reason=flag[:500]
            )
            approved = {
                "cpm": recommendation.cpm,
                "impressions": recommendation.impressions,
                "cost": recommendation.cost,
            }
            event_emit(
                EventType.DEAL_PRICE_MISMATCH,
                flow_id=str(recommendation.job_id),
                campaign_id=str(recommendation.job.campaign_id),
                deal_id=deal.deal_id,
                payload={**payload, "approved": approved, "reason": flag},
            )
        else:
            DealTransition.objects.bulk_create(
                [
                    *history,
                    DealTransition(
                        deal=booked,
                        from_status=DealStatus.ACCEPTED,
                        to_status=DealStatus.BOOKING,
                        reason=f"booking requested at the seller with quote {recommendation.quote_id}"[:2000],
                        actor=SYSTEM_ACTOR,
                    ),
                    DealTransition(
                        deal=booked,
                        from_status=DealStatus.BOOKING,
                        to_status=DealStatus.BOOKED,
                        reason="seller issued the deal",
                        actor=SYSTEM_ACTOR,
                    ),
                ]
            )
            Recommendation.objects.filter(pk=recommendation.pk).update(
                status=RecommendationStatus.BOOKED, status_reason=""
            )
            event_emit(EventType.DEAL_BOOKED, flow_id=str(recommendation.job_id), deal_id=deal.deal_id, payload=payload)
    return booked


def _history_before_issue(deal: BookedDeal, line: Recommendation) -> list[DealTransition]:
    """The states a deal passes through before its seller issues it, for its history when it is issued (the
    caller writes them with the issue itself, in one statement), each at the moment it happened: *quoted* (the
    seller's quote), *negotiating* (the first message of a negotiation, if there was one), *accepted* (approved,
    by a person or auto_approve, at the line's price)."""
    quoted = micros_to_decimal(line.quoted_cpm_micros or line.cpm_micros)
    rows = [
        DealTransition(
            deal=deal,
            from_status="",
            to_status=DealStatus.QUOTED,
            reason=(
                f"quote {line.quote_id} from {line.seller_name}: {line.impressions:,} impressions at ${quoted:,.2f} CPM"
            )[:2000],
            actor=SYSTEM_ACTOR,
            at=line.created_at,
        )
    ]
    state = DealStatus.QUOTED
    first_round = line.negotiation_rounds.order_by("round_number").first()
    if first_round is not None:
        terms = line.negotiation_terms or {}
        rows.append(
            DealTransition(
                deal=deal,
                from_status=state,
                to_status=DealStatus.NEGOTIATING,
                reason=f"negotiation started ({terms.get('strategy', 'strategy')})",
                actor=SYSTEM_ACTOR,
                at=first_round.at,
            )
        )
        state = DealStatus.NEGOTIATING
    price = f"approved at ${line.cpm:,.2f} CPM for ${line.cost:,.2f}"
    if line.negotiation_status:
        price += f" ({line.get_negotiation_status_display().lower()}: {line.negotiation_outcome or 'no outcome'})"
    approver = line.approved_by or "a person"
    rows.append(
        DealTransition(
            deal=deal,
            from_status=state,
            to_status=DealStatus.ACCEPTED,
            reason=f"{price}, by {'auto_approve' if approver == AUTO_APPROVER else approver}"[:2000],
            actor=approver,
            at=line.approved_at or timezone.now(),
        )
    )
    return rows


def _deal_locked(deal_pk: int, allowed: str, refusal: str) -> BookedDeal:
    """The deal, row-locked, with its line and campaign; ``DealTransitionError`` unless its ``allowed``
    property (``held``, ``awaiting_cancellation``) is true."""
    try:
        deal = (
            BookedDeal.objects.select_for_update(of=("self",))
            .select_related("recommendation", "job__campaign")
            .get(pk=deal_pk)
        )
    except BookedDeal.DoesNotExist:
        raise DealNotFound(deal_pk) from None
    if not getattr(deal, allowed):
        raise DealTransitionError(f"Deal {deal.deal_id} is {deal.state_label}: {refusal}")
    return deal


def deal_flag_resolve(*, deal_pk: int, accept: bool, actor: str, note: str = "") -> BookedDeal:
    """A person's decision on a deal held because the seller booked other terms than approved: accepting counts
    it as booked (if the campaign's budget and the platform limits still hold it); refusing marks it failed, to
    be cancelled with the seller (the seller protocol has no cancellation call). A refused deal keeps the money
    its line holds until the seller reports it cancelled or a person confirms it was (``deal_cancelled``): the
    seller may still deliver and bill it meanwhile."""
    with transaction.atomic():
        deal = _deal_locked(deal_pk, "held", "only a deal held for a decision can be accepted or refused")
        line = deal.recommendation
        if accept:
            # The line holds its approved cost; the deal needs its own, within the campaign's budget.
            try:
                ledger.reserve(deal.job, [_costed(line, deal.cost_micros)], reason=f"held deal {deal.deal_id} accepted")
            except ledger.BudgetExceeded as exc:
                raise DealTransitionError(
                    f"Deal {deal.deal_id} (${deal.cost:,.2f}) cannot be accepted: {exc}; refuse it and have the "
                    "seller cancel it"
                ) from None
            ledger.commit(line, cost_micros=deal.cost_micros, reason=f"held deal {deal.deal_id} accepted")
            to_status, reason = DealStatus.BOOKED, "accepted as the seller booked it"
            line_status = RecommendationStatus.BOOKED
        else:
            to_status = DealStatus.FAILED
            reason = f"refused: the seller is to cancel deal {deal.deal_id}; its approved cost stays held until it does"
            line_status = RecommendationStatus.BOOKING_FAILED
            BookedDeal.objects.filter(pk=deal.pk).update(refused_by=(actor or "a person")[:150])
            deal.refused_by = (actor or "a person")[:150]
        if note:
            reason += f"; {note}"
        deal_transition(deal=deal, to_status=to_status, reason=reason[:500], actor=actor)
        Recommendation.objects.filter(pk=line.pk).update(status=line_status, status_reason=reason[:500])
        event_emit(
            EventType.DEAL_STATUS_CHANGED,
            flow_id=str(deal.job_id),
            campaign_id=str(deal.job.campaign_id),
            deal_id=deal.deal_id,
            payload={"from": DealStatus.BOOKING, "to": to_status, "reason": reason, "actor": actor},
        )
    return deal


def deal_cancelled(*, deal_pk: int, actor: str, reason: str) -> BookedDeal:
    """A refused deal is cancelled at the seller (the seller reported it, or a person confirms it): the money its
    line held is released — all of it, or what it did not deliver (the seller bills what it delivered)."""
    with transaction.atomic():
        deal = _deal_locked(
            deal_pk, "awaiting_cancellation", "only a refused deal awaits its cancellation at the seller"
        )
        held = ledger.held_micros(deal.recommendation)
        delivery = getattr(deal, "delivery", None)
        delivered = min(held, max(0, delivery.spend_micros)) if delivery is not None else 0
        note = f"refused deal {deal.deal_id} cancelled at the seller"
        if delivered:
            ledger.commit(deal.recommendation, cost_micros=delivered, reason=f"{note}, after delivering")
        else:
            ledger.release(deal.recommendation, reason=note)
        why = f"{reason}; ${micros_to_decimal(held - delivered):,.2f} released"
        if delivered:
            why += f" (${micros_to_decimal(delivered):,.2f} delivered stays committed)"
        why = why[:500]
        deal_transition(deal=deal, to_status=DealStatus.CANCELLED, reason=why, actor=actor)
        event_emit(
            EventType.DEAL_STATUS_CHANGED,
            flow_id=str(deal.job_id),
            campaign_id=str(deal.job.campaign_id),
            deal_id=deal.deal_id,
            payload={"from": DealStatus.FAILED, "to": DealStatus.CANCELLED, "reason": why, "actor": actor},
        )
    return deal


DEAL_DECISIONS = ("accept", "refuse", "cancelled")


def deal_decide(deal_pk: int, decision: str, *, actor: str, note: str = "") -> BookedDeal:
    """A person's word on a deal, as the page and the API take it: ``accept`` or ``refuse`` a held deal, or
    ``cancelled``: a refused deal was cancelled at the seller."""
    if decision == "cancelled":
        reason = f"cancelled at the seller, as {actor or 'a person'} confirms" + (f"; {note}" if note else "")
        return deal_cancelled(deal_pk=deal_pk, actor=actor, reason=reason)
    if decision not in DEAL_DECISIONS:
        raise DealTransitionError(f"Unknown decision {decision!r}: accept, refuse or cancelled")
    return deal_flag_resolve(deal_pk=deal_pk, accept=decision == "accept", actor=actor, note=note)


# Which deal states may follow which; terminal states have no successors. A failed deal (one a person refused)
# can still be cancelled at the seller.
DEAL_TRANSITIONS: dict[str, frozenset[str]] = {
    DealStatus.QUOTED: frozenset(
        {DealStatus.NEGOTIATING, DealStatus.ACCEPTED, DealStatus.BOOKING, DealStatus.EXPIRED, DealStatus.CANCELLED}
    ),
    DealStatus.NEGOTIATING: frozenset(
        {DealStatus.ACCEPTED, DealStatus.FAILED, DealStatus.CANCELLED, DealStatus.EXPIRED}
    ),
    DealStatus.ACCEPTED: frozenset({DealStatus.BOOKING, DealStatus.CANCELLED, DealStatus.EXPIRED}),
    DealStatus.BOOKING: frozenset({DealStatus.BOOKED, DealStatus.FAILED}),
    DealStatus.BOOKED: frozenset(
        {
            DealStatus.DELIVERING,
            DealStatus.COMPLETED,
            DealStatus.CANCELLED,
            DealStatus.EXPIRED,
            DealStatus.MAKEGOOD_PENDING,
            DealStatus.PARTIALLY_CANCELED,
        }
    ),
    DealStatus.DELIVERING: frozenset(
        {DealStatus.COMPLETED, DealStatus.MAKEGOOD_PENDING, DealStatus.PARTIALLY_CANCELED, DealStatus.CANCELLED}
    ),
    DealStatus.MAKEGOOD_PENDING: frozenset({DealStatus.DELIVERING, DealStatus.COMPLETED, DealStatus.CANCELLED}),
    DealStatus.PARTIALLY_CANCELED: frozenset({DealStatus.DELIVERING, DealStatus.COMPLETED}),
    DealStatus.COMPLETED: frozenset(),
    DealStatus.FAILED: frozenset({DealStatus.CANCELLED}),
    DealStatus.CANCELLED: frozenset(),
    DealStatus.EXPIRED: frozenset(),
}


def deal_transition(
    *, deal: BookedDeal, to_status: DealStatus, reason: str, actor: str = SYSTEM_ACTOR, seller_status: str | None = None
) -> BookedDeal:
    """Move a deal to ``to_status`` if the state machine allows it, recording the transition, who and why.

    ``seller_status`` (the seller's own word for the deal, when it reported one) is stored with the move."""
    with transaction.atomic():
        current = BookedDeal.objects.select_for_update().get(pk=deal.pk)
        if to_status not in DEAL_TRANSITIONS[DealStatus(current.status)]:
            raise DealTransitionError(f"A {current.status} deal cannot become {to_status}")
        values: dict[str, Any] = {"status": to_status}
        if seller_status is not None:
            values["seller_status"] = seller_status[:24]
        BookedDeal.objects.filter(pk=deal.pk, status=current.status).update(**values)
        DealTransition.objects.create(
            deal=current, from_status=current.status, to_status=to_status, reason=reason, actor=actor
        )
    deal.status = to_status
    return deal


@dataclass(frozen=True)
class DealMove:
    """One state change to make: ``deal`` from ``from_status`` to ``to_status``, and why."""

    deal: BookedDeal
    from_status: str
    to_status: str
    reason: str
    seller_status: str | None = None


def deal_transition_many(moves: Iterable[DealMove], *, actor: str = SYSTEM_ACTOR) -> list[DealMove]:
    """``deal_transition`` for many deals at once (delivery moves thousands in one pass): each move is made
    only if the state machine allows it and the deal is still in ``from_status``; returns the moves made."""
    groups: dict[tuple[str, str, str | None], list[DealMove]] = defaultdict(list)
    for move in moves:
        if move.to_status in DEAL_TRANSITIONS[DealStatus(move.from_status)]:
            groups[(move.from_status, move.to_status, move.seller_status)].append(move)
    made: list[DealMove] = []
    with transaction.atomic():
        for (from_status, to_status, seller_status), group in groups.items():
            # NO KEY UPDATE: a status is not a key, so snapshot runs referencing these deals need not wait.
            locked = set(
                BookedDeal.objects.select_for_update(no_key=True)
                .filter(pk__in=[m.deal.pk for m in group], status=from_status)
                .values_list("pk", flat=True)
            )
            values: dict[str, Any] = {"status": to_status}
            if seller_status is not None:
                values["seller_status"] = seller_status[:24]
            BookedDeal.objects.filter(pk__in=locked).update(**values)
            made += [m for m in group if m.deal.pk in locked]
        DealTransition.objects.bulk_create(
            [
                DealTransition(
                    deal=m.deal, from_status=m.from_status, to_status=m.to_status, reason=m.reason, actor=actor
                )
                for m in made
            ],
            batch_size=1000,
        )
    for move in made:
        move.deal.status = move.to_status
    return made


def _costed(line: Recommendation, cost_micros: int) -> Recommendation:
    """``line`` as the ledger should hold it: at ``cost_micros`` (an unsaved copy; the row is not changed)."""
    return Recommendation(
        pk=line.pk,
        job_id=line.job_id,
        seller_url=line.seller_url,
        product_name=line.product_name,
        cost_micros=cost_micros,
    )


# The rows of every key that has more than one, deleted in one statement and summed back into one; a concurrent
# fold skips the rows this one deleted (they are locked, then gone), and rows inserted meanwhile wait for the
# next fold. Readers see the same sums before and after (one transaction). A key with one row is left alone, so
# an idle fold deletes nothing (and starts no new version epoch). Zero counts are dropped; versions never are 0.
_FOLD = """
WITH gone AS (
    DELETE FROM {table} AS t
    USING (SELECT {key} AS key FROM {table} AS t GROUP BY {group} HAVING COUNT(*) > 1) AS many
    WHERE {key} IS NOT DISTINCT FROM many.key
    RETURNING {key} AS key, t.delta
),
summed AS (
    INSERT INTO {table} ({columns}delta)
    SELECT {keys}SUM(delta) FROM gone GROUP BY key HAVING SUM(delta) <> 0
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM gone), (SELECT COUNT(*) FROM summed)
"""
_FOLDED = {  # table: the column its rows are summed by (the list's version has none: one sum)
    "campaigns_jobcount": "status",
    "campaigns_joblistversion": None,
    "campaigns_jobversion": "job_id",
}


def job_counts_fold() -> tuple[int, int]:
    """Sum the job counts and the job versions into one row per status, for the list and per job (PostgreSQL;
    nothing to do elsewhere): (rows read, rows left). The sums stay the same; only the rows to add up shrink."""
    if connection.vendor != "postgresql":
        return 0, 0
    read = left = 0
    with connection.cursor() as cursor:
        for table, key in _FOLDED.items():
            if key:
                sql = _FOLD.format(table=table, key=f"t.{key}", group=f"t.{key}", columns=f"{key}, ", keys="key, ")
            else:  # one group of every row
                sql = _FOLD.format(table=table, key="TRUE", group="()", columns="", keys="")
            cursor.execute(sql)
            gone, summed = cursor.fetchone()
            read, left = read + gone, left + summed
    return read, left
