"""Snapshots: expected against actual spend per deal, channel and campaign, computed set-based in SQL.

One run inserts a row per deal with ``INSERT … SELECT`` (the maths of ``maths.py`` as SQL expressions), then a
row per channel and per campaign aggregated from those rows, all in one transaction; no Python loop touches
every deal. Alerts and reallocation proposals then follow from the run's rows (``alerts.py``,
``reallocation.py``).

Expected spend of a deal is its booked cost times its campaign's curve at the moment its delivery figures are
true of (the seller's ``as_of``), so a seller that reports with a lag is not taken for an under-delivering one;
a completed deal's figures are final and are judged at the run's moment, as is a deal whose seller failed its
last read or whose figures are more than a day old; a deal never read yet counts as not started. A completed
deal's projection is what it spent. For ``PACING_GRACE_HOURS`` after a deal's delivery starts (its flight
start, or its booking if later) it is rated but raises no alert (``in_grace``) unless it has spent more than
its whole cost; a channel or campaign is in grace while all of its deals that have started are.
"""

# The SQL below is assembled from constants and Django-compiled querysets; every value travels as a parameter.
# ruff: noqa: S608
from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    DateField,
    DateTimeField,
    Exists,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    Min,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Round, TruncDate
from django.db.models.lookups import GreaterThan, LessThan
from django.utils import timezone

from buyer.events.models import EventType
from buyer.events.services import event_emit
from buyer.prepared import SqlParam
from campaigns.models import BookedDeal, DealStatus, PacingCurve
from pacing.delivery import PACED_STATUSES
from pacing.maths import CRITICAL_PCT, MAX_PACING_PCT, MAX_PACING_RATIO, MAX_PROJECTED_MICROS, WARNING_PCT
from pacing.models import DeliveryReading, LatestSnapshot, PacingSnapshot, RunStatus, RunTrigger, Scope, SnapshotRun

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler, _AsSqlType

logger = logging.getLogger(__name__)

SNAPSHOT_STATUSES = (*PACED_STATUSES, DealStatus.COMPLETED)
# A campaign is snapshotted while a deal still delivers, or for this long after its last flight day.
ACTIVE_AFTER_FLIGHT = timedelta(days=2)
# Figures older than this, at a run, say the seller stopped reporting: what is due is what is due now.
STALE_AFTER = timedelta(hours=24)
DAY_SECONDS = 86_400.0
# Any number that fits a 64-bit key: serialises runs across processes on PostgreSQL.
_ADVISORY_LOCK = 0x50414345  # "PACE"


class Epoch(Func):
    """Seconds since 1970 of a date (its midnight, UTC) or a datetime, in either database."""

    output_field = FloatField()
    # Double precision (EXTRACT answers numeric), as SQLite computes: the same arithmetic on both databases.
    template = "CAST(EXTRACT(EPOCH FROM %(expressions)s) AS DOUBLE PRECISION)"

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> _AsSqlType:
        return self.as_sql(
            compiler, connection, template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)", **extra
        )


def _float(value: float) -> Value:
    return Value(value, output_field=FloatField())


# The maths of ``maths.py`` as portable SQL over the columns of a derived table ``x`` (PostgreSQL and SQLite
# alike: CASE rather than GREATEST/LEAST, integers for the thresholds, shares in double precision).
_SHARE_SQL = f"""CASE x.curve
    WHEN '{PacingCurve.FRONT_LOADED}' THEN x.t * (2 - x.t)
    WHEN '{PacingCurve.BACK_LOADED}' THEN x.t * x.t
    WHEN '{PacingCurve.ASAP}' THEN CASE WHEN 2 * x.t > 1 THEN 1 ELSE 2 * x.t END
    ELSE x.t END"""
