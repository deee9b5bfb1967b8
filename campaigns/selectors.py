"""Reads shared by the API, pages and MCP tools."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypedDict

from django.db import connection
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from buyer.prepared import PreparedQuery, Rows, SqlParam
from buyer.sellers.models import Seller
from campaigns.models import (
    COUNTED_DEALS,
    BookedDeal,
    BookingJob,
    DealStatus,
    DealTransition,
    JobCount,
    Recommendation,
    dashboard_order,
)

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

# What a job list shows; the JSON columns (allocations, errors, briefs) stay in the database.
JOB_LIST_FIELDS = ("id", "status", "progress", "created_at", "campaign__name", "campaign__budget_micros")


JOB_PAGE_COLUMNS = ("id", "status", "campaign__name", "campaign__budget_micros", "progress", "created_at")


# What a version is compared with besides its sum: the epoch (new whenever version rows are removed) and the
# server's start (a restored or failed-over database is another server), as one text.
VERSION_STAMP = (
    "COALESCE((SELECT epoch::text FROM campaigns_versionepoch WHERE id = 1), '') "
    "|| ' ' || pg_postmaster_start_time()::text"
)
_JOB_PAGE_SQL = (
    f"SELECT {VERSION_STAMP}, (SELECT COALESCE(SUM(delta), 0) FROM campaigns_joblistversion), "  # noqa: S608
    "(SELECT COALESCE(SUM(t.delta), 0) FROM ({total}) AS t), p.* "
    "FROM (SELECT 1) AS one LEFT JOIN LATERAL ({rows} LIMIT %s OFFSET %s) AS p ON TRUE"
)


class JobPageStatement:
    """``job_page`` on PostgreSQL, compiled once, in one statement: the list's version and the total
    (``job_total``'s sum of counts) first on each row of the page, and on one row of NULLs when it is empty."""

    def __init__(self, jobs: QuerySet[BookingJob], counts: QuerySet[JobCount], sentinel: str | None) -> None:
        self.rows = PreparedQuery(jobs.order_by("-created_at").values_list(*JOB_PAGE_COLUMNS), sentinel)
        self.total = PreparedQuery(counts.values_list("delta"), sentinel)
        # The ORM's compiled SQL, composed; every value is a parameter.
        self.sql = _JOB_PAGE_SQL.format(total=self.total.sql, rows=self.rows.sql)

    def bind(self, status: str | None, limit: int, offset: int) -> tuple[SqlParam, ...]:
        return (*self.total.bind(status), *self.rows.bind(status, (limit, offset)))

    def result(self, rows: Rows) -> tuple[tuple[str, int], Rows, int]:
        """(the list's version, the page's rows, total)."""
        stamp, version, total = rows[0][:3]
        return (stamp, int(version)), self.rows.tuples([row[3:] for row in rows if row[3] is not None]), int(total)


_JOB_STATUS = "\0status"  # stands for the status while the statement is compiled


def job_page_statement(status: str | None) -> JobPageStatement:
    """The compiled ``job_page`` for all jobs, or for one status (any: it is a parameter)."""
    return _job_page_statement(bool(status))


@functools.cache
def _job_page_statement(of_status: bool) -> JobPageStatement:
    if of_status:
        return JobPageStatement(
            BookingJob.objects.filter(status=_JOB_STATUS), JobCount.objects.filter(status=_JOB_STATUS), _JOB_STATUS
        )
    return JobPageStatement(BookingJob.objects.all(), JobCount.objects.all(), None)


def job_page(*, status: str | None, offset: int, limit: int) -> tuple[list[tuple[Any, ...]], int]:
    """A page of the job list as rows of ``JOB_PAGE_COLUMNS`` (no model instances: the list is the API's
    busiest read), newest first, and the number of jobs in all. On PostgreSQL one statement compiled once (the
    same queryset); elsewhere the ORM and a ``COUNT``."""
    if connection.vendor == "postgresql":
        page = job_page_statement(status)
        with connection.cursor() as cursor:
            cursor.execute(page.sql, page.bind(status, limit, offset))
            _version, rows, total = page.result(cursor.fetchall())
        return rows, total
    jobs = BookingJob.objects.order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status)
    return list(jobs.values_list(*JOB_PAGE_COLUMNS)[offset : offset + limit]), job_total(status)


