"""A prefork worker keeps its PostgreSQL connection pool from task to task (Celery's Django fixup used to close
the pool around every task, so each task connected anew), and a task still starts on a checked connection."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import OperationalError, connection, connections

from buyer.celery import _connections_to_pool, app

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("needs_postgres")]


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _task_boundary(fixup: DjangoWorkerFixup) -> None:
    """What a prefork child runs between two tasks: the end of one, then the start of the next."""
    task = SimpleNamespace(request=SimpleNamespace(is_eager=False))
    fixup.on_task_postrun(sender=task)
    _connections_to_pool(sender=task)
    fixup.on_task_prerun(sender=task)
    _connections_to_pool(sender=task)


def test_the_pool_and_its_connection_outlive_a_task():
    fixup = DjangoWorkerFixup(app)
    fixup.worker = SimpleNamespace(pool_cls="celery.concurrency.prefork:TaskPool")
    pool = connection.pool
    _backend_pid()
    opened = pool.get_stats()["connections_num"]
    for _ in range(3):
        _task_boundary(fixup)
        assert connection.connection is None  # handed back between tasks, not held
        _backend_pid()
    assert connection.pool is pool
    assert pool.get_stats()["connections_num"] == opened  # no task connected anew


def test_a_connection_the_server_ended_is_not_handed_to_the_next_task():
    fixup = DjangoWorkerFixup(app)
    fixup.worker = SimpleNamespace(pool_cls="celery.concurrency.prefork:TaskPool")
    first = _backend_pid()
    other = connections.create_connection("default")  # the server ends that backend, as a restart would
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    finally:
        other.close()
    with pytest.raises(OperationalError):  # the task that meets it fails (and is retried) ...
        _backend_pid()
    _task_boundary(fixup)
    assert _backend_pid() != first  # ... and the next one gets a working connection
