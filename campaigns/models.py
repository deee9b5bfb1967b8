from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from buyer.sellers.money import micros_to_decimal


class Channel(models.TextChoices):
    BRANDING = "branding"
    CTV = "ctv"
    MOBILE_APP = "mobile_app"
    PERFORMANCE = "performance"
    SOCIAL = "social"
    DISPLAY = "display"
    VIDEO = "video"
    NATIVE = "native"
    LINEAR_TV = "linear_tv"
    DOOH = "dooh"


# How people write the channels whose code is not simply the word capitalised.
CHANNEL_LABELS = {"ctv": "CTV", "dooh": "DOOH", "linear_tv": "Linear TV", "mobile_app": "Mobile app"}


def channel_label(code: object) -> str:
    """A channel's name as people write it: ``mobile_app`` is "Mobile app", ``ctv`` "CTV"."""
    text = str(code or "")
    return CHANNEL_LABELS.get(text, text.replace("_", " ").capitalize())


class PacingCurve(models.TextChoices):
    """How spend is expected to accrue over a flight. ``even``, ``asap`` and ``front_loaded`` are AdCP's words."""

    EVEN = "even", "Even"
    FRONT_LOADED = "front_loaded", "Front-loaded"
    BACK_LOADED = "back_loaded", "Back-loaded"
    ASAP = "asap", "As soon as possible"


class Campaign(models.Model):
    """A campaign brief as submitted. Money is stored as integer micros."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    objectives = models.JSONField(default=list)
    budget_micros = models.BigIntegerField()
    start_date = models.DateField()
    end_date = models.DateField()
    target_audience = models.JSONField(default=dict, blank=True)
    kpis = models.JSONField(default=dict, blank=True)
    channels = models.JSONField(default=list, blank=True)
    formats = models.JSONField(default=list, blank=True)
    constraints = models.JSONField(default=dict, blank=True)
    pacing_curve = models.CharField(max_length=16, choices=PacingCurve.choices, default=PacingCurve.EVEN)
    negotiation_strategy = models.CharField(
        max_length=16,
        blank=True,
        default="",
        help_text="none, threshold, adaptive or competitive; empty means the NEGOTIATION_STRATEGY setting.",
    )
    brief = models.JSONField(default=dict, help_text="The brief exactly as submitted.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(budget_micros__gt=0), name="campaign_budget_positive"),
            models.CheckConstraint(
                condition=models.Q(end_date__gte=models.F("start_date")), name="campaign_flight_ordered"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def budget(self) -> Decimal:
        return micros_to_decimal(self.budget_micros)


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_PLAN_REVIEW = "awaiting_plan_review"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
# Jobs that wait for a person (an approval, a review of the split).
WAITING_STATUSES = [JobStatus.AWAITING_APPROVAL.value, JobStatus.AWAITING_PLAN_REVIEW.value]


def dashboard_order() -> list[Any]:
    """The dashboard's order of jobs: those waiting for a person first, the deadline nearest first; then the
    newest. One definition for the query and for the index that serves it (the SQL must be the same)."""
    waiting = Q(status__in=WAITING_STATUSES)
    needs_action = Case(When(waiting, then=Value(0)), default=Value(1))
    deadline = Case(When(waiting, then=F("approval_expires_at")), default=Value(None))
    # Plain ASC (SQLite refuses NULLS LAST in an index): PostgreSQL puts nulls last anyway, and only jobs not
    # waiting have no deadline, which the first key already puts after the waiting ones.
    return [needs_action.asc(), deadline.asc(), F("created_at").desc(), F("id").desc()]


class JobStage(models.TextChoices):
    """The next step a job needs. Each step is one Celery task; ``done`` needs none."""

    PLAN = "plan"
    PLAN_REVIEW = "plan_review"  # a person adjusts the split before research (the brief's plan_review)
    RESEARCH = "research"
    NEGOTIATE = "negotiate"
    APPROVAL = "approval"
    BOOK = "book"
    # Every line is booked or failed except orders a seller is still reviewing (an AdCP task ``submitted``,
    # ``working`` or ``input-required``): a periodic task follows them; no worker waits.
    AWAIT_SELLER = "await_seller"
    DONE = "done"


class BookingJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="jobs")
    # A top-up job (budget moved here by an approved reallocation) points at the campaign's first job; its deals
    # are paced as part of that campaign.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="top_ups")
    status = models.CharField(max_length=24, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True)
    stage = models.CharField(max_length=16, choices=JobStage.choices, default=JobStage.PLAN)
    auto_approve = models.BooleanField(default=False)
    progress = models.FloatField(default=0.0)
    budget_allocations = models.JSONField(default=dict, blank=True)
    # Who decided each planning step: {role: {decided_by: model|policy, note, model, calls, rationale}}.
    agents = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    client_reference = models.CharField(max_length=200, null=True, blank=True, unique=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Claims of the current stage.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "updated_at"]),
            # The dashboard's jobs list reads its first page in index order instead of sorting every job.
            models.Index(*dashboard_order(), name="job_dashboard_order"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.name} [{self.status}]"

    @property
    def booked(self) -> Decimal:
        """What its counted deals cost (``booked_micros``, annotated by the dashboard's job list)."""
        return micros_to_decimal(getattr(self, "booked_micros", 0) or 0)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def root_id(self) -> uuid.UUID:
        """The campaign's first job: where a top-up job's deals are paced."""
        return self.parent_id or self.pk


class JobCount(models.Model):
    """How many jobs have each status, kept by the database for the job list's ``total`` (PostgreSQL only).

    A trigger on the jobs table inserts a delta for every job inserted, deleted or moved between statuses, in
    the writer's transaction; insert-only, so concurrent writers never wait on a shared counter row. The sum per
    status is therefore always exact; ``job_counts_fold`` (every few seconds on beat) sums the rows into one per
    status so the sum stays cheap to read. Migration 0007 created the trigger and the first rows."""

    status = models.CharField(max_length=24, db_index=True)
    delta = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.status} {self.delta:+d}"


