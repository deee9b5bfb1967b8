"""Writes the interfaces call: "refresh now" for one campaign, and the scheduled cycle's entry points."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from buyer.errors import NotFound
from campaigns.models import BookingJob
from pacing.delivery import PullResult, delivery_chunks, delivery_pull, delivery_pull_all
from pacing.models import RunStatus, RunTrigger, SnapshotRun
from pacing.selectors import REFRESH_TIMEOUT
from pacing.snapshots import snapshot_run_create, snapshot_run_fail, snapshot_take

logger = logging.getLogger(__name__)


class CampaignNotFound(NotFound):
    """No such campaign (API: 404)."""


def campaign_root(job_id: str) -> BookingJob:
    """The campaign's first job for any of its jobs (a top-up job names its parent)."""
    jobs = BookingJob.objects.filter(Q(pk=job_id) | Q(campaign_id=job_id)) if _is_uuid(job_id) else None
    job = jobs.only("pk", "parent_id").order_by("created_at").first() if jobs is not None else None
    if job is None:
        raise CampaignNotFound("Campaign not found")
    return BookingJob.objects.get(pk=job.parent_id) if job.parent_id else job


def campaign_job_ids(root: BookingJob) -> list:
    return list(BookingJob.objects.filter(Q(pk=root.pk) | Q(parent_id=root.pk)).values_list("pk", flat=True))


@transaction.atomic
def campaign_refresh_request(*, job_id: str, actor: str = "") -> SnapshotRun:
    """Ask for delivery and a snapshot of one campaign now; a refresh already waiting is answered instead."""
    from pacing import tasks

    root = campaign_root(job_id)
    unfinished = SnapshotRun.objects.filter(
        job=root, trigger=RunTrigger.REFRESH, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    )
    # A refresh whose task never ran (a lost message, no worker on the pacing queue) must not block the next.
    stale = timezone.now() - REFRESH_TIMEOUT
    unfinished.filter(created_at__lt=stale).update(
        status=RunStatus.FAILED, finished_at=timezone.now(), error="no worker took this refresh in time"
    )
    waiting = unfinished.filter(created_at__gte=stale).order_by("-created_at").first()
    if waiting is not None:
        return waiting
    run = snapshot_run_create(trigger=RunTrigger.REFRESH, job_id=root.pk, requested_by=actor)
    transaction.on_commit(lambda: tasks.refresh_campaign.delay(run.pk))
    return run


def campaign_refresh_run(run_id: int) -> SnapshotRun | None:
    """Read the campaign's delivery from its sellers, then take its snapshot (the refresh task's body)."""
    if not SnapshotRun.objects.filter(pk=run_id, status=RunStatus.PENDING).update(status=RunStatus.RUNNING):
        return None  # done already, or another worker has it
    run = SnapshotRun.objects.get(pk=run_id)
    try:
        assert run.job_id is not None  # a refresh is of one campaign (campaign_refresh_request)
        root = BookingJob.objects.get(pk=run.job_id)
        delivery_pull_all(job_ids=campaign_job_ids(root))
        return snapshot_take(run=run)
    except (OperationalError, InterfaceError):
        # The database went away: the task retries, and finds the run waiting again.
        SnapshotRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(status=RunStatus.PENDING)
        raise
    except Exception as exc:
        logger.exception("pacing refresh %s failed", run_id)
        snapshot_run_fail(run=run, error=f"the refresh failed ({type(exc).__name__}); see the worker's log")
        raise


def scheduled_snapshot() -> SnapshotRun:
    run = snapshot_run_create(trigger=RunTrigger.SCHEDULE)
    try:
        return snapshot_take(run=run)
    except Exception as exc:
        logger.exception("pacing run %s failed", run.pk)
        snapshot_run_fail(run=run, error=f"the run failed ({type(exc).__name__}); see the worker's log")
        raise


def delivery_read_chunk(*, seller_id: int | None, deal_pks: list[int]) -> PullResult:
    return delivery_pull(seller_id=seller_id, deal_pks=deal_pks)


def delivery_plan() -> list[tuple[int | None, list[int]]]:
    return delivery_chunks()


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
