"""Alerts from a snapshot run: one open alert per campaign, channel or deal and direction.

A run's rows beyond 10 % open an alert (``pacing.deviation_detected``) or update the open one; a change of level
(warning ⇄ critical) is reported again, a mere change of deviation is not. An open alert whose scope is back
within 10 %, or now off the other way, is resolved (``pacing.alert_resolved``); the other direction opens its
own alert. Python here loops over the run's *alerting* rows and the open alerts, never over every deal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from buyer.events.models import EventType
from buyer.events.services import event_emit_many
from buyer.sellers.money import micros_to_decimal
from pacing.models import AlertLevel, Direction, PacingAlert, PacingSnapshot, Scope, SnapshotRun

_RANK = {"": 0, AlertLevel.WARNING: 1, AlertLevel.CRITICAL: 2}


@dataclass
class AlertChanges:
    opened: int = 0
    changed: int = 0
    resolved: int = 0


def scope_key(scope: str, channel: str, deal_id: int | None) -> str:
    if scope == Scope.DEAL:
        return f"deal:{deal_id}"
    if scope == Scope.CHANNEL:
        return f"channel:{channel}"
    return "campaign"


def _payload(alert: PacingAlert, row: dict[str, Any] | None, change: str) -> dict[str, Any]:
    source = row or {}
    deviation = source.get("deviation_pct", alert.deviation_pct)
    return {
        "alert_id": alert.pk,
        "alert_level": alert.level,
        "direction": alert.direction,
        "deviation": None if deviation is None else float(deviation),
        "deviation_pct": None if deviation is None else float(deviation),
        "scope": alert.scope,
        "channel": alert.channel or None,
        "deal_id": source.get("deal__deal_id") or None,
        "expected": micros_to_decimal(source.get("expected_micros", alert.expected_micros)),
        "actual": micros_to_decimal(source.get("actual_micros", alert.actual_micros)),
        "change": change,
        "campaign": source.get("job__campaign__name", ""),
    }


def _event(alert: PacingAlert, event_type: EventType, payload: dict[str, Any], campaign_id: Any) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "flow_id": str(alert.job_id),
        "flow_type": "pacing",
        "campaign_id": str(campaign_id or ""),
        "payload": payload,
    }


def alerts_update(*, run: SnapshotRun, as_of: datetime) -> AlertChanges:
    """Open, update and resolve alerts from the run's rows; one batch of events for what changed."""
    fields = (
        "job_id",
        "job__campaign_id",
        "job__campaign__name",
        "scope",
        "channel",
        "deal_id",
        "deal__deal_id",
        "status",
        "alert_level",
        "deviation_pct",
        "expected_micros",
        "actual_micros",
    )
    rows = PacingSnapshot.objects.filter(run=run)
    wanted: dict[tuple[Any, str, str], dict[str, Any]] = {}
    for row in rows.exclude(alert_level="").values(*fields).iterator(chunk_size=2000):
        direction = Direction.OVER if row["status"] == "ahead" else Direction.UNDER
        wanted[(row["job_id"], scope_key(row["scope"], row["channel"], row["deal_id"]), direction)] = row
    roots = rows.filter(scope=Scope.CAMPAIGN).values("job_id")
    campaigns = dict(rows.filter(scope=Scope.CAMPAIGN).values_list("job_id", "job__campaign_id"))
    now_rows: dict[tuple[Any, str], dict[str, Any]] = {}

    changes = AlertChanges()
    events: list[dict[str, Any]] = []
    updated: list[PacingAlert] = []
    resolved: list[PacingAlert] = []
    open_alerts = list(PacingAlert.objects.filter(resolved_at__isnull=True, job_id__in=roots))
    if open_alerts:
        # The run's rows for scopes that have an open alert (on track now, or off the other way).
        now_rows = {
            (r["job_id"], scope_key(r["scope"], r["channel"], r["deal_id"])): r
            for r in rows.filter(job_id__in={a.job_id for a in open_alerts}).values(*fields).iterator(chunk_size=2000)
        }
    for alert in open_alerts:
        row = wanted.pop((alert.job_id, alert.scope_key, alert.direction), None)
        if row is None:
            alert.resolved_at, alert.updated_at, alert.resolved_run = as_of, as_of, run
            resolved.append(alert)
            current = now_rows.get((alert.job_id, alert.scope_key))
            payload = _payload(alert, current, "resolved") | {"now": current["status"] if current else "not tracked"}
            events.append(_event(alert, EventType.PACING_ALERT_RESOLVED, payload, campaigns.get(alert.job_id)))
            continue
        level = row["alert_level"]
        level_changed = level != alert.level
        alert.deviation_pct, alert.expected_micros, alert.actual_micros = (
            row["deviation_pct"],
            row["expected_micros"],
            row["actual_micros"],
        )
        alert.updated_at = as_of
        if level_changed:
            change = "escalated" if _RANK[level] > _RANK[alert.level] else "eased"
            alert.level, alert.changed_run = level, run
            if _RANK[level] > _RANK[alert.peak_level]:
                alert.peak_level = level
            events.append(
                _event(
                    alert, EventType.PACING_DEVIATION_DETECTED, _payload(alert, row, change), row["job__campaign_id"]
                )
            )
        updated.append(alert)
    changes.changed = sum(1 for a in updated if a.changed_run_id == run.pk)
    changes.resolved = len(resolved)
    PacingAlert.objects.bulk_update(
        updated,
        ["level", "peak_level", "deviation_pct", "expected_micros", "actual_micros", "updated_at", "changed_run"],
        batch_size=1000,
    )
    PacingAlert.objects.bulk_update(resolved, ["resolved_at", "updated_at", "resolved_run"], batch_size=1000)

    created = [
        PacingAlert(
            job_id=job_id,
            scope=row["scope"],
            channel=row["channel"],
            deal_id=row["deal_id"],
            scope_key=key,
            direction=direction,
            level=row["alert_level"],
            peak_level=row["alert_level"],
            deviation_pct=row["deviation_pct"],
            expected_micros=row["expected_micros"],
            actual_micros=row["actual_micros"],
            opened_at=as_of,
            updated_at=as_of,
            opened_run=run,
        )
        for (job_id, key, direction), row in wanted.items()
    ]
    # Rows come back with their primary keys on PostgreSQL and SQLite alike, so the events can name them.
    PacingAlert.objects.bulk_create(created, batch_size=1000)
    changes.opened = len(created)
    for alert, row in zip(created, wanted.values(), strict=True):
        events.append(
            _event(alert, EventType.PACING_DEVIATION_DETECTED, _payload(alert, row, "opened"), row["job__campaign_id"])
        )
    event_emit_many(events)
    return changes