_RATED_SQL = f"""SELECT x.*,
    CASE WHEN x.in_grace AND x.actual <= x.booked THEN ''
         WHEN x.expected <= 0 AND x.actual > 0 THEN 'critical'
         WHEN x.expected <= 0 THEN ''
         WHEN ABS(x.actual - x.expected) * 100 > x.expected * {CRITICAL_PCT} THEN 'critical'
         WHEN ABS(x.actual - x.expected) * 100 > x.expected * {WARNING_PCT} THEN 'warning'
         ELSE '' END AS alert_level,
    CASE WHEN x.expected <= 0 AND x.actual > 0 THEN 'ahead'
         WHEN x.expected <= 0 THEN 'not_started'
         WHEN ABS(x.actual - x.expected) * 100 <= x.expected * {WARNING_PCT} THEN 'on_track'
         WHEN x.actual > x.expected THEN 'ahead'
         ELSE 'behind' END AS status,
    CASE WHEN x.expected <= 0 THEN NULL WHEN x.actual > x.expected * {MAX_PACING_RATIO}.0 THEN {MAX_PACING_PCT}
         ELSE ROUND(x.actual * 100.0 / x.expected, 2) END AS pacing_pct,
    CASE WHEN x.expected <= 0 THEN NULL WHEN x.actual > x.expected * {MAX_PACING_RATIO}.0 THEN {MAX_PACING_PCT} - 100
         ELSE ROUND(x.actual * 100.0 / x.expected, 2) - 100 END AS deviation_pct
FROM ({{inner}}) x"""
_DEAL_SQL = f"""SELECT y.*, CASE
        WHEN y.share >= 1 OR y.completed = 1 THEN y.actual
        WHEN y.expected <= 0 OR y.share <= 0 THEN CASE WHEN y.actual > y.booked THEN y.actual ELSE y.booked END
        WHEN y.actual > {MAX_PROJECTED_MICROS} THEN {MAX_PROJECTED_MICROS}
        WHEN y.actual > y.booked THEN y.actual
        WHEN y.actual >= y.booked * y.share THEN y.booked
        WHEN y.actual > y.share * {MAX_PROJECTED_MICROS} THEN {MAX_PROJECTED_MICROS}
        ELSE CAST(ROUND(y.actual / y.share) AS BIGINT) END AS projected
    FROM (SELECT z.*, CAST(ROUND(z.booked * z.share) AS BIGINT) AS expected
          FROM (SELECT x.*, {_SHARE_SQL} AS share FROM ({{inner}}) x @FENCE@) z @FENCE@) y"""

COLUMNS = (
    "run_id",
    "job_id",
    "scope",
    "channel",
    "deal_id",
    "scope_key",
    "as_of",
    "booked_micros",
    "expected_micros",
    "actual_micros",
    "projected_micros",
    "impressions_booked",
    "impressions_delivered",
    "pacing_pct",
    "deviation_pct",
    "status",
    "alert_level",
    "in_grace",
    "days_left",
    "flight_start",
    "flight_end",
)
# The alerts' key for a row (``alerts.scope_key`` in SQL).
_SCOPE_KEY_SQL = (
    "CASE WHEN r.deal_id IS NOT NULL THEN 'deal:' || CAST(r.deal_id AS VARCHAR(20)) "
    "WHEN r.channel <> '' THEN 'channel:' || r.channel ELSE 'campaign' END"
)
# Where each column comes from in the rated rows (the rest have their own name there).
_SOURCES = {
    "booked_micros": "booked",
    "expected_micros": "expected",
    "actual_micros": "actual",
    "projected_micros": "projected",
}


def _fenced(sql: str) -> str:
    """Keep each layer a layer: the planners would otherwise inline a column's whole expression everywhere the
    next layer uses it, computing the elapsed share a dozen times a row (an empty OFFSET stops that)."""
    fence = "OFFSET 0" if connection.vendor == "postgresql" else "LIMIT -1 OFFSET 0"
    return sql.replace("@FENCE@", fence)


def _insert(select_sql: str, params: tuple, extra: dict[str, tuple[str, SqlParam]]) -> int:
    """``INSERT INTO pacing_pacingsnapshot (COLUMNS) SELECT … FROM (rated rows)``; ``extra`` are constants
    (column → SQL placeholder and value) for the run, the scope and the moment."""
    quote = connection.ops.quote_name
    table = quote(PacingSnapshot._meta.db_table)
    names, picks, values = [], [], []
    for column in COLUMNS:
        names.append(quote(column))
        if column == "scope_key":
            picks.append(_SCOPE_KEY_SQL)
        elif column in extra:
            placeholder, value = extra[column]
            picks.append(placeholder)
            values.append(value)
        else:
            picks.append(f"r.{_SOURCES.get(column, column)}")
    rated = _RATED_SQL.replace("{inner}", select_sql)
    sql = f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(picks)} FROM ({rated}) r"
    with connection.cursor() as cursor:
        cursor.execute(sql, (*values, *params))
        return cursor.rowcount


def _constants(run: SnapshotRun, scope: str, as_of: datetime) -> dict[str, tuple[str, SqlParam]]:
    stamp = DateTimeField().get_db_prep_value(as_of, connection)
    cast = "CAST(%s AS TIMESTAMP WITH TIME ZONE)" if connection.vendor == "postgresql" else "%s"
    return {"run_id": ("%s", run.pk), "scope": ("%s", scope), "as_of": (cast, stamp)}


