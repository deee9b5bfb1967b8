"""Celery entry points of pacing, on their own queue (``CELERY_PACING_QUEUE``): thin and safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from pacing import services
from pacing.budget_cuts import budget_cuts_apply
from pacing.snapshots import snapshots_thin

# At-least-once: every task here is idempotent (readings no newer than the stored ones change nothing; a run
# that finished is not taken again).
POLICY = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=3,
)


@shared_task(name="pacing.tasks.read_delivery", soft_time_limit=60, time_limit=90, **POLICY)
def read_delivery() -> int:
    """Fan out: one task per chunk of one seller's deals, so sellers are read in parallel across workers."""
    chunks = services.delivery_plan()
    for seller_id, deal_pks in chunks:
        read_delivery_chunk.delay(seller_id, deal_pks)
    return len(chunks)


@shared_task(name="pacing.tasks.read_delivery_chunk", soft_time_limit=300, time_limit=330, **POLICY)
def read_delivery_chunk(seller_id: int | None, deal_pks: list[int]) -> dict[str, int]:
    return services.delivery_read_chunk(seller_id=seller_id, deal_pks=deal_pks).as_dict()


@shared_task(name="pacing.tasks.take_snapshots", soft_time_limit=900, time_limit=960, **POLICY)
def take_snapshots() -> int:
    return services.scheduled_snapshot().pk


@shared_task(name="pacing.tasks.refresh_campaign", soft_time_limit=300, time_limit=330, **POLICY)
def refresh_campaign(run_id: int) -> None:
    services.campaign_refresh_run(run_id)


@shared_task(name="pacing.tasks.thin_snapshots", soft_time_limit=900, time_limit=960, **POLICY)
def thin_snapshots() -> dict[str, int]:
    return snapshots_thin()


@shared_task(name="pacing.tasks.apply_budget_cuts", soft_time_limit=600, time_limit=660, **POLICY)
def apply_budget_cuts(proposal_id: int | None = None) -> dict[str, int]:
    """Send an approved reallocation's budget cuts to the sellers (all cuts due when no proposal is named)."""
    return budget_cuts_apply(proposal_id=proposal_id)
