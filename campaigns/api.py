from __future__ import annotations

from django.http import HttpRequest
from ninja import Header, Query, Router, Status

from buyer.apikeys.auth import write_auth
from campaigns import presenters, selectors, services
from campaigns.models import BookingJob
from campaigns.schemas import (
    ApproveAllOut,
    ApproveIn,
    ApproveOut,
    BookingCreatedOut,
    BookingIn,
    CancelIn,
    JobDetailOut,
    JobFilters,
    JobListOut,
    PlanReviewIn,
    PlanReviewOut,
)

router = Router(tags=["bookings"])


def _job_or_404(job_id: str) -> BookingJob:
    job = selectors.job_get(job_id)
    if job is None:
        raise services.JobNotFound(job_id)
    return job


@router.post(
    "/bookings", auth=write_auth, response={202: BookingCreatedOut}, summary="Submit a campaign brief for booking"
)
def create_booking(
    request: HttpRequest,
    payload: BookingIn,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
):
    """Stores the brief and starts the booking flow on a worker. Send an ``Idempotency-Key`` header to make
    retries of this request return the same job instead of creating another."""
    job = services.job_create_from_brief(
        payload.brief, auto_approve=payload.auto_approve, client_reference=idempotency_key
    )
    return Status(
        202,
        {
            "job_id": str(job.pk),
            "status": job.status,
            "message": "Booking job accepted; poll GET /bookings/{job_id}.",
        },
    )


@router.get("/bookings", response=JobListOut, summary="List booking jobs, newest first")
def list_bookings(request: HttpRequest, filters: Query[JobFilters]):
    rows, total = selectors.job_page(status=filters.status, offset=filters.offset, limit=filters.limit)
    return presenters.job_list(rows, total)


@router.get("/bookings/{job_id}", response=JobDetailOut, summary="A booking job with recommendations and deals")
def get_booking(request: HttpRequest, job_id: str):
    return presenters.job_detail(_job_or_404(job_id))


@router.post(
    "/bookings/{job_id}/approve",
    auth=write_auth,
    response={202: ApproveOut},
    summary="Approve some lines; the rest are rejected, or kept for later with keep_unselected",
)
def approve_booking(request: HttpRequest, job_id: str, payload: ApproveIn):
    """Approved lines are booked by a worker; poll ``GET /bookings/{job_id}`` for the seller's deal ids."""
    result = services.job_approve(
        job_id=job_id,
        product_ids=payload.approved_product_ids,
        recommendation_ids=payload.recommendation_ids,
        actor=_actor(request),
        keep_rest=payload.keep_unselected,
    )
    return Status(
        202,
        {
            "status": "booking",
            "job_id": job_id,
            "approved_count": len(result.approved),
            "rejected_count": len(result.rejected),
            "booked": 0,
            "total_cost": float(result.total_cost),
            "total_impressions": result.total_impressions,
            "message": "Approved lines are being booked; poll GET /bookings/{job_id}.",
        },
    )


@router.post(
    "/bookings/{job_id}/plan",
    auth=write_auth,
    response={202: PlanReviewOut},
    summary="Review the budget split of a job awaiting plan review (as planned, or adjusted); research starts",
    openapi_extra={"responses": {400: {"description": "A channel outside the plan, or amounts that do not add up"}}},
)
def review_plan(request: HttpRequest, job_id: str, payload: PlanReviewIn):
    job = services.job_plan_review(job_id=job_id, amounts=payload.allocations, actor=_actor(request))
    return Status(
        202,
        {
            "job_id": job_id,
            "status": job.status,
            "budget_allocations": job.budget_allocations,
            "message": "The sellers are being researched with this split; poll GET /bookings/{job_id}.",
        },
    )


@router.post(
    "/bookings/{job_id}/approve-all",
    auth=write_auth,
    response={202: ApproveAllOut},
    summary="Approve every recommended line",
)
def approve_all_booking(request: HttpRequest, job_id: str):
    result = services.job_approve_all(job_id=job_id, actor=_actor(request))
    return Status(
        202,
        {
            "status": "booking" if result.approved else "rejected",
            "job_id": job_id,
            "approved_count": len(result.approved),
            "booked": 0,
            "failed": [],
            "total_impressions": result.total_impressions,
            "total_cost": float(result.total_cost),
            "message": "All lines are being booked; poll GET /bookings/{job_id}.",
        },
    )


@router.post(
    "/bookings/{job_id}/reject",
    auth=write_auth,
    response=JobDetailOut,
    summary="Reject every line; the job ends cancelled",
)
def reject_booking(request: HttpRequest, job_id: str, payload: CancelIn | None = None):
    reason = payload.reason if payload else "All recommendations were rejected."
    services.job_reject_all(job_id=job_id, actor=_actor(request), reason=reason)
    return presenters.job_detail(_job_or_404(job_id))


@router.post(
    "/bookings/{job_id}/cancel", auth=write_auth, response=JobDetailOut, summary="Cancel a job that has not finished"
)
def cancel_booking(request: HttpRequest, job_id: str, payload: CancelIn | None = None):
    reason = payload.reason if payload else "Cancelled by user."
    services.job_cancel(job_id=job_id, reason=reason)
    return presenters.job_detail(_job_or_404(job_id))


def _actor(request: HttpRequest) -> str:
    principal = getattr(request, "auth", None)
    return getattr(principal, "name", "")