def active_deals(*, as_of: datetime, job_id: uuid.UUID | None = None) -> QuerySet[BookedDeal]:
    """Deals to snapshot, each with ``root`` (its campaign's first job): every paced or completed deal of a
    campaign that still delivers or whose last flight day was at most two days ago."""
    cutoff = (as_of - ACTIVE_AFTER_FLIGHT).date()
    live = (
        BookedDeal.objects.filter(Q(status__in=PACED_STATUSES) | Q(flight_end__gte=cutoff))
        .annotate(live_root=Coalesce(F("job__parent_id"), F("job_id")))
        .values("live_root")
    )
    deals = BookedDeal.objects.filter(status__in=SNAPSHOT_STATUSES).annotate(
        root=Coalesce(F("job__parent_id"), F("job_id"))
    )
    # A semi-join on the campaign (not a correlated EXISTS per deal): one pass over the deals.
    deals = deals.filter(root__in=live)
    if job_id is not None:
        deals = deals.filter(root=job_id)
    return deals


def _deal_base(as_of: datetime, job_id: uuid.UUID | None = None) -> tuple[str, tuple]:
    """Per deal: its figures, its curve and ``t``, the share of its flight gone by when its delivery was true."""
    # A deal's figures are compared with what was due when they were true (a seller that reports a few hours
    # late is not under-delivering). A completed deal's figures are final, and a seller that failed its last
    # read or whose figures are a day old is not reporting: those are judged at the run's moment. A deal never
    # read counts from its flight start (nothing due yet).
    now = Value(as_of, output_field=DateTimeField())
    moment = Case(
        When(status=DealStatus.COMPLETED, then=now),
        When(delivery__consecutive_errors__gt=0, then=now),
        When(delivery__as_of__lt=Value(as_of - STALE_AFTER, output_field=DateTimeField()), then=now),
        When(delivery__as_of__isnull=False, then=F("delivery__as_of")),
        When(delivery__checked_at__isnull=False, then=now),
        default=Cast(F("flight_start"), DateTimeField()),
        output_field=DateTimeField(),
    )
    start, end = Epoch(F("flight_start")), Epoch(F("flight_end")) + _float(DAY_SECONDS)
    elapsed = (Epoch(moment) - start) / (end - start)
    today = Epoch(Value(as_of.date(), output_field=DateField()))
    # Delivery started (the flight began) less than the grace period ago, or the deal was booked since.
    grace_from = as_of - timedelta(hours=settings.PACING_GRACE_HOURS)
    in_grace = Q(flight_start__lte=as_of.astimezone(UTC).date()) & (
        Q(flight_start__gt=grace_from.astimezone(UTC).date()) | Q(booked_at__gt=grace_from)
    )
    queryset = (
        active_deals(as_of=as_of, job_id=job_id)
        .annotate(
            job_id_=F("root"),
            deal_id_=F("pk"),
            booked=F("cost_micros"),
            actual=Coalesce(F("delivery__spend_micros"), Value(0)),
            impressions_booked=F("impressions"),
            impressions_delivered=Coalesce(F("delivery__impressions"), Value(0)),
            curve=F("job__campaign__pacing_curve"),
            completed=Case(When(status=DealStatus.COMPLETED, then=Value(1)), default=Value(0)),
            grace=Case(
                When(Q(status=DealStatus.COMPLETED), then=Value(False)),
                When(in_grace, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
            t=Case(
                When(GreaterThan(elapsed, 1), then=_float(1.0)),
                When(LessThan(elapsed, 0), then=_float(0.0)),
                default=elapsed,
                output_field=FloatField(),
            ),
            days_left=Cast(Round((Epoch(F("flight_end")) - today) / _float(DAY_SECONDS)), IntegerField()) + 1,
            length=Cast(Round((Epoch(F("flight_end")) - start) / _float(DAY_SECONDS)), IntegerField()) + 1,
            flight_start_=F("flight_start"),
            flight_end_=F("flight_end"),
        )
        .values(
            "job_id_",
            "channel",
            "deal_id_",
            "booked",
            "actual",
            "impressions_booked",
            "impressions_delivered",
            "curve",
            "completed",
            "grace",
            "t",
            "days_left",
            "length",
            "flight_start_",
            "flight_end_",
        )
        .order_by()
    )
    sql, params = queryset.query.sql_with_params()
    rename = (
        "SELECT b.job_id_ AS job_id, b.channel, b.deal_id_ AS deal_id, b.booked, b.actual, b.impressions_booked, "
        "b.impressions_delivered, b.curve, b.completed, b.grace AS in_grace, b.t, "
        "CASE WHEN b.days_left > b.length THEN b.length WHEN b.days_left < 0 THEN 0 ELSE b.days_left END AS days_left, "
        "b.flight_start_ AS flight_start, "
        f"b.flight_end_ AS flight_end FROM ({sql}) b @FENCE@"
    )
    return _fenced(_DEAL_SQL.replace("{inner}", rename)), params


def _aggregate_base(run: SnapshotRun, scope: str) -> tuple[str, tuple]:
    """Channel (or campaign) sums of the run's deal rows."""
    assert run.as_of is not None  # set by snapshot_take before the rows are written
    group = ["job_id", "channel"] if scope == Scope.CHANNEL else ["job_id"]
    started = Q(flight_start__lte=run.as_of.astimezone(UTC).date()) | Q(actual_micros__gt=0)
    queryset = (
        PacingSnapshot.objects.filter(run=run, scope=Scope.DEAL)
        .values(*group)
        .annotate(
            booked=Sum("booked_micros"),
            expected=Sum("expected_micros"),
            actual=Sum("actual_micros"),
            projected=Sum("projected_micros"),
            impressions_booked_=Sum("impressions_booked"),
            impressions_delivered_=Sum("impressions_delivered"),
            days_left_=Max("days_left"),
            # In grace while at least one deal is and no deal that has started delivering is out of it (no
            # portable boolean aggregate: count). A deal whose flight is still ahead has nothing to say yet.
            graced_=Sum(Case(When(in_grace=True, then=Value(1)), default=Value(0))),
            settled_=Sum(Case(When(started & Q(in_grace=False), then=Value(1)), default=Value(0))),
            flight_start_=Min("flight_start"),
            flight_end_=Max("flight_end"),
        )
        .order_by()
    )
    sql, params = queryset.query.sql_with_params()
    channel = "b.channel" if scope == Scope.CHANNEL else "''"
    rename = (
        f"SELECT b.job_id, {channel} AS channel, CAST(NULL AS BIGINT) AS deal_id, b.booked, b.expected, b.actual, "
        "b.projected, b.impressions_booked_ AS impressions_booked, b.impressions_delivered_ AS impressions_delivered, "
        "CASE WHEN b.settled_ = 0 AND b.graced_ > 0 THEN TRUE ELSE FALSE END AS in_grace, "
        "b.days_left_ AS days_left, b.flight_start_ AS flight_start, b.flight_end_ AS flight_end "
        f"FROM ({sql}) b"
    )
    return rename, params


# --- runs ---------------------------------------------------------------------------------------------------


def snapshot_run_create(
    *, trigger: str = RunTrigger.SCHEDULE, job_id: uuid.UUID | None = None, requested_by: str = ""
) -> SnapshotRun:
    return SnapshotRun.objects.create(trigger=trigger, job_id=job_id, requested_by=requested_by)


def snapshot_take(*, run: SnapshotRun, as_of: datetime | None = None, propose: bool = True) -> SnapshotRun:
    """Take the run's snapshots (every active campaign, or the run's one campaign), then raise and ease alerts
    and propose reallocations (unless ``propose`` is off: a replay of history), in one transaction. Runs are
    serialised; a finished run is not taken again."""
    from pacing import alerts, reallocation

    started = time.monotonic()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK])
        run = SnapshotRun.objects.select_for_update().get(pk=run.pk)
        if run.is_finished:
            return run
        # "Now" is taken once the lock is ours: a run that waited behind another describes the later moment.
        as_of = as_of or timezone.now()
        run.as_of = as_of
        run.save(update_fields=["as_of"])
        phases: dict[str, float] = {}

        def lap(name: str) -> None:
            phases[name] = time.monotonic() - started - sum(phases.values())

        deals = _insert(*_deal_base(as_of, run.job_id), _constants(run, Scope.DEAL, as_of))
        _insert(*_aggregate_base(run, Scope.CHANNEL), _constants(run, Scope.CHANNEL, as_of))
        campaigns = _insert(*_aggregate_base(run, Scope.CAMPAIGN), _constants(run, Scope.CAMPAIGN, as_of))
        lap("rows")
        _point_latest(run)
        lap("latest")
        changes = alerts.alerts_update(run=run, as_of=as_of)
        lap("alerts")
        proposals = reallocation.proposals_update(run=run, as_of=as_of) if propose else 0
        lap("proposals")
        run.status, run.as_of, run.finished_at = RunStatus.DONE, as_of, timezone.now()
        run.deals, run.campaigns = max(deals, 0), max(campaigns, 0)
        run.alerts_opened, run.alerts_changed, run.alerts_resolved = changes.opened, changes.changed, changes.resolved
        run.proposals = proposals
        run.duration_ms = int((time.monotonic() - started) * 1000)
        run.save()
        event_emit(
            EventType.PACING_SNAPSHOT_TAKEN,
            flow_id=str(run.job_id or ""),
            flow_type="pacing",
            payload={
                "run_id": run.pk,
                "trigger": run.trigger,
                "as_of": as_of,
                "campaigns": run.campaigns,
                "deals": run.deals,
                "alerts_opened": run.alerts_opened,
                "alerts_changed": run.alerts_changed,
                "alerts_resolved": run.alerts_resolved,
                "proposals": run.proposals,
            },
        )
    logger.info(
        "pacing run %s: %s campaigns, %s deals in %s ms (%s)",
        run.pk,
        run.campaigns,
        run.deals,
        run.duration_ms,
        ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in phases.items()),
    )
    return run


