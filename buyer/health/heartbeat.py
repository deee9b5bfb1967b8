"""Heartbeats as the processes write them: a worker bootstep for the queues a worker consumes, and a beat
scheduler that notes each tick. Both write at most every ``HEALTH_HEARTBEAT_SECONDS``; a write that fails (the
database is down) is logged and tried again next time, and never stops the worker or beat."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from celery import bootsteps
from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from buyer.health.models import BEAT, Heartbeat, worker_role

logger = logging.getLogger(__name__)


UPSERT = (
    "INSERT INTO health_heartbeat (role, hostname, seen_at) VALUES (%s, %s, now()) "
    "ON CONFLICT (role) DO UPDATE SET hostname = EXCLUDED.hostname, seen_at = EXCLUDED.seen_at"
)


def heartbeat_record(roles: list[str], hostname: str) -> None:
    """Note that ``roles`` are alive now (one row each, kept up to date), on this thread's connection."""
    now = timezone.now()
    for role in roles:
        Heartbeat.objects.update_or_create(role=role, defaults={"hostname": hostname[:255], "seen_at": now})


def heartbeat_write(roles: list[str], hostname: str) -> None:
    """What the worker and beat call: ``heartbeat_record``, except on PostgreSQL, where it writes at the
    database's clock on a connection of its own, closed at once, never the process's pool: a Celery worker's main
    process forks its pool processes, which must not inherit pooled connections from it."""
    from django.db import connection

    if connection.vendor != "postgresql":
        heartbeat_record(roles, hostname)
        return
    import psycopg

    params = {**connection.get_connection_params(), "autocommit": True}
    params.pop("cursor_factory", None)
    with psycopg.connect(**params) as own, own.cursor() as cursor:
        cursor.executemany(UPSERT, [(role, hostname[:255]) for role in roles])


def _record_quietly(roles: list[str], hostname: str) -> None:
    try:
        heartbeat_write(roles, hostname)
    except Exception as exc:  # noqa: BLE001 - a heartbeat never takes its process down; readiness will show it
        logger.warning("heartbeat of %s not written: %s", ", ".join(roles), type(exc).__name__)
    finally:
        close_old_connections()  # SQLite: a broken connection is not kept for the next beat


class HeartbeatStep(bootsteps.StartStopStep):
    """Writes ``worker:<queue>`` for every queue this worker consumes, at start and then on its timer."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_entry: Any = None

    def start(self, worker: Any) -> None:
        queues = worker.app.amqp.queues.consume_from or worker.app.amqp.queues
        roles = [worker_role(name) for name in sorted(queues)]
        args = (roles, str(worker.hostname))
        _record_quietly(*args)
        self.timer_entry = worker.timer.call_repeatedly(
            settings.HEALTH_HEARTBEAT_SECONDS, _record_quietly, args, priority=10
        )

    def stop(self, worker: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()


class HeartbeatScheduler(PersistentScheduler):
    """Celery's default scheduler, noting the ``beat`` heartbeat as it ticks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._next_heartbeat = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + settings.HEALTH_HEARTBEAT_SECONDS
            _record_quietly([BEAT], socket.gethostname())
        # Wake up in time for the next heartbeat even when no task is due for longer.
        return min(super().tick(*args, **kwargs), float(settings.HEALTH_HEARTBEAT_SECONDS))
