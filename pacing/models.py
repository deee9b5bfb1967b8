"""Budget pacing: what sellers report a deal delivered, snapshots of expected against actual spend, the alerts
they raise and the reallocations a media buyer decides on. Money is integer micros, as everywhere.

A *campaign* here is a booking job and its top-up jobs (``BookingJob.parent``); pacing rows point at the first
job, the one the media buyer created.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

from buyer.sellers.money import micros_to_decimal
from campaigns.models import BookedDeal, BookingJob


class DealDelivery(models.Model):
    """The latest cumulative delivery a seller reported for one deal, and how the last attempt to read it went."""

    deal = models.OneToOneField(BookedDeal, primary_key=True, on_delete=models.CASCADE, related_name="delivery")
    impressions = models.BigIntegerField(default=0)
    spend_micros = models.BigIntegerField(default=0)
    # The moment the figures are true of (the seller's ``as_of``, else when we read them); None before any.
    as_of = models.DateTimeField(null=True, blank=True)
    seller_status = models.CharField(max_length=32, blank=True, default="")
    seller_pacing = models.CharField(max_length=32, blank=True, default="")
    checked_at = models.DateTimeField(null=True, blank=True, help_text="The last attempt to read delivery.")
    error = models.TextField(blank=True, default="", help_text="Why the last attempt failed; empty when it worked.")
    error_at = models.DateTimeField(null=True, blank=True)
    consecutive_errors = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "deal deliveries"
        constraints = [
            models.CheckConstraint(
                condition=Q(impressions__gte=0) & Q(spend_micros__gte=0), name="delivery_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.deal_id}: {self.impressions:,} impressions"

    @property
    def spend(self) -> Decimal:
        return micros_to_decimal(self.spend_micros)


class DeliveryReading(models.Model):
    """One cumulative reading that changed what we knew (the same figures twice are stored once)."""

    deal = models.ForeignKey(BookedDeal, on_delete=models.CASCADE, related_name="delivery_readings")
    as_of = models.DateTimeField()
    impressions = models.BigIntegerField()
    spend_micros = models.BigIntegerField()
    seller_status = models.CharField(max_length=32, blank=True, default="")
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["deal", "as_of"]
        constraints = [models.UniqueConstraint(fields=["deal", "as_of"], name="one_reading_per_deal_and_moment")]

    def __str__(self) -> str:
        return f"{self.deal_id} @ {self.as_of:%Y-%m-%d %H:%M}: {self.impressions:,}"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule"
    REFRESH = "refresh", "Refresh now"
    DEMO = "demo"


class RunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class SnapshotRun(models.Model):
    """One pass of the pacing engine: every active campaign (scheduled) or one campaign (refresh now)."""

    job = models.ForeignKey(BookingJob, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.SCHEDULE)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    as_of = models.DateTimeField(null=True, blank=True, help_text="The moment the snapshots describe.")
    requested_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    campaigns = models.PositiveIntegerField(default=0)
    deals = models.PositiveIntegerField(default=0)
    alerts_opened = models.PositiveIntegerField(default=0)
    alerts_changed = models.PositiveIntegerField(default=0)
    alerts_resolved = models.PositiveIntegerField(default=0)
    proposals = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["job", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.trigger} run {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.DONE, RunStatus.FAILED)


class Scope(models.TextChoices):
    CAMPAIGN = "campaign"
    CHANNEL = "channel"
    DEAL = "deal"


class PacingStatus(models.TextChoices):
    """The operations guide's bands, plus ``not_started`` while nothing is due yet."""

    NOT_STARTED = "not_started", "Not started"
    ON_TRACK = "on_track", "On track"
    BEHIND = "behind", "Behind"
    AHEAD = "ahead", "Ahead"


class AlertLevel(models.TextChoices):
    WARNING = "warning"
    CRITICAL = "critical"


class Direction(models.TextChoices):
    UNDER = "under", "Under-pacing"
    OVER = "over", "Over-pacing"


class SnapshotQuerySet(models.QuerySet):
    def current(self) -> SnapshotQuerySet:
        """Each campaign's rows of its newest run: its pacing now."""
        return self.filter(run_id=models.F("job__latest_pacing__run_id"))


