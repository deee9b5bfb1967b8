"""Celery entry points: thin, idempotent, each states its delivery policy."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from campaigns import booking, flow, services, steps
from campaigns.models import JobStage
from campaigns.sweeper import jobs_sweep

# At-least-once delivery: a step may arrive twice (redelivery, sweeper); its claim makes the second a no-op.
STEP_POLICY = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
    # Below the job lease, so a step is stopped before another worker may presume it dead.
    soft_time_limit=max(5, int(settings.JOB_STEP_LEASE_SECONDS * settings.JOB_STEP_SOFT_LIMIT_SHARE)),
    time_limit=max(8, int(settings.JOB_STEP_LEASE_SECONDS * 0.9)),
)


@shared_task(name="campaigns.tasks.job_plan", **STEP_POLICY)
def job_plan(job_id: str) -> None:
    steps.run_step(job_id, JobStage.PLAN, flow.step_plan)


@shared_task(name="campaigns.tasks.job_research", **STEP_POLICY)
def job_research(job_id: str) -> None:
    steps.run_step(job_id, JobStage.RESEARCH, flow.step_research)


@shared_task(name="campaigns.tasks.job_negotiate", **STEP_POLICY)
def job_negotiate(job_id: str) -> None:
    steps.run_step(job_id, JobStage.NEGOTIATE, flow.step_negotiate)


@shared_task(name="campaigns.tasks.job_book", **STEP_POLICY)
def job_book(job_id: str) -> None:
    steps.run_step(job_id, JobStage.BOOK, booking.step_book)


@shared_task(name="campaigns.tasks.refresh_deals", acks_late=True, soft_time_limit=600, time_limit=660)
def refresh_deals() -> dict[str, int]:
    from campaigns.deal_refresh import deals_refresh_due

    return deals_refresh_due()


@shared_task(name="campaigns.tasks.poll_seller_tasks", acks_late=True, soft_time_limit=300, time_limit=330)
def poll_seller_tasks() -> dict[str, int]:
    """Follow the orders sellers took for review (AdCP tasks); see ``campaigns.seller_tasks``."""
    from campaigns.seller_tasks import seller_tasks_poll

    return seller_tasks_poll()


@shared_task(name="campaigns.tasks.sweep_stalled_jobs", acks_late=True, soft_time_limit=120, time_limit=150)
def sweep_stalled_jobs() -> dict[str, int]:
    return jobs_sweep()


@shared_task(name="campaigns.tasks.fold_job_counts", acks_late=True, soft_time_limit=60, time_limit=90)
def fold_job_counts() -> dict[str, int]:
    """Keep the job list's counts a few rows to sum (idempotent: a fold of folded rows changes nothing)."""
    read, left = services.job_counts_fold()
    return {"read": read, "left": left}
