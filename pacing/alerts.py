"""Alerts from a snapshot run: one open alert per campaign, channel or deal and direction, set-based in SQL.

A run's rows beyond 10 % open an alert (``pacing.deviation_detected``) or update the open one (its figures when
the deviation moved a point or more); a change of level (warning ⇄ critical) is reported again, a mere change of
deviation is not. An open alert whose scope is back
within 10 %, or now off the other way, is resolved (``pacing.alert_resolved``); the other direction opens its
own alert. Four statements change the alerts and three write the events: nothing here loops over rows in
Python, so a first run over ten thousand off-pace campaigns costs what a quiet one does.

The SQL is portable between PostgreSQL and SQLite (3.33 or newer, for ``UPDATE … FROM``).
"""

# The SQL below is assembled from constants and table names; every value travels as a parameter.
# ruff: noqa: S608
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import DateTimeField
from django.utils import timezone

from buyer.events.models import Event, EventType
from buyer.prepared import SqlParam
from campaigns.models import BookedDeal, BookingJob, Campaign
from pacing.models import PacingAlert, PacingSnapshot, Scope, SnapshotRun

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper


@dataclass
class AlertChanges:
    opened: int = 0
    changed: int = 0
    resolved: int = 0


def scope_key(scope: str, channel: str, deal_id: int | None) -> str:
    """``campaign``, ``channel:<name>`` or ``deal:<pk>``; snapshots compute the same key in SQL."""
    if scope == Scope.DEAL:
        return f"deal:{deal_id}"
    if scope == Scope.CHANNEL:
        return f"channel:{channel}"
    return "campaign"


ALERTS = PacingAlert._meta.db_table
SNAPSHOTS = PacingSnapshot._meta.db_table
EVENTS = Event._meta.db_table
JOBS = BookingJob._meta.db_table
CAMPAIGNS = Campaign._meta.db_table
DEALS = BookedDeal._meta.db_table

# The direction a run's alerting row points to.
_DIRECTION = "(CASE WHEN s.status = 'ahead' THEN 'over' ELSE 'under' END)"
# A run's row that keeps an open alert open (same campaign, scope and direction, still beyond 10 %).
_KEEPS = (
    f"s.run_id = %s AND s.job_id = {ALERTS}.job_id AND s.scope_key = {ALERTS}.scope_key "
    f"AND s.alert_level <> '' AND {_DIRECTION} = {ALERTS}.direction"
)
_OPEN_IN_RUN = (
    f"{ALERTS}.resolved_at IS NULL AND {ALERTS}.job_id IN "
    f"(SELECT job_id FROM {SNAPSHOTS} WHERE run_id = %s AND scope = 'campaign')"
)


def alerts_update(*, run: SnapshotRun, as_of: datetime) -> AlertChanges:
    """Resolve, re-level, update and open alerts from the run's rows, then write one event per change."""
    changes = AlertChanges()
    at = DateTimeField().get_db_prep_value(as_of, connection)  # SQLite wants Django's own text form
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ALERTS} SET resolved_at = %s, updated_at = %s, resolved_run_id = %s "
            f"WHERE {_OPEN_IN_RUN} AND NOT EXISTS (SELECT 1 FROM {SNAPSHOTS} s WHERE {_KEEPS})",
            [at, at, run.pk, run.pk, run.pk],
        )
        changes.resolved = cursor.rowcount
        if run.job_id is None:
            # A campaign a full run no longer snapshots (its flight is over, its deals gone) is no longer paced.
            cursor.execute(
                f"UPDATE {ALERTS} SET resolved_at = %s, updated_at = %s, resolved_run_id = %s "
                f"WHERE resolved_at IS NULL AND job_id NOT IN "
                f"(SELECT job_id FROM {SNAPSHOTS} WHERE run_id = %s AND scope = 'campaign')",
                [at, at, run.pk, run.pk],
            )
            changes.resolved += cursor.rowcount
        cursor.execute(
            f"UPDATE {ALERTS} SET level = s.alert_level, changed_run_id = %s, "
            f"peak_level = CASE WHEN s.alert_level = 'critical' THEN 'critical' ELSE {ALERTS}.peak_level END "
            f"FROM {SNAPSHOTS} s WHERE {ALERTS}.resolved_at IS NULL AND {_KEEPS} AND s.alert_level <> {ALERTS}.level",
            [run.pk, run.pk],
        )
        changes.changed = cursor.rowcount
        # The figures follow the deviation when it moves a percentage point or more (or the level changed), not
        # on every run: ten thousand open alerts are not rewritten each hour for a hundredth of a point.
        cursor.execute(
            f"UPDATE {ALERTS} SET deviation_pct = s.deviation_pct, expected_micros = s.expected_micros, "
            f"actual_micros = s.actual_micros, updated_at = %s "
            f"FROM {SNAPSHOTS} s WHERE {ALERTS}.resolved_at IS NULL AND {_KEEPS} AND ("
            f"{ALERTS}.changed_run_id = %s OR {ALERTS}.deviation_pct IS NULL OR s.deviation_pct IS NULL "
            f"OR ABS(s.deviation_pct - {ALERTS}.deviation_pct) >= 1)",
            [at, run.pk, run.pk],
        )
        cursor.execute(
            f"INSERT INTO {ALERTS} (job_id, scope, channel, deal_id, scope_key, direction, level, peak_level, "
            "deviation_pct, expected_micros, actual_micros, opened_at, updated_at, opened_run_id) "
            f"SELECT s.job_id, s.scope, s.channel, s.deal_id, s.scope_key, {_DIRECTION}, s.alert_level, "
            "s.alert_level, s.deviation_pct, s.expected_micros, s.actual_micros, %s, %s, %s "
            f"FROM {SNAPSHOTS} s WHERE s.run_id = %s AND s.alert_level <> '' AND NOT EXISTS ("
            f"SELECT 1 FROM {ALERTS} a WHERE a.resolved_at IS NULL AND a.job_id = s.job_id "
            f"AND a.scope_key = s.scope_key AND a.direction = {_DIRECTION})",
            [at, at, run.pk, run.pk],
        )
        changes.opened = cursor.rowcount
        # Events carry when they were written (a replayed history is written now) and, in the payload, the
        # moment the figures are true of.
        now = DateTimeField().get_db_prep_value(timezone.now(), connection)
        _events(cursor, run=run, at=now, as_of=DjangoJSONEncoder().default(as_of))  # as pacing.snapshot_taken's
    return changes


