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
from campaigns.services import deal_record, job_add_errors
from campaigns.steps import flow_ids

logger = logging.getLogger(__name__)

PENDING_LINES = Q(status=RecommendationStatus.APPROVED, deal__isnull=True, seller_task_id__gt="")


def seller_tasks_poll(*, now: datetime | None = None) -> dict[str, int]:
    """Poll every due pending order once; finish the jobs left with none. Counts of what happened."""
    now = now or timezone.now()
    interval = timedelta(seconds=settings.ADCP_TASK_POLL_SECONDS)
    due = Q(seller_task_checked_at__isnull=True) | Q(seller_task_checked_at__lte=now - interval * 0.9)
    lines = list(
        Recommendation.objects.filter(
            PENDING_LINES, due, job__stage=JobStage.AWAIT_SELLER, job__status=JobStatus.RUNNING
        ).select_related("seller", "job", "job__campaign")
    )
    counts = {"polled": 0, "booked": 0, "failed": 0, "pending": 0, "errors": 0, "jobs_finished": 0}
    by_seller: dict[str, list[Recommendation]] = defaultdict(list)
    for line in lines:
        # The claim: only the poller whose update moves the timestamp polls this line now.
        if Recommendation.objects.filter(PENDING_LINES, due, pk=line.pk).update(seller_task_checked_at=now):
            by_seller[line.seller_url].append(line)
    jobs: dict[object, BookingJob] = {}
    for lines_of_seller in by_seller.values():
        first = lines_of_seller[0]
        if first.seller is None:
            for line in lines_of_seller:
                booking._line_failed(line.job, line, "seller was deleted while it reviewed the order")
                counts["failed"] += 1
                jobs[line.job_id] = line.job
            continue
        client = client_for(first.seller)
        try:
            for line in lines_of_seller:
                counts["polled"] += 1
                counts[_poll_line(client, line, now)] += 1
                jobs[line.job_id] = line.job
        finally:
            client.close()
    for job in jobs.values():
        if not booking.awaiting_sellers(job):
            fresh = BookingJob.objects.select_related("campaign").get(pk=job.pk)
            if fresh.stage == JobStage.AWAIT_SELLER and fresh.status == JobStatus.RUNNING:
                booking._finish_booking(fresh)
                counts["jobs_finished"] += 1
    return counts


def _poll_line(client: GuardedSellerClient, line: Recommendation, now: datetime) -> str:
    job = line.job
    try:
        state: TaskState = client.task_status(line.seller_task_id, quote_id=line.quote_id)
        if state.deal is not None:
            # Read back what the seller holds before recording it.
            deal = booking.with_line_pricing(line, client.get_deal(state.deal.deal_id, quote_id=line.quote_id))
    except SellerError as exc:
        note = f"checking the seller's task {line.seller_task_id} failed: {exc}"
        if note not in line.status_reason:
            job_add_errors(job, [f"Seller {line.seller_name}: {note}"])
            reason = booking.pending_reason(line.seller_task_status, line.seller_task_message)
            Recommendation.objects.filter(pk=line.pk).update(status_reason=f"{reason} ({note})"[:500])
        return "errors"
    if state.deal is not None:
        with transaction.atomic():
            Recommendation.objects.filter(pk=line.pk).update(
                seller_task_status=state.status[:24], seller_task_message=state.message, status_reason=""
            )
            deal_record(recommendation=line, deal=deal, flag=booking.read_back_mismatch(line, deal))
        return "booked"
    if not state.pending:
        with transaction.atomic():
            Recommendation.objects.filter(pk=line.pk).update(
                seller_task_status=state.status[:24], seller_task_message=state.message
            )
            code = f" ({state.error_code})" if state.error_code else ""
            booking._line_failed(job, line, f"the seller {state.status} the order{code}: {state.message}")
        return "failed"
    changed = (state.status, state.message) != (line.seller_task_status, line.seller_task_message)
    since = now if state.status != line.seller_task_status else (line.seller_task_since or now)
    overdue = _overdue(state.status, since, now)
    with transaction.atomic():
        Recommendation.objects.filter(pk=line.pk).update(
            seller_task_status=state.status[:24],
            seller_task_message=state.message,
            seller_task_since=since,
            status_reason=booking.pending_reason(state.status, state.message)[:500],
        )
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
    if now - since > limit:
        return (
            f"the seller left the order '{status}' for more than {settings.ADCP_REVIEW_TIMEOUT_HOURS} hours: no deal "
            "is recorded; check with the seller before booking it again"
        )
    return ""