class JobListVersion(models.Model):
    """The job list's version (PostgreSQL only): the sum of these rows, one inserted by a trigger for every
    statement that writes jobs, or the campaign fields the list shows. A reader that finds the same sum as
    when it rendered a page has seen the same committed writes (rows are only added; folding keeps the sum), so
    ``buyer.fastpath`` may answer with that page again."""

    delta = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.delta:+d}"


class JobVersion(models.Model):
    """One job's version, as ``JobListVersion`` is the list's: triggers add a row for every statement that
    writes the job, its campaign, lines, negotiation rounds or deals."""

    job_id = models.UUIDField(db_index=True, null=True, help_text="None: every job (after a TRUNCATE).")
    delta = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.job_id} {self.delta:+d}"


class VersionEpoch(models.Model):
    """One row: changed by a trigger whenever version rows are removed (a fold, a TRUNCATE, a DELETE by hand).
    Readers compare it, and the server's start time, along with the version sums."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    epoch = models.UUIDField(default=uuid.uuid4)

    def __str__(self) -> str:
        return str(self.epoch)


class RecommendationStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    BOOKED = "booked"
    # The seller issued a deal that differs from the approved line (more impressions, a higher CPM or cost):
    # held for a person to accept or refuse; not counted as booked.
    FLAGGED = "flagged"
    BOOKING_FAILED = "booking_failed"


class NegotiationStatus(models.TextChoices):
    NONE = "", "Not negotiated"
    ACTIVE = "active", "Negotiating"
    AGREED = "agreed", "Agreed"
    WALKED_AWAY = "walked_away", "Walked away"
    ENDED = "ended", "Ended"  # the seller broke the protocol, failed, or time ran out: the quote stands


class Recommendation(models.Model):
    """One line the agent proposes: a seller's product with the seller's own quoted price (or a lower one the
    agent negotiated with it)."""

    job = models.ForeignKey(BookingJob, on_delete=models.CASCADE, related_name="recommendations")
    seller = models.ForeignKey("sellers.Seller", null=True, on_delete=models.SET_NULL, related_name="+")
    seller_name = models.CharField(max_length=200)
    seller_url = models.URLField(max_length=500)
    product_id = models.CharField(max_length=200)
    product_name = models.CharField(max_length=300)
    publisher = models.CharField(max_length=200, blank=True, default="", help_text="seller_organization_id")
    publisher_domain = models.CharField(max_length=200, blank=True, default="", help_text="The seller's `domain`.")
    channel = models.CharField(max_length=24, choices=Channel.choices)
    inventory_type = models.CharField(max_length=32)
    format = models.CharField(max_length=64, blank=True, default="")
    deal_type = models.CharField(max_length=4)
    impressions = models.BigIntegerField()
    base_cpm_micros = models.BigIntegerField()
    cpm_micros = models.BigIntegerField(help_text="The price of the line: the seller's quote, or as negotiated.")
    quoted_cpm_micros = models.BigIntegerField(null=True, blank=True, help_text="The seller's quoted final CPM.")
    cost_micros = models.BigIntegerField()
    buyer_tier = models.CharField(max_length=24, default="public")
    pricing = models.JSONField(default=dict, blank=True, help_text="Discounts and rationale as the seller quoted.")
    quote_id = models.CharField(max_length=200)
    quote_expires_at = models.DateTimeField(null=True, blank=True)
    targeting = models.JSONField(default=dict, blank=True)
    priority = models.PositiveIntegerField()
    rationale = models.TextField()
    model_rationale = models.TextField(
        blank=True, default="", help_text="Why the channel specialist (a model) chose the line, in its words."
    )
    status = models.CharField(
        max_length=24, choices=RecommendationStatus.choices, default=RecommendationStatus.PENDING_APPROVAL
    )
    status_reason = models.TextField(blank=True, default="")
    approved_by = models.CharField(
        max_length=150, blank=True, default="", help_text="Who approved the line: a person, or 'auto' (auto_approve)."
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    negotiation_status = models.CharField(max_length=16, choices=NegotiationStatus.choices, blank=True, default="")
    negotiation_outcome = models.CharField(max_length=300, blank=True, default="")
    negotiation_id = models.CharField(max_length=200, blank=True, default="")
    negotiation_terms = models.JSONField(
        default=dict, blank=True, help_text="The strategy and prices a negotiation started with (decimal strings)."
    )
    # An order the seller took as an asynchronous task (AdCP): the line stays approved, its money reserved,
    # until the task completes (the deal is recorded) or fails (the line fails and its money is released).
    seller_order_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the line's AdCP order was first sent (recovery re-sends only these)."
    )
    seller_task_id = models.CharField(max_length=200, blank=True, default="")
    seller_task_status = models.CharField(max_length=24, blank=True, default="")
    seller_task_message = models.TextField(blank=True, default="", help_text="What the seller last said of it.")
    seller_task_since = models.DateTimeField(null=True, blank=True, help_text="When the task took its status.")
    seller_task_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["priority"]
        constraints = [
            models.UniqueConstraint(fields=["job", "seller_url", "product_id"], name="one_line_per_product_per_job"),
            models.CheckConstraint(condition=models.Q(cost_micros__gte=0), name="recommendation_cost_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.product_name} @ {self.seller_name}"

    @property
    def cpm(self) -> Decimal:
        return micros_to_decimal(self.cpm_micros)

    @property
    def cost(self) -> Decimal:
        return micros_to_decimal(self.cost_micros)


class NegotiationRound(models.Model):
    """One message of a negotiation and the seller's answer, as both were sent. One per line and round."""

    recommendation = models.ForeignKey(Recommendation, on_delete=models.CASCADE, related_name="negotiation_rounds")
    round_number = models.PositiveIntegerField()
    action = models.CharField(max_length=16, help_text="Ours: counter, accept or reject.")
    buyer_price_micros = models.BigIntegerField(null=True, blank=True)
    seller_price_micros = models.BigIntegerField(null=True, blank=True)
    seller_action = models.CharField(max_length=24, blank=True, default="")
    status = models.CharField(max_length=16, blank=True, default="", help_text="The seller's, after this message.")
    rounds_remaining = models.IntegerField(null=True, blank=True, help_text="As the seller said, after this one.")
    rationale = models.TextField(blank=True, default="", help_text="Why we made this move.")
    seller_rationale = models.TextField(blank=True, default="")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recommendation_id", "round_number"]
        constraints = [
            models.UniqueConstraint(fields=["recommendation", "round_number"], name="one_negotiation_round_per_number")
        ]

    def __str__(self) -> str:
        return f"{self.recommendation_id} round {self.round_number}: {self.action}"

    @property
    def buyer_price(self) -> Decimal | None:
        return None if self.buyer_price_micros is None else micros_to_decimal(self.buyer_price_micros)

    @property
    def seller_price(self) -> Decimal | None:
        return None if self.seller_price_micros is None else micros_to_decimal(self.seller_price_micros)