# --- events -------------------------------------------------------------------------------------------------


def _uuid_text(column: str) -> str:
    """A UUID column as its canonical text: PostgreSQL casts it, SQLite keeps 32 hex digits without dashes."""
    if connection.vendor == "postgresql":
        return f"CAST({column} AS TEXT)"
    return (
        f"(substr({column}, 1, 8) || '-' || substr({column}, 9, 4) || '-' || substr({column}, 13, 4) || '-' || "
        f"substr({column}, 17, 4) || '-' || substr({column}, 21, 12))"
    )


def _sql_json() -> tuple[str, str, str]:
    """(object builder, new event id, empty object) in this database's SQL."""
    if connection.vendor == "postgresql":
        return "jsonb_build_object", "gen_random_uuid()", "'{}'::jsonb"
    return "json_object", "lower(hex(randomblob(16)))", "'{}'"


def _events(cursor: CursorWrapper, *, run: SnapshotRun, at: SqlParam, as_of: str) -> None:
    """``pacing.deviation_detected`` for each alert opened or re-levelled in this run, ``pacing.alert_resolved``
    for each resolved; payloads as ``GET /events`` shows them (money in dollars, deviation in percent)."""
    build, new_id, empty = _sql_json()
    payload = (
        f"{build}('alert_id', a.id, 'alert_level', a.level, 'direction', a.direction, "
        "'deviation', a.deviation_pct, 'deviation_pct', a.deviation_pct, 'scope', a.scope, "
        "'channel', NULLIF(a.channel, ''), 'deal_id', d.deal_id, "
        "'expected', a.expected_micros / 1000000.0, 'actual', a.actual_micros / 1000000.0, "
        "'change', @CHANGE@, 'campaign', c.name, 'as_of', CAST(%s AS TEXT)@EXTRA@)"
    )
    select = (
        f"INSERT INTO {EVENTS} (event_id, event_type, timestamp, flow_id, flow_type, deal_id, campaign_id, "
        f"session_id, payload, metadata) SELECT {new_id}, %s, %s, {_uuid_text('a.job_id')}, 'pacing', "
        f"COALESCE(d.deal_id, ''), {_uuid_text('j.campaign_id')}, '', {payload}, {empty} "
        f"FROM {ALERTS} a JOIN {JOBS} j ON j.id = a.job_id JOIN {CAMPAIGNS} c ON c.id = j.campaign_id "
        f"LEFT JOIN {DEALS} d ON d.id = a.deal_id @JOIN@ WHERE @WHERE@"
    )

    def statement(*, change: str, where: str, extra: str = "", join: str = "") -> str:
        parts = {"@CHANGE@": change, "@EXTRA@": extra, "@JOIN@": join, "@WHERE@": where}
        sql = select
        for token, text in parts.items():
            sql = sql.replace(token, text)
        return sql

    opened = statement(change="'opened'", where="a.opened_run_id = %s")
    cursor.execute(opened, [EventType.PACING_DEVIATION_DETECTED, at, as_of, run.pk])
    relevelled = statement(
        change="CASE WHEN a.level = 'critical' THEN 'escalated' ELSE 'eased' END",
        where="a.changed_run_id = %s AND (a.opened_run_id IS NULL OR a.opened_run_id <> %s)",
    )
    cursor.execute(relevelled, [EventType.PACING_DEVIATION_DETECTED, at, as_of, run.pk, run.pk])
    resolved = statement(
        change="'resolved'",
        extra=", 'now', COALESCE(CASE WHEN s.in_grace THEN 'in its grace period' "
        "WHEN s.status = 'not_started' THEN 'not started' ELSE s.status END, 'no longer paced')",
        join=f"LEFT JOIN {SNAPSHOTS} s ON s.run_id = %s AND s.job_id = a.job_id AND s.scope_key = a.scope_key",
        where="a.resolved_run_id = %s",
    )
    cursor.execute(resolved, [EventType.PACING_ALERT_RESOLVED, at, as_of, run.pk, run.pk])
