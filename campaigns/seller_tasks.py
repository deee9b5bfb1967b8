"""Following orders that sellers took for review (AdCP tasks ``submitted``, ``working``, ``input-required``).

A booking step that meets such an answer records the task on the line (``booking._line_pending``) and, once
every other line is decided, parks the job in ``await_seller``. This periodic task (beat, every
``ADCP_TASK_POLL_SECONDS``) asks each seller where its tasks stand — no worker ever waits on a seller:

- ``completed``: the media buy is read back and recorded as the line's deal (``deal_record``: once per line,
  so two polls, or a poll and a redelivered one, record one deal);
- ``rejected`` / ``failed`` / ``canceled``: the line fails with the seller's reason and its money is released;
- still pending: the status and the seller's message are kept on the line (``input-required`` says what the
  seller needs, and the pages show it); a task ``working`` for longer than ``ADCP_WORKING_TIMEOUT_SECONDS``, or
  pending for longer than ``ADCP_REVIEW_TIMEOUT_HOURS``, is a seller error: the line fails, nothing is recorded
  on a guess.

Each line is claimed for one poll by moving its ``seller_task_checked_at`` (a conditional update), so
overlapping beats, or several workers, never poll one task twice at once; a worker killed mid-poll leaves the
claim to lapse after one interval. When a job has no pending order left, its booking finishes as a step's
would (completed, failed, back to approval, or cancelled when a cancel was asked for meanwhile)."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from buyer.events.models import EventType
from buyer.events.services import event_emit
from buyer.sellers.errors import SellerError
from buyer.sellers.guard import GuardedSellerClient
from buyer.sellers.registry import client_for
from buyer.sellers.types import TaskState
from campaigns import booking
from campaigns.models import BookingJob, JobStage, JobStatus, Recommendation, RecommendationStatus
from campaigns.services import DuplicateDealId, deal_record, job_add_errors
from campaigns.steps import flow_ids

logger = logging.getLogger(__name__)

PENDING_LINES = Q(status=RecommendationStatus.APPROVED, deal__isnull=True, seller_task_id__gt="")


def seller_tasks_poll(*, now: datetime | None = None) -> dict[str, int]:
    """Poll every due pending order once; finish the jobs left with none. Counts of what happened."""
    now = now or timezone.now()
    interval = timedelta(seconds=settings.ADCP_TASK_POLL_SECONDS)
    due = Q(seller_task_checked_at__isnull=True) | Q(seller_task_checked_at__lte=now - interval * 0.9)
    # A claim holds a line for an interval plus the worst two seller calls (status, then read-back) may take, so an
    # overlapping beat never polls a line that a slow poll still holds.
    hold = timedelta(seconds=2 * settings.SELLER_CALL_WORST_SECONDS)
    lines = list(
        Recommendation.objects.filter(
            PENDING_LINES, due, job__stage=JobStage.AWAIT_SELLER, job__status=JobStatus.RUNNING
        ).select_related("seller", "job", "job__campaign")
    )
    counts = {"polled": 0, "booked": 0, "failed": 0, "pending": 0, "errors": 0, "jobs_finished": 0}
    by_seller: dict[str, list[Recommendation]] = defaultdict(list)
    for line in lines:
        by_seller[line.seller_url].append(line)
    for lines_of_seller in by_seller.values():
        first = lines_of_seller[0]
        if first.seller is None:
            for line in lines_of_seller:
                if _claim(line, due, now + hold):
                    booking._line_failed(line.job, line, "seller was deleted while it reviewed the order")
                    counts["failed"] += 1
            continue
        client = client_for(first.seller)
        try:
            for line in lines_of_seller:
                # The claim, just before the poll: only the poller whose update moves the timestamp polls it now.
                if not _claim(line, due, now + hold):
                    continue
                counts["polled"] += 1
                try:
                    counts[_poll_line(client, line, now)] += 1
                except Exception:  # one line's surprise must not stop the others (nor leave jobs unfinished)
                    logger.exception("following seller task %s of line %s failed", line.seller_task_id, line.pk)
                    counts["errors"] += 1
                Recommendation.objects.filter(pk=line.pk).update(seller_task_checked_at=now)
        finally:
            client.close()
    # Every job left with no pending order finishes here, whichever run decided its last one (a run that
    # stopped between the two is caught up by the next).
    for job in BookingJob.objects.filter(stage=JobStage.AWAIT_SELLER, status=JobStatus.RUNNING).select_related(
        "campaign"
    ):
        if not booking.awaiting_sellers(job):
            booking._finish_booking(job)
            counts["jobs_finished"] += 1
    return counts


def _claim(line: Recommendation, due: Q, until: datetime) -> bool:
    return bool(Recommendation.objects.filter(PENDING_LINES, due, pk=line.pk).update(seller_task_checked_at=until))


def _still_pending(line: Recommendation) -> bool:
    """Lock the line and tell whether it still waits for its seller (another poll may have decided it)."""
    list(Recommendation.objects.select_for_update().filter(pk=line.pk).values_list("pk"))  # the lock, first
    return Recommendation.objects.filter(PENDING_LINES, pk=line.pk).exists()


def _poll_line(client: GuardedSellerClient, line: Recommendation, now: datetime) -> str:
    job = line.job
    try:
        state: TaskState = client.task_status(line.seller_task_id, quote_id=line.quote_id)
        if state.deal is not None:
            # Read back what the seller holds before recording it.
            deal = booking.with_line_pricing(line, client.get_deal(state.deal.deal_id, quote_id=line.quote_id))
    except SellerError as exc:
        note = f"checking the seller's task {line.seller_task_id} failed: {exc}"
        # A task that cannot be read for longer than a review may take is a seller error too: never held forever.
        overdue = _overdue("unreadable", line.seller_task_since or now, now)
        with transaction.atomic():
            if not _still_pending(line):
                return "errors"
            if overdue:
                booking._line_failed(job, line, f"{overdue} ({note})")
                return "failed"
            if note not in line.status_reason:
                job_add_errors(job, [f"Seller {line.seller_name}: {note}"])
                reason = booking.pending_reason(line.seller_task_status, line.seller_task_message)
                Recommendation.objects.filter(pk=line.pk).update(status_reason=f"{reason} ({note})"[:500])
        return "errors"
    if state.deal is not None:
        try:
            with transaction.atomic():
                # Recorded even if another poll failed the line meanwhile: the seller holds this buy, so it is ours.
                Recommendation.objects.filter(pk=line.pk).update(
                    seller_task_status=state.status[:24], seller_task_message=state.message, status_reason=""
                )
                deal_record(recommendation=line, deal=deal, flag=booking.read_back_mismatch(line, deal))
        except DuplicateDealId as exc:
            with transaction.atomic():
                if _still_pending(line):
                    booking._line_failed(job, line, str(exc))
            return "failed"
        return "booked"
    changed = (state.status, state.message) != (line.seller_task_status, line.seller_task_message)
    since = now if state.status != line.seller_task_status else (line.seller_task_since or now)
    overdue = "" if not state.pending else _overdue(state.status, since, now)
    with transaction.atomic():
        if not _still_pending(line):
            return "pending"  # decided by another poll meanwhile
        Recommendation.objects.filter(pk=line.pk).update(
            seller_task_status=state.status[:24],
            seller_task_message=state.message,
            seller_task_since=since,
            status_reason=booking.pending_reason(state.status, state.message)[:500],
        )
        if not state.pending:
            code = f" ({state.error_code})" if state.error_code else ""
            booking._line_failed(job, line, f"the seller {state.status} the order{code}: {state.message}")
            return "failed"
        if overdue:
            booking._line_failed(job, line, overdue)
            return "failed"
        if changed:
            event_emit(
                EventType.BOOKING_PENDING,
                **flow_ids(job),
                payload={
                    "product_id": line.product_id,
                    "seller": line.seller_name,
                    "task_id": line.seller_task_id,
                    "status": state.status,
                    "message": state.message,
                },
            )
    return "pending"


def _overdue(status: str, since: datetime, now: datetime) -> str:
    """Why a task pending since ``since`` is a seller error now, or "" while it may still be decided."""
    if status == "working":
        limit = timedelta(seconds=settings.ADCP_WORKING_TIMEOUT_SECONDS)
        if now - since > limit:
            return (
                f"the seller's task stayed 'working' for more than {int(limit.total_seconds() // 60)} minutes: "
                "no deal is recorded; check with the seller before booking it again"
            )
        return ""
    limit = timedelta(hours=settings.ADCP_REVIEW_TIMEOUT_HOURS)
    if now - since > limit and status == "unreadable":
        return (
            f"the seller's task could not be read for more than {settings.ADCP_REVIEW_TIMEOUT_HOURS} hours: no deal "
            "is recorded; check with the seller before booking it again"
        )
    if now - since > limit:
        return (
            f"the seller left the order '{status}' for more than {settings.ADCP_REVIEW_TIMEOUT_HOURS} hours: no deal "
            "is recorded; check with the seller before booking it again"
        )
    return ""