def job_total(status: str | None = None) -> int:
    """How many jobs there are (with ``status``): on PostgreSQL the sum of the trigger-kept ``JobCount`` rows,
    exact in every transaction and a few rows to read instead of every job; elsewhere a ``COUNT``."""
    if connection.vendor != "postgresql":
        jobs = BookingJob.objects.all()
        return (jobs.filter(status=status) if status else jobs).count()
    counts = JobCount.objects.filter(status=status) if status else JobCount.objects.all()
    return int(counts.aggregate(n=Coalesce(Sum("delta"), 0))["n"])


def job_totals_by_status() -> dict[str, int]:
    """How many jobs there are in each status (a status with none may be missing), read as ``job_total`` reads
    one: the trigger-kept counts on PostgreSQL, a grouped ``COUNT`` elsewhere."""
    rows: Iterable[tuple[str, int]]
    if connection.vendor != "postgresql":
        rows = BookingJob.objects.values_list("status").annotate(n=Count("pk")).order_by()
    else:
        rows = JobCount.objects.values_list("status").annotate(n=Coalesce(Sum("delta"), 0)).order_by()
    return {status: int(n) for status, n in rows}


def campaign_list(*, status: str | None = None) -> QuerySet[BookingJob]:
    """Jobs as campaigns, newest first: the job list's fields plus the flight."""
    jobs = (
        BookingJob.objects.select_related("campaign")
        .only(*JOB_LIST_FIELDS, "campaign__start_date", "campaign__end_date")
        .order_by("-created_at", "-pk")
    )
    if status:
        jobs = jobs.filter(status=status)
    return jobs


def job_lines() -> QuerySet[Recommendation]:
    """A job's lines in the order its detail shows them (``job_get`` and the fast reads)."""
    return Recommendation.objects.order_by("priority")


def job_deals() -> QuerySet[BookedDeal]:
    """A job's deals in the order its detail shows them (``job_get`` and the fast reads)."""
    return BookedDeal.objects.order_by("booked_at")


def job_get(job_id: str) -> BookingJob | None:
    """A job with everything its detail view shows, in a fixed number of queries; None when unknown."""
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        return None
    return (
        BookingJob.objects.select_related("campaign")
        .prefetch_related(
            Prefetch(
                "recommendations",
                queryset=job_lines().prefetch_related("negotiation_rounds"),
            ),
            Prefetch("deals", queryset=job_deals().select_related("recommendation")),
        )
        .filter(pk=key)
        .first()
    )


def campaign_root_of(key: str) -> BookingJob | None:
    """A campaign's first job, from the id of any of its jobs or its campaign id; None when unknown."""
    pk = _uuid_or_none(key)
    if pk is None:
        return None
    job = BookingJob.objects.filter(Q(pk=pk) | Q(campaign_id=pk)).order_by("created_at").first()
    if job is None:
        return None
    return job.parent or job


def job_exists(job_id: str) -> bool:
    try:
        return BookingJob.objects.filter(pk=uuid.UUID(str(job_id))).exists()
    except ValueError:
        return False


# --- Dashboard pages ----------------------------------------------------------------------------------------

# A jobs-list row also says why a failed job failed; its deal count comes from an annotation, not a query per row.
JOB_ROW_FIELDS = (
    *JOB_LIST_FIELDS,
    "failure_reason",
    "approval_expires_at",
    "campaign__channels",
    "campaign__start_date",
    "campaign__end_date",
)


class JobRowFigures(TypedDict):
    """What the dashboard's job list annotates each job with."""

    deal_count: int
    booked_micros: int


def _job_rows() -> QuerySet[WithAnnotations[BookingJob, JobRowFigures]]:
    # A subquery rather than a JOIN + GROUP BY, so the paginator's COUNT stays a plain count of jobs.
    deals = (
        BookedDeal.objects.filter(COUNTED_DEALS, job=OuterRef("pk"))  # held or refused: not booked
        .order_by()
        .values("job")
        .annotate(n=Count("pk"))
        .values("n")
    )
    booked = (
        BookedDeal.objects.filter(COUNTED_DEALS, job=OuterRef("pk"))
        .order_by()
        .values("job")
        .annotate(total=Sum("cost_micros"))
        .values("total")
    )
    return (
        BookingJob.objects.select_related("campaign")
        .only(*JOB_ROW_FIELDS)
        .annotate(deal_count=Coalesce(Subquery(deals), Value(0)), booked_micros=Coalesce(Subquery(booked), Value(0)))
    )


