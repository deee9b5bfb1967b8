from __future__ import annotations

import uuid

from django.db import models


class EventType(models.TextChoices):
    CAMPAIGN_CREATED = "campaign.created"
    BUDGET_ALLOCATED = "budget.allocated"
    RESEARCH_STARTED = "research.started"
    RESEARCH_COMPLETED = "research.completed"
    SELLER_FAILED = "seller.failed"
    PRODUCT_SKIPPED = "product.skipped"
    QUOTE_REQUESTED = "quote.requested"
    QUOTE_RECEIVED = "quote.received"
    QUOTE_FAILED = "quote.failed"
    RECOMMENDATIONS_READY = "recommendations.ready"
    PLAN_REVIEW_REQUESTED = "plan.review_requested"
    PLAN_REVIEWED = "plan.reviewed"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_GRANTED = "approval.granted"
    APPROVAL_REJECTED = "approval.rejected"
    APPROVAL_EXPIRED = "approval.expired"
    NEGOTIATION_STARTED = "negotiation.started"
    NEGOTIATION_ROUND = "negotiation.round"
    NEGOTIATION_CONCLUDED = "negotiation.concluded"
    NEGOTIATION_COMPLETED = "negotiation.completed"
    BOOKING_STARTED = "booking.started"
    DEAL_BOOKED = "deal.booked"
    DEAL_PRICE_MISMATCH = "deal.price_mismatch"
    DEAL_STATUS_CHANGED = "deal.status_changed"
    DEAL_BUDGET_CHANGED = "deal.budget_changed"
    DEAL_BUDGET_CHANGE_FAILED = "deal.budget_change_failed"
    BOOKING_FAILED = "booking.failed"
    # A seller took an order for review (an AdCP task): followed until it completes or fails; emitted again
    # when the seller's status or message changes (``input-required`` carries what it needs).
    BOOKING_PENDING = "booking.pending"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    JOB_RESUMED = "job.resumed"
    PACING_DELIVERY_FAILED = "pacing.delivery_failed"
    PACING_SNAPSHOT_TAKEN = "pacing.snapshot_taken"
    PACING_DEVIATION_DETECTED = "pacing.deviation_detected"
    PACING_ALERT_RESOLVED = "pacing.alert_resolved"
    PACING_REALLOCATION_RECOMMENDED = "pacing.reallocation_recommended"
    PACING_REALLOCATION_APPLIED = "pacing.reallocation_applied"
    PACING_REALLOCATION_REJECTED = "pacing.reallocation_rejected"
    PACING_REALLOCATION_EXPIRED = "pacing.reallocation_expired"


class Event(models.Model):
    """One thing that happened in a flow; ``flow_id`` is the booking job's id."""

    event_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=64, choices=EventType.choices, db_index=True)
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    flow_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    flow_type = models.CharField(max_length=32, blank=True, default="")
    deal_id = models.CharField(max_length=128, blank=True, default="")
    campaign_id = models.CharField(max_length=64, blank=True, default="")
    session_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    payload = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [
            models.Index(fields=["flow_id", "timestamp"]),
            models.Index(fields=["event_type", "timestamp"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.flow_id}"
