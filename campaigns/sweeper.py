"""The watchdog: finds jobs that stopped making progress and resumes or fails them, with a reason."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from buyer.events.models import EventType
from buyer.events.services import event_emit
from buyer.words import count, verb
from campaigns.models import COUNTED_DEALS, BookingJob, JobStage, JobStatus
from campaigns.services import (
    AWAITING,
    BOOK_RECOVERY_ATTEMPTS,
    PLAN_REVIEWING,
    job_add_errors,
    job_dispatch,
    job_fail,
    job_transition,
)

logger = logging.getLogger(__name__)


def jobs_sweep() -> dict[str, int]:
    """One pass. Safe to run anywhere, any number of times: every action is a conditional update."""
    now = timezone.now()
    stall_cutoff = now - timedelta(seconds=settings.JOB_STALL_SECONDS)
    counts = {"resumed": 0, "failed": 0, "expired": 0, "cancelled": 0}

    stalled = BookingJob.objects.filter(
        status__in=[JobStatus.PENDING, JobStatus.RUNNING],
        stage__in=[JobStage.PLAN, JobStage.RESEARCH, JobStage.NEGOTIATE, JobStage.BOOK],
    ).filter(
        # A lease that ran out means the worker died mid-step; no lease and no update means the task was lost.
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True, updated_at__lt=stall_cutoff)
    )
    for job in stalled.select_related("campaign")[:500]:
        if job.cancel_requested and not (job.stage == JobStage.BOOK and job.attempts > 0):
            reason = job.failure_reason or "Cancelled by user."
            if job_transition(
                job,
                status=JobStatus.CANCELLED,
                stage=JobStage.DONE,
                expect=Q(attempts=job.attempts, stage=job.stage),
                event=EventType.JOB_CANCELLED,
                payload={"reason": reason},
                failure_reason=reason,
            ):
                counts["cancelled"] += 1
        elif job.attempts >= settings.JOB_MAX_ATTEMPTS + (BOOK_RECOVERY_ATTEMPTS if job.stage == JobStage.BOOK else 0):
            if job_fail(
                job,
                f"Stalled in step '{job.stage}': no progress after {job.attempts} attempts.",
                expect=Q(attempts=job.attempts, stage=job.stage),
            ):
                counts["failed"] += 1
        else:
            # A booking step past its attempts (or cancelled after it ran) is resumed too: its next claim reads
            # back what the seller booked, then finishes the job.
            with transaction.atomic():
                # Touch the row so the next pass does not dispatch it again before the task runs.
                if BookingJob.objects.filter(pk=job.pk, attempts=job.attempts, stage=job.stage).update(
                    updated_at=now, lease_expires_at=None
                ):
                    event_emit(
                        EventType.JOB_RESUMED,
                        flow_id=str(job.pk),
                        campaign_id=str(job.campaign_id),
                        payload={"stage": job.stage, "attempts": job.attempts},
                    )
                    job_dispatch(job)
                    counts["resumed"] += 1

    unreviewed = BookingJob.objects.filter(status=JobStatus.AWAITING_PLAN_REVIEW, approval_expires_at__lt=now)
    for job in unreviewed[:500]:
        reason = f"Plan review window of {settings.APPROVAL_TTL_HOURS} h expired; nothing was researched or booked."
        counts["expired"] += int(
            job_transition(
                job,
                status=JobStatus.CANCELLED,
                stage=JobStage.DONE,
                expect=PLAN_REVIEWING,
                event=EventType.APPROVAL_EXPIRED,
                payload={"reason": reason, "plan_review": True},
                failure_reason=reason,
            )
        )

    expired = BookingJob.objects.filter(status=JobStatus.AWAITING_APPROVAL, approval_expires_at__lt=now)
    for job in expired.select_related("campaign")[:500]:
        booked = job.deals.filter(COUNTED_DEALS).count()
        if booked:
            # Lines that came back to a person after some were booked: those deals stand, the job is done.
            reason = (
                f"Approval window of {settings.APPROVAL_TTL_HOURS} h expired; the lines awaiting approval were not "
                f"booked (the {count(booked, 'deal')} booked before {verb(booked, 'stays', 'stay')} booked)."
            )
            moved = job_transition(
                job,
                status=JobStatus.COMPLETED,
                stage=JobStage.DONE,
                expect=AWAITING,
                event=EventType.APPROVAL_EXPIRED,
                payload={"reason": reason, "booked": booked},
            )
            if moved:
                job_add_errors(job, [reason])
        else:
            reason = f"Approval window of {settings.APPROVAL_TTL_HOURS} h expired; nothing was booked."
            moved = job_transition(
                job,
                status=JobStatus.CANCELLED,
                stage=JobStage.DONE,
                expect=AWAITING,
                event=EventType.APPROVAL_EXPIRED,
                payload={"reason": reason},
                failure_reason=reason,
            )
        counts["expired"] += int(moved)
    if any(counts.values()):
        logger.info("sweeper: %s", counts)
    return counts