def job_list_for_dashboard(
    *,
    status: str | None = None,
    channel: str | None = None,
    search: str | None = None,
    flight_from: Any = None,
    flight_to: Any = None,
) -> QuerySet[WithAnnotations[BookingJob, JobRowFigures]]:
    """Jobs for the dashboard: the ones waiting for a person first, then newest; each with ``deal_count``."""
    jobs = _job_rows()
    if status:
        jobs = jobs.filter(status=status)
    if channel:
        # Requested channels are a JSON list: match the quoted element (works on SQLite and PostgreSQL alike);
        # a brief without channels gets them from the plan, so the allocation keys count too.
        jobs = jobs.filter(Q(campaign__channels__icontains=f'"{channel}"') | Q(budget_allocations__has_key=channel))
    if search:
        jobs = jobs.filter(campaign__name__icontains=search)
    if flight_from:  # flights that run on or after the day
        jobs = jobs.filter(campaign__end_date__gte=flight_from)
    if flight_to:
        jobs = jobs.filter(campaign__start_date__lte=flight_to)
    return jobs.order_by(*dashboard_order())


def job_row_values(job_id: uuid.UUID | str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """One jobs-list row's ``columns`` (for its live update): one tuple, or none for an unknown job."""
    key = _uuid_or_none(job_id)
    return [] if key is None else list(_job_rows().filter(pk=key).values_list(*columns))


def job_header_get(job_id: uuid.UUID | str) -> BookingJob | None:
    """The job and its campaign without recommendations or deals: what the polled header and timeline need."""
    key = _uuid_or_none(job_id)
    return None if key is None else BookingJob.objects.select_related("campaign").filter(pk=key).first()


def job_names_known(ids: Iterable[str]) -> dict[str, str]:
    """Which of these ids (event flow ids, say) are booking jobs, with their campaign's name."""
    keys = {key for key in (_uuid_or_none(i) for i in ids) if key is not None}
    if not keys:
        return {}
    rows = BookingJob.objects.filter(pk__in=keys).values_list("pk", "campaign__name")
    return {str(pk): name for pk, name in rows}


# Deals waiting for a person: held for a decision, or refused and not yet cancelled at the seller.
DEALS_NEEDING: dict[str, dict[str, Any]] = {
    "decision": {"status": DealStatus.BOOKING, "flag__gt": ""},
    "cancellation": {"status": DealStatus.FAILED, "refused_by__gt": ""},
}


def deal_list(
    *,
    status: str | None = None,
    channel: str | None = None,
    seller_id: int | None = None,
    needs: str | None = None,
    campaign: str | None = None,
    flight_from: Any = None,
    flight_to: Any = None,
) -> QuerySet[BookedDeal]:
    deals = BookedDeal.objects.select_related("seller", "delivery", "job__campaign").defer(
        "pricing", "terms", "activation_instructions", "openrtb_params"
    )
    if status:
        deals = deals.filter(status=status)
    if needs:
        deals = deals.filter(**DEALS_NEEDING[needs])
    if campaign:
        deals = deals.filter(job__campaign__name__icontains=campaign)
    if channel:
        deals = deals.filter(channel=channel)
    if seller_id:
        deals = deals.filter(seller_id=seller_id)
    if flight_from:  # flights that run on or after the day, as on the jobs list
        deals = deals.filter(flight_end__gte=flight_from)
    if flight_to:
        deals = deals.filter(flight_start__lte=flight_to)
    return deals.order_by("-booked_at", "-pk")


def deal_get(deal_pk: int) -> BookedDeal | None:
    """A deal with its seller, line, job and state history, in a fixed number of queries; None when unknown."""
    return (
        BookedDeal.objects.select_related("seller", "recommendation", "job__campaign", "delivery")
        .prefetch_related(Prefetch("transitions", queryset=DealTransition.objects.order_by("at", "pk")))
        .filter(pk=deal_pk)
        .first()
    )


def deal_seller_choices() -> list[tuple[int, str]]:
    """Sellers that have deals, for the deals filter."""
    return list(
        Seller.objects.filter(pk__in=BookedDeal.objects.values("seller_id")).order_by("name").values_list("pk", "name")
    )


def _uuid_or_none(value: uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
