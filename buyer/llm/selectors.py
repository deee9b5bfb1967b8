"""Reads of the LLM call ledger: usage per day (in the viewer's time zone) and per booking job."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from buyer.llm.models import LlmCall, Outcome
from buyer.sellers.money import micros_to_decimal

_FAILED = [Outcome.ERROR, Outcome.CAP_REACHED]


def _aggregates() -> dict[str, Any]:
    return {
        "calls": Count("pk"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cost_micros": Sum("cost_micros"),
        "failed": Count("pk", filter=Q(outcome__in=_FAILED)),
        "fallbacks": Count("pk", filter=Q(outcome=Outcome.FALLBACK)),
    }


@dataclass(frozen=True)
class Usage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micros: int = 0
    failed: int = 0
    fallbacks: int = 0

    @property
    def cost(self) -> Decimal:
        return micros_to_decimal(self.cost_micros)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Usage:
        # Sums over no rows are NULL.
        return cls(**{name: row.get(name) or 0 for name in _aggregates()})


@dataclass(frozen=True)
class DayUsage:
    day: date
    usage: Usage


@dataclass(frozen=True)
class JobUsage:
    job_id: uuid.UUID
    campaign_name: str
    usage: Usage


def _window_start(days: int, now: datetime | None) -> datetime:
    """Midnight, in the active time zone, ``days - 1`` days before today: today plus the days before it."""
    tz = timezone.get_current_timezone()
    today = timezone.localdate(now or timezone.now(), tz)
    return datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=tz)


def _calls_since(days: int | None, now: datetime | None) -> QuerySet[LlmCall]:
    calls = LlmCall.objects.all()
    if days is not None:
        calls = calls.filter(created_at__gte=_window_start(days, now))
    return calls


def llm_usage_by_day(*, days: int = 30, now: datetime | None = None) -> list[DayUsage]:
    """Usage per calendar day of the active time zone over the last ``days`` days, newest first; days
    without calls are left out."""
    tz = timezone.get_current_timezone()
    rows = (
        _calls_since(days, now)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(**_aggregates())
        .order_by("-day")
    )
    return [DayUsage(day=row["day"], usage=Usage.from_row(row)) for row in rows]


def llm_usage_by_job(*, limit: int = 50) -> list[JobUsage]:
    """The ``limit`` booking jobs whose calls cost the most, all time, most expensive first."""
    rows = (
        LlmCall.objects.filter(job__isnull=False)
        .values("job_id", "job__campaign__name")
        .annotate(**_aggregates())
        .order_by("-cost_micros", "-calls", "job_id")[:limit]
    )
    return [
        JobUsage(job_id=row["job_id"], campaign_name=row["job__campaign__name"], usage=Usage.from_row(row))
        for row in rows
    ]


def llm_usage_totals(*, days: int | None = None, now: datetime | None = None) -> Usage:
    """Totals over the last ``days`` days (of the active time zone), or all time when ``days`` is None."""
    return Usage.from_row(_calls_since(days, now).aggregate(**_aggregates()))


def llm_usage_without_job(*, days: int | None = None, now: datetime | None = None) -> Usage:
    """Calls not made for a booking job (e.g. tools outside a run)."""
    return Usage.from_row(_calls_since(days, now).filter(job__isnull=True).aggregate(**_aggregates()))