class PacingSnapshot(models.Model):
    """Expected against actual spend of one campaign, channel or deal at one moment (a time series)."""

    # No single-column indexes on run and job: the composite ones below lead with them, and every index costs
    # each run's hundred thousand inserts.
    run = models.ForeignKey(SnapshotRun, on_delete=models.CASCADE, related_name="snapshots", db_index=False)
    job = models.ForeignKey(BookingJob, on_delete=models.CASCADE, related_name="pacing_snapshots", db_index=False)
    scope = models.CharField(max_length=8, choices=Scope.choices)
    channel = models.CharField(max_length=24, blank=True, default="")
    deal = models.ForeignKey(BookedDeal, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # ``campaign``, ``channel:<name>`` or ``deal:<pk>``, as on alerts: the key the alert step joins on.
    scope_key = models.CharField(max_length=40, default="")
    as_of = models.DateTimeField()
    booked_micros = models.BigIntegerField()
    expected_micros = models.BigIntegerField()
    actual_micros = models.BigIntegerField()
    projected_micros = models.BigIntegerField(help_text="Spend at flight end if delivery keeps this pace.")
    impressions_booked = models.BigIntegerField(default=0)
    impressions_delivered = models.BigIntegerField(default=0)
    pacing_pct = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    deviation_pct = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    status = models.CharField(max_length=16, choices=PacingStatus.choices)
    alert_level = models.CharField(max_length=8, choices=AlertLevel.choices, blank=True, default="")
    # Within ``PACING_GRACE_HOURS`` of its delivery's start (all of its deals, for a channel or campaign): rated,
    # but no alert is raised and no reallocation proposed while sellers ramp up.
    in_grace = models.BooleanField(default=False)
    days_left = models.IntegerField(default=0)
    flight_start = models.DateField()
    flight_end = models.DateField()

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["as_of", "pk"]
        indexes = [
            models.Index(fields=["job", "scope", "as_of"]),
            models.Index(fields=["run", "job", "scope_key"]),
            models.Index(fields=["as_of"]),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.channel or self.deal_id or ''} @ {self.as_of:%Y-%m-%d %H:%M}: {self.status}"

    @property
    def expected(self) -> Decimal:
        return micros_to_decimal(self.expected_micros)

    @property
    def actual(self) -> Decimal:
        return micros_to_decimal(self.actual_micros)

    @property
    def booked(self) -> Decimal:
        return micros_to_decimal(self.booked_micros)

    @property
    def projected(self) -> Decimal:
        return micros_to_decimal(self.projected_micros)


class LatestSnapshot(models.Model):
    """The newest run that snapshotted a campaign (one narrow row to move per campaign and run, rather than a
    flag on every row of the old run and the new)."""

    job = models.OneToOneField(BookingJob, primary_key=True, on_delete=models.CASCADE, related_name="latest_pacing")
    run = models.ForeignKey(SnapshotRun, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"{self.job_id}: run {self.run_id}"


class PacingAlert(models.Model):
    """A deviation beyond 10 % (warning) or 25 % (critical) of one campaign, channel or deal in one direction.

    At most one is open per scope and direction: it is updated as the deviation worsens or eases and resolved
    when pacing is back within 10 %."""

    job = models.ForeignKey(BookingJob, on_delete=models.CASCADE, related_name="pacing_alerts")
    scope = models.CharField(max_length=8, choices=Scope.choices)
    channel = models.CharField(max_length=24, blank=True, default="")
    deal = models.ForeignKey(BookedDeal, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # ``campaign``, ``channel:<name>`` or ``deal:<pk>``: one key per scope, for the uniqueness rule.
    scope_key = models.CharField(max_length=40)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    level = models.CharField(max_length=8, choices=AlertLevel.choices)
    peak_level = models.CharField(max_length=8, choices=AlertLevel.choices)
    deviation_pct = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    expected_micros = models.BigIntegerField(default=0)
    actual_micros = models.BigIntegerField(default=0)
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    opened_run = models.ForeignKey(SnapshotRun, null=True, on_delete=models.SET_NULL, related_name="+")
    changed_run = models.ForeignKey(SnapshotRun, null=True, on_delete=models.SET_NULL, related_name="+")
    resolved_run = models.ForeignKey(SnapshotRun, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "scope_key", "direction"],
                condition=Q(resolved_at__isnull=True),
                name="one_open_alert_per_scope_and_direction",
            ),
        ]
        indexes = [models.Index(fields=["resolved_at", "level"]), models.Index(fields=["job", "-opened_at"])]

    def __str__(self) -> str:
        return f"{self.level} {self.direction} {self.scope_key}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def expected(self) -> Decimal:
        return micros_to_decimal(self.expected_micros)

    @property
    def actual(self) -> Decimal:
        return micros_to_decimal(self.actual_micros)


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Awaiting decision"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ReallocationProposal(models.Model):
    """Move unspent budget from under-pacing channels to over-pacing ones; nothing moves until a person approves."""

    job = models.ForeignKey(BookingJob, on_delete=models.CASCADE, related_name="reallocation_proposals")
    status = models.CharField(max_length=16, choices=ProposalStatus.choices, default=ProposalStatus.PENDING)
    amount_micros = models.BigIntegerField(help_text="The total moved.")
    rationale = models.TextField()
    budgets_before = models.JSONField(default=dict, help_text="Channel budgets (micros) when proposed.")
    run = models.ForeignKey(SnapshotRun, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True, default="")
    decision_note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["job"], condition=Q(status="pending"), name="one_pending_proposal_per_campaign"
            ),
            models.CheckConstraint(condition=Q(amount_micros__gt=0), name="proposal_moves_money"),
        ]

    def __str__(self) -> str:
        return f"move ${self.amount:,.2f} ({self.status})"

    @property
    def amount(self) -> Decimal:
        return micros_to_decimal(self.amount_micros)

    @property
    def is_pending(self) -> bool:
        return self.status == ProposalStatus.PENDING


