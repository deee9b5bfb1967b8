"""Reads shared by the API, pages and MCP tools."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, QuerySet

from campaigns.models import BookedDeal, BookingJob, Recommendation

# What a job list shows; the JSON columns (allocations, errors, briefs) stay in the database.
JOB_LIST_FIELDS = ("id", "status", "progress", "created_at", "campaign__name", "campaign__budget_micros")


def job_list(*, status: str | None = None) -> QuerySet[BookingJob]:
    jobs = BookingJob.objects.select_related("campaign").only(*JOB_LIST_FIELDS).order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status)
    return jobs


def job_get(job_id: str) -> BookingJob | None:
    """A job with everything its detail view shows, in a fixed number of queries; None when unknown."""
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        return None
    return (
        BookingJob.objects.select_related("campaign")
        .prefetch_related(
            Prefetch("recommendations", queryset=Recommendation.objects.order_by("priority")),
            Prefetch("deals", queryset=BookedDeal.objects.select_related("recommendation").order_by("booked_at")),
        )
        .filter(pk=key)
        .first()
    )


def job_exists(job_id: str) -> bool:
    try:
        return BookingJob.objects.filter(pk=uuid.UUID(str(job_id))).exists()
    except ValueError:
        return False