def _point_latest(run: SnapshotRun) -> None:
    """Make this run the latest of every campaign it snapshotted (unless one describes a later moment): one
    upsert, a narrow row per campaign."""
    table = connection.ops.quote_name(LatestSnapshot._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (job_id, run_id) SELECT job_id, run_id FROM {_table(PacingSnapshot)} "
            "WHERE run_id = %s AND scope = 'campaign' ON CONFLICT (job_id) DO UPDATE SET run_id = excluded.run_id "
            # Never back to an older moment (a replay of history, a run that describes an earlier time).
            f"WHERE (SELECT as_of FROM {_table(SnapshotRun)} WHERE id = {table}.run_id) <= %s",
            [run.pk, DateTimeField().get_db_prep_value(run.as_of, connection)],
        )


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def snapshot_run_fail(*, run: SnapshotRun, error: str) -> None:
    SnapshotRun.objects.filter(pk=run.pk).exclude(status=RunStatus.DONE).update(
        status=RunStatus.FAILED, error=error[:1000], finished_at=timezone.now()
    )


# --- thinning -----------------------------------------------------------------------------------------------


def snapshots_thin(*, now: datetime | None = None) -> dict[str, int]:
    """Keep every snapshot and reading of the last ``PACING_SNAPSHOT_KEEP_ALL_HOURS``, the last of each day
    before that, nothing older than ``PACING_SNAPSHOT_RETENTION_DAYS``; the latest snapshot always stays."""
    now = now or timezone.now()
    recent = now - timedelta(hours=settings.PACING_SNAPSHOT_KEEP_ALL_HOURS)
    oldest = now - timedelta(days=settings.PACING_SNAPSHOT_RETENTION_DAYS)
    counts: dict[str, int] = {}

    latest = F("job__latest_pacing__run_id")
    old = PacingSnapshot.objects.filter(as_of__lt=recent).exclude(run_id=latest)
    keep = (
        PacingSnapshot.objects.filter(as_of__lt=recent)
        .annotate(day=TruncDate("as_of"))
        .values("job_id", "scope", "channel", "deal_id", "day")
        .annotate(last=Max("pk"))
        .values("last")
    )
    counts["snapshots_thinned"] = old.exclude(pk__in=keep).delete()[0]
    counts["snapshots_expired"] = PacingSnapshot.objects.filter(as_of__lt=oldest).exclude(run_id=latest).delete()[0]

    kept_readings = (
        DeliveryReading.objects.filter(as_of__lt=recent)
        .annotate(day=TruncDate("as_of"))
        .values("deal_id", "day")
        .annotate(last=Max("pk"))
        .values("last")
    )
    counts["readings_thinned"] = (
        DeliveryReading.objects.filter(as_of__lt=recent).exclude(pk__in=kept_readings).delete()[0]
    )
    counts["readings_expired"] = DeliveryReading.objects.filter(as_of__lt=oldest).delete()[0]
    counts["runs_removed"] = (
        SnapshotRun.objects.filter(created_at__lt=oldest)
        .exclude(Exists(PacingSnapshot.objects.filter(run=OuterRef("pk"))))
        .delete()[0]
    )
    return counts
