"""What every step of the booking flow shares: reading a brief's terms and allocations, claiming and running a
step, retrying it later. Imports no model code: the booking step depends on this and on nothing that does."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from buyer.events.services import FlowIds
from buyer.logs import log_context
from buyer.metrics.models import StepOutcome
from buyer.metrics.steps import step_timing_record
from campaigns import policies
from campaigns.models import BookingJob, Campaign, JobStage
from campaigns.services import BOOK_RECOVERY_ATTEMPTS, job_add_errors, job_claim, job_fail

logger = logging.getLogger(__name__)


def brief_terms(campaign: Campaign, *, segments: tuple[str, ...] = ()) -> policies.BriefTerms:
    """The brief's terms; ``segments`` (the portfolio manager's audience plan) add to the audience keywords."""
    constraints = campaign.constraints or {}
    excluded = constraints.get("exclude_publishers") or []
    return policies.BriefTerms(
        budget=campaign.budget,
        channels=tuple(campaign.channels or ()),
        objectives=tuple(campaign.objectives or ()),
        start_date=campaign.start_date,
        end_date=campaign.end_date,
        max_cpm=policies.kpi_cpm(campaign.kpis or {}, "max_cpm_usd", "max_cpm"),
        target_cpm=policies.kpi_cpm(campaign.kpis or {}, "target_cpm_usd", "target_cpm"),
        formats=tuple(f.lower() for f in campaign.formats or ()),
        exclude_publishers=tuple(str(p) for p in excluded),
        audience=policies.audience_keywords(campaign.target_audience or {}, segments),
    )


def audience_segments(job: BookingJob) -> tuple[str, ...]:
    """The audience segments the portfolio manager planned for the job, if it did."""
    plan = (job.agents or {}).get("portfolio_manager", {}).get("audience") or {}
    return tuple(str(s) for s in plan.get("segments") or ())[:8]


def allocations_of(job: BookingJob) -> list[policies.Allocation]:
    return [
        policies.Allocation(
            channel=channel,
            amount=Decimal(str(item["budget"])),
            percentage=Decimal(str(item["percentage"])),
            rationale=item["rationale"],
        )
        for channel, item in job.budget_allocations.items()
    ]


def flow_ids(job: BookingJob) -> FlowIds:
    return {"flow_id": str(job.pk), "campaign_id": str(job.campaign_id)}


def run_step(job_id: str, stage: JobStage, step: Callable[[BookingJob], None]) -> None:
    """Claim ``stage`` and run it; an unexpected error is recorded and the step retried later, boundedly."""
    started = time.perf_counter()
    with log_context(job_id=job_id, stage=stage):
        outcome = _run_step(job_id, stage, step)
    if outcome is not None:
        step_timing_record(stage=stage, outcome=outcome, seconds=time.perf_counter() - started)


def _run_step(job_id: str, stage: JobStage, step: Callable[[BookingJob], None]) -> StepOutcome | None:
    """How the step ended, or None when it was not due here."""
    job = job_claim(job_id, stage=stage)
    if job is None:
        logger.info("job %s: stage %s not due here (done, leased elsewhere or cancelled)", job_id, stage)
        return None
    try:
        step(job)
    except Exception as exc:
        logger.exception("job %s: step %s raised", job_id, stage)
        message = f"Step '{stage}' attempt {job.attempts} failed: {type(exc).__name__}: {str(exc)[:300]}"
        # A booking step gets its recovery attempts too: a deal the seller made before the error is read back.
        limit = settings.JOB_MAX_ATTEMPTS + (BOOK_RECOVERY_ATTEMPTS if stage == JobStage.BOOK else 0)
        if job.attempts >= limit:
            job_fail(job, message)
        else:
            job_add_errors(job, [message])
            job_retry_later(job, seconds=min(300, 5 * 2**job.attempts))
        return StepOutcome.ERROR
    return StepOutcome.OK


def job_retry_later(job: BookingJob, *, seconds: int) -> None:
    """Keep the claim for ``seconds`` so nothing else runs the step, then run it again."""
    from campaigns import tasks

    BookingJob.objects.filter(pk=job.pk, attempts=job.attempts).update(
        lease_expires_at=timezone.now() + timedelta(seconds=seconds)
    )
    task = {
        JobStage.PLAN: tasks.job_plan,
        JobStage.RESEARCH: tasks.job_research,
        JobStage.NEGOTIATE: tasks.job_negotiate,
        JobStage.BOOK: tasks.job_book,
    }[JobStage(job.stage)]
    # Countdown a second past the lease, so the claim is free again when the task arrives.
    task.apply_async((str(job.pk),), countdown=seconds + 1)
