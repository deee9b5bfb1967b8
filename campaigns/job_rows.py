"""The dashboard's jobs list, one row at a time: every value a row shows, and its HTML kept by those values.

Rendering 25 rows through the template (three URLs, four moments and a pacing badge each) was most of the jobs
page's time. A row's template sees one ``JobRow`` and nothing else (no request, no user), so its HTML is a
function of the row's values, the reader's time zone and the language: kept under exactly those, it cannot go
stale. A job that changes gives a different ``JobRow``, and a new entry."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.template.loader import get_template
from django.utils import timezone, translation
from django.utils.safestring import SafeString

from buyer.sellers.money import micros_to_decimal
from campaigns.models import TERMINAL_STATUSES, JobStatus
from pacing.selectors import campaign_pacing_statuses

TEMPLATE = "campaigns/_job_row.html"
# Rows kept per process (about 1.5 KB each): a few pages of every reader's lists.
KEPT_ROWS = 4096


@dataclass(frozen=True, slots=True)
class PacingBadge:
    """What the row shows of its campaign's latest pacing snapshot (the names ``pacing/_status.html`` reads)."""

    status: str
    get_status_display: str
    alert_level: str
    in_grace: bool


@dataclass(frozen=True, slots=True)
class JobRow:
    """Every value one jobs-list row shows. Hashable: it is the key its HTML is kept under."""

    pk: uuid.UUID
    name: str
    start_date: dt.date | None
    end_date: dt.date | None
    channels: tuple[str, ...]
    budget: Decimal
    booked_micros: int
    booked: Decimal
    status: str
    get_status_display: str
    progress: float
    failure_reason: str
    is_terminal: bool
    created_at: dt.datetime
    approval_expires_at: dt.datetime | None
    deal_count: int
    pacing: PacingBadge | None

    @classmethod
    def of(cls, values: tuple[Any, ...], pacing: Any = None) -> JobRow:
        """The row of one ``COLUMNS`` tuple, with its campaign's latest pacing snapshot (or None)."""
        pk, name, start, end, channels, budget, booked, status, progress, failure, created, due, deals = values
        return cls(
            pk=pk,
            name=name,
            start_date=start,
            end_date=end,
            channels=tuple(channels or ()),
            budget=micros_to_decimal(budget),
            booked_micros=int(booked or 0),
            booked=micros_to_decimal(booked or 0),
            status=status,
            get_status_display=JobStatus(status).label,
            progress=progress,
            failure_reason=failure,
            is_terminal=status in TERMINAL_STATUSES,
            created_at=created,
            approval_expires_at=due,
            deal_count=int(deals or 0),
            pacing=None
            if pacing is None
            else PacingBadge(
                status=pacing.status,
                get_status_display=pacing.get_status_display(),
                alert_level=pacing.alert_level,
                in_grace=pacing.in_grace,
            ),
        )


# What ``JobRow.of`` takes, in order, from ``selectors.job_list_for_dashboard`` (which annotates the last two).
COLUMNS = (
    "pk",
    "campaign__name",
    "campaign__start_date",
    "campaign__end_date",
    "campaign__channels",
    "campaign__budget_micros",
    "booked_micros",
    "status",
    "progress",
    "failure_reason",
    "created_at",
    "approval_expires_at",
    "deal_count",
)


def job_rows(values: Iterable[tuple[Any, ...]]) -> list[JobRow]:
    """Rows of ``COLUMNS`` tuples, each completed job's with its pacing badge (one query for them all)."""
    values = list(values)
    pacing = campaign_pacing_statuses([v[0] for v in values if v[7] == JobStatus.COMPLETED])
    return [JobRow.of(v, pacing.get(v[0])) for v in values]


def row_html(row: JobRow) -> SafeString:
    """The ``<tr>`` of one job, as the reader (time zone, language) sees it."""
    return _rendered(row, timezone.get_current_timezone_name(), translation.get_language())


@lru_cache(maxsize=KEPT_ROWS)
def _rendered(row: JobRow, time_zone: str, language: str | None) -> SafeString:
    with timezone.override(time_zone), translation.override(language):
        return SafeString(get_template(TEMPLATE).render({"row": row}))
