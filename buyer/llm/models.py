from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from buyer.sellers.money import micros_to_decimal


class Outcome(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    FALLBACK = "fallback", "Answered by the fallback model"
    CAP_REACHED = "cap_reached", "Refused: a cap was reached"


class LlmCall(models.Model):
    """One model call, written by the LLM gateway: who asked, which model answered, what it cost.

    A ledger: rows are appended and never edited. ``cost_micros`` is USD micros, priced by the gateway
    (pessimistically for unknown models); a call refused at a cap costs nothing and is still recorded.
    """

    job = models.ForeignKey(
        "campaigns.BookingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="llm_calls"
    )
    agent_role = models.CharField(max_length=64)
    requested_model = models.CharField(max_length=200)
    served_model = models.CharField(max_length=200, blank=True, default="", help_text="Empty when none answered.")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0, help_text="USD micros.")
    latency_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    stop_reason = models.CharField(
        max_length=24, blank=True, default="", help_text="The cap that refused the call: step_limit, cost_limit…"
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "LLM call"
        constraints = [
            models.CheckConstraint(condition=models.Q(cost_micros__gte=0), name="llm_call_cost_not_negative"),
            models.CheckConstraint(
                condition=models.Q(outcome__in=[choice.value for choice in Outcome]), name="llm_call_outcome_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_role} → {self.served_model or self.requested_model} ({self.outcome})"

    @property
    def cost(self) -> Decimal:
        return micros_to_decimal(self.cost_micros)


class BreakerState(models.TextChoices):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class ProviderBreaker(models.Model):
    """A model provider's circuit breaker, shared by every worker: it opens after ``LLM_BREAKER_FAILURES``
    consecutive failed calls and fails fast until ``LLM_BREAKER_COOLDOWN_SECONDS`` have passed; then one trial
    call decides whether it closes again."""

    provider = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=16, choices=BreakerState.choices, default=BreakerState.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.provider}: {self.state}"