class LedgerKind(models.TextChoices):
    RESERVE = "reserve", "Reserved on approval"
    COMMIT = "commit", "Committed at booking"
    RELEASE = "release", "Released"


class BudgetEntry(models.Model):
    """One movement in a campaign's budget ledger (micros, signed: reservations and commitments add, releases
    subtract). A campaign and its top-ups share one ledger, under the first job; its sum never exceeds the
    campaign's budget (``campaigns.ledger``)."""

    root = models.ForeignKey(BookingJob, on_delete=models.CASCADE, related_name="budget_entries")
    job = models.ForeignKey(BookingJob, on_delete=models.CASCADE, related_name="+")
    recommendation = models.ForeignKey(
        Recommendation, null=True, blank=True, on_delete=models.CASCADE, related_name="budget_entries"
    )
    kind = models.CharField(max_length=8, choices=LedgerKind.choices)
    channel = models.CharField(max_length=24, blank=True, default="", help_text="A reallocation's giving channel.")
    amount_micros = models.BigIntegerField()
    reason = models.CharField(max_length=300, blank=True, default="")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["root", "at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_micros} ({self.root_id})"


class DealStatus(models.TextChoices):
    QUOTED = "quoted"
    NEGOTIATING = "negotiating"
    ACCEPTED = "accepted"
    BOOKING = "booking"
    BOOKED = "booked"
    DELIVERING = "delivering"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    MAKEGOOD_PENDING = "makegood_pending"
    PARTIALLY_CANCELED = "partially_canceled"


class BookedDeal(models.Model):
    """A deal the seller issued. One per recommendation: redelivered booking steps cannot make a second."""

    recommendation = models.OneToOneField(Recommendation, on_delete=models.PROTECT, related_name="deal")
    job = models.ForeignKey(BookingJob, on_delete=models.PROTECT, related_name="deals")
    seller = models.ForeignKey("sellers.Seller", null=True, on_delete=models.SET_NULL, related_name="+")
    seller_url = models.URLField(max_length=500)
    deal_id = models.CharField(max_length=200)
    quote_id = models.CharField(max_length=200)
    product_id = models.CharField(max_length=200)
    product_name = models.CharField(max_length=300)
    channel = models.CharField(max_length=24, choices=Channel.choices)
    deal_type = models.CharField(max_length=4)
    impressions = models.BigIntegerField()
    cpm_micros = models.BigIntegerField()
    cost_micros = models.BigIntegerField()
    buyer_tier = models.CharField(max_length=24, default="public")
    flight_start = models.DateField()
    flight_end = models.DateField()
    status = models.CharField(max_length=24, choices=DealStatus.choices, default=DealStatus.BOOKED)
    seller_status = models.CharField(max_length=24, blank=True, default="")
    seller_checked_at = models.DateTimeField(null=True, blank=True, help_text="When the deal was last read back.")
    flag = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Why the deal is held in 'booking': the seller's read-back differs from the approved line.",
    )
    refused_by = models.CharField(
        max_length=150,
        blank=True,
        default="",
        help_text="Who refused the held deal: it is to be cancelled with the seller, its money held until it is.",
    )
    pricing = models.JSONField(default=dict, blank=True)
    terms = models.JSONField(default=dict, blank=True)
    activation_instructions = models.JSONField(default=dict, blank=True)
    openrtb_params = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    booked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-booked_at"]
        constraints = [models.UniqueConstraint(fields=["seller_url", "deal_id"], name="unique_seller_deal_id")]

    def __str__(self) -> str:
        return self.deal_id

    @property
    def held(self) -> bool:
        """Issued by the seller on other terms than approved, awaiting a person's decision."""
        return self.status == DealStatus.BOOKING and bool(self.flag)

    @property
    def counted(self) -> bool:
        """Counted as booked: neither held nor refused."""
        return self.status not in (DealStatus.BOOKING, DealStatus.FAILED) and not self.refused_by

    @property
    def awaiting_cancellation(self) -> bool:
        """Refused by a person, and not yet cancelled at the seller: its money stays held meanwhile."""
        return self.status == DealStatus.FAILED and bool(self.refused_by)

    @property
    def state_label(self) -> str:
        if self.held:
            return "held"
        if self.awaiting_cancellation:
            return "refused"
        return self.get_status_display().lower()

    @property
    def cpm(self) -> Decimal:
        return micros_to_decimal(self.cpm_micros)

    @property
    def cost(self) -> Decimal:
        return micros_to_decimal(self.cost_micros)


# Deals counted as booked (a queryset filter, as ``BookedDeal.counted``): neither held, nor failed, nor refused.
COUNTED_DEALS = ~models.Q(status__in=[DealStatus.BOOKING, DealStatus.FAILED]) & models.Q(refused_by="")


class DealTransition(models.Model):
    """Audit trail: every state change of a deal, with why."""

    deal = models.ForeignKey(BookedDeal, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=24, blank=True, default="")
    to_status = models.CharField(max_length=24, choices=DealStatus.choices)
    reason = models.TextField(blank=True, default="")
    # Who moved it: ``system`` for the buyer's own processes (booking, delivery), else a person or API key.
    actor = models.CharField(max_length=150, blank=True, default="")
    # When it happened: now, or (for the states a deal passed through before the seller issued it) when the
    # quote, negotiation, approval or booking request that made it happened.
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"
