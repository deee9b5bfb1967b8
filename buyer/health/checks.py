"""What readiness checks (``GET /health/ready``), each bounded in time: the database answers a query, the broker
accepts a connection, the workers of every queue and beat wrote a heartbeat recently. ``/health`` stays the cheap
liveness check (the web process answers).

No detail names a secret: errors are exception class names only (driver messages may quote a URL)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from buyer.health.models import BEAT, Heartbeat, worker_role

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 2.0
# A readiness probe answers within about two seconds when the database does not (libpq's shortest connect
# timeout): it connects on its own, not through the pool (whose wait is the requests' DATABASE_CONNECT_TIMEOUT).
DATABASE_PROBE_TIMEOUT_S = 2
# Readiness as the public route answers it is kept this long per process, and computed by one thread at a time:
# a flood of probes costs one database and one broker connection a second, not one each.
READINESS_KEPT_S = 1.0
_readiness_lock = threading.Lock()
_readiness_kept: tuple[float, dict[str, Any]] | None = None
HEALTHY, UNHEALTHY, UNKNOWN = "healthy", "unhealthy", "unknown"


def timed(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    result = check()
    return {**result, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def database() -> dict[str, Any]:
    """The database answers ``SELECT 1`` (PostgreSQL: on a connection of its own, within a second)."""
    try:
        if connection.vendor == "postgresql":
            import psycopg

            params = {**connection.get_connection_params(), "connect_timeout": DATABASE_PROBE_TIMEOUT_S}
            params.pop("cursor_factory", None)
            with psycopg.connect(**params, autocommit=True) as probe:
                probe.execute("SELECT 1").fetchone()
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - Django's and psycopg's errors, refused or timed-out sockets: down
        logger.warning("health: database check failed: %s", type(exc).__name__)
        return {"status": UNHEALTHY, "engine": settings.DATABASE_ENGINE, "error": type(exc).__name__}
    return {"status": HEALTHY, "engine": settings.DATABASE_ENGINE}


def broker_transport() -> str:
    return "redis" if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "embedded"


def broker() -> dict[str, Any]:
    """The broker accepts a connection within ``BROKER_TIMEOUT_S``."""
    from buyer.celery import app

    try:
        with app.connection_for_write(connect_timeout=BROKER_TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=BROKER_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - kombu and its drivers raise many types; any of them means down
        logger.warning("health: broker check failed: %s", type(exc).__name__)
        return {"status": UNHEALTHY, "transport": broker_transport(), "error": type(exc).__name__}
    return {"status": HEALTHY, "transport": broker_transport()}


def worker_queues() -> list[str]:
    """The queues some worker must consume: steps, booking and pacing."""
    names = (settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_BOOKING_QUEUE, settings.CELERY_PACING_QUEUE)
    return list(dict.fromkeys(names))


def heartbeat_roles() -> list[str]:
    """The heartbeats readiness wants: ``worker:<queue>`` for each queue, and ``beat``."""
    return [worker_role(queue) for queue in worker_queues()] + [BEAT]


def queue_depths() -> dict[str, int]:
    """How many tasks wait in each queue some worker must consume (a queue the broker does not know is empty);
    raises when the broker cannot be reached within ``BROKER_TIMEOUT_S``."""
    from kombu.exceptions import ChannelError

    from buyer.celery import app

    depths: dict[str, int] = {}
    with app.connection_for_read(connect_timeout=BROKER_TIMEOUT_S) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=BROKER_TIMEOUT_S)
        channel = conn.default_channel
        for queue in worker_queues():
            try:
                depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:
                depths[queue] = 0
    return depths


def heartbeats(*, database_ok: bool = True) -> dict[str, dict[str, Any]]:
    """Per role (``worker:<queue>`` for each queue, ``beat``): whether its heartbeat is fresh (younger than
    ``HEALTH_HEARTBEAT_STALE_SECONDS``), when it was written and by whom."""
    roles = heartbeat_roles()
    if not database_ok:
        return {role: {"status": UNKNOWN, "detail": "the database is unavailable"} for role in roles}
    try:
        seen = {row.role: row for row in Heartbeat.objects.filter(role__in=roles)}
    except DatabaseError as exc:
        return {role: {"status": UNKNOWN, "error": type(exc).__name__} for role in roles}
    now = timezone.now()
    stale_after = settings.HEALTH_HEARTBEAT_STALE_SECONDS
    report: dict[str, dict[str, Any]] = {}
    for role in roles:
        row = seen.get(role)
        if row is None:
            report[role] = {"status": UNHEALTHY, "detail": "no heartbeat yet"}
            continue
        age = max(0.0, (now - row.seen_at).total_seconds())
        fresh = age <= stale_after
        report[role] = {
            "status": HEALTHY if fresh else UNHEALTHY,
            "seen_at": row.seen_at.isoformat(),
            "age_s": round(age, 1),
            "hostname": row.hostname,
            **({} if fresh else {"detail": f"no heartbeat for more than {stale_after} s"}),
        }
    return report


def readiness() -> dict[str, Any]:
    """``ready`` when the database, the broker and every heartbeat are healthy; otherwise ``unready`` and
    ``failed`` names what is not."""
    db = timed(database)
    checks: dict[str, Any] = {"database": db, "broker": timed(broker)}
    checks.update(heartbeats(database_ok=db["status"] == HEALTHY))
    failed = [name for name, check in checks.items() if check["status"] != HEALTHY]
    if db["status"] != HEALTHY:  # the heartbeats cannot be read then: the database is what failed
        failed = [name for name in failed if checks[name]["status"] != UNKNOWN]
    return {
        "status": "unready" if failed else "ready",
        "failed": failed,
        "checks": checks,
        "checked_at": timezone.now(),
    }


def public_readiness() -> dict[str, Any]:
    """``readiness()`` for the public route: without who wrote the heartbeats (hostnames), kept for
    ``READINESS_KEPT_S`` and computed by one caller at a time."""
    global _readiness_kept
    with _readiness_lock:
        now = time.monotonic()
        if _readiness_kept is not None and now - _readiness_kept[0] < READINESS_KEPT_S:
            return _readiness_kept[1]
        report = readiness()
        for check in report["checks"].values():
            check.pop("hostname", None)
        _readiness_kept = (time.monotonic(), report)
        return report