class ReallocationMove(models.Model):
    """One leg of a proposal: ``amount`` from one channel to another, and the top-up job it started."""

    proposal = models.ForeignKey(ReallocationProposal, on_delete=models.CASCADE, related_name="moves")
    from_channel = models.CharField(max_length=24)
    to_channel = models.CharField(max_length=24)
    amount_micros = models.BigIntegerField()
    top_up_job = models.ForeignKey(BookingJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["pk"]
        constraints = [models.CheckConstraint(condition=Q(amount_micros__gt=0), name="move_moves_money")]

    def __str__(self) -> str:
        return f"{self.from_channel} -> {self.to_channel}: ${self.amount:,.2f}"

    @property
    def amount(self) -> Decimal:
        return micros_to_decimal(self.amount_micros)


class ChannelBudget(models.Model):
    """A campaign's channel budget once a reallocation changed it (until then the plan's allocation holds)."""

    job = models.ForeignKey(BookingJob, on_delete=models.CASCADE, related_name="channel_budgets")
    channel = models.CharField(max_length=24)
    budget_micros = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["channel"]
        constraints = [
            models.UniqueConstraint(fields=["job", "channel"], name="one_budget_per_campaign_channel"),
            models.CheckConstraint(condition=Q(budget_micros__gte=0), name="channel_budget_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.channel}: ${micros_to_decimal(self.budget_micros):,.2f}"


class CutStatus(models.TextChoices):
    PENDING = "pending"  # to be sent to the seller (again, after a transient failure)
    SUBMITTED = "submitted"  # the seller took it for review: followed by its task id
    APPLIED = "applied"
    FAILED = "failed"


class SellerBudgetCut(models.Model):
    """What an approved reallocation takes from one deal at its seller: an AdCP media buy's package budget cut
    to what the deal is projected to spend (never below what it spent), so the money moved to another channel
    cannot also be spent by the channel that gave it. Sent after the approval commits (``update_media_buy``,
    its idempotency key derived from this row); the deal's cost follows once the seller confirms."""

    proposal = models.ForeignKey(ReallocationProposal, on_delete=models.CASCADE, related_name="budget_cuts")
    deal = models.ForeignKey(BookedDeal, on_delete=models.CASCADE, related_name="budget_cuts")
    from_budget_micros = models.BigIntegerField()
    to_budget_micros = models.BigIntegerField()
    to_impressions = models.BigIntegerField()
    status = models.CharField(max_length=12, choices=CutStatus.choices, default=CutStatus.PENDING)
    task_id = models.CharField(max_length=200, blank=True, default="")
    message = models.CharField(max_length=500, blank=True, default="", help_text="The seller's words, if any.")
    attempts = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField(help_text="When it is next sent or checked (moved ahead to claim it).")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["proposal", "deal"], name="one_cut_per_proposal_deal"),
            models.CheckConstraint(
                condition=Q(to_budget_micros__gt=0) & Q(to_budget_micros__lt=models.F("from_budget_micros")),
                name="cut_lowers_a_positive_budget",
            ),
        ]
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self) -> str:
        return f"{self.deal_id}: {self.from_budget} -> {self.to_budget} ({self.status})"

    @property
    def from_budget(self) -> Decimal:
        return micros_to_decimal(self.from_budget_micros)

    @property
    def to_budget(self) -> Decimal:
        return micros_to_decimal(self.to_budget_micros)

    @property
    def amount(self) -> Decimal:
        return micros_to_decimal(self.from_budget_micros - self.to_budget_micros)
