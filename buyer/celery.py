"""The Celery application; configuration comes from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")

app = Celery("buyer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every worker writes the heartbeat of the queues it consumes (readiness reads it; works on every broker).
app.steps["worker"].add("buyer.health.heartbeat:HeartbeatStep")

# Celery's Django fixup closes every database connection before and after each task and, in a prefork child,
# the whole connection pool too: each task then built a new pool and a new PostgreSQL connection (its wait was
# a third of a booking job's time). Past this many tasks it still does (a recycle every 2 x N tasks); between,
# ``_connections_to_pool`` hands the connection back to the pool the way Django does after a request.
app.conf["CELERY_DB_REUSE_MAX"] = 5000


@worker_init.connect
def _embedded_broker_polling(**kwargs: object) -> None:
    """Poll the embedded broker every CELERY_EMBEDDED_POLL_SECONDS instead of kombu's second.

    Set on the transport class: kombu's SQLAlchemy transport hands every transport option to create_engine(),
    which refuses ``polling_interval``."""
    from django.conf import settings

    if str(settings.CELERY_BROKER_URL).startswith("sqla+"):
        from kombu.transport import sqlalchemy

        sqlalchemy.Transport.polling_interval = settings.CELERY_EMBEDDED_POLL_SECONDS


@worker_init.connect
def _adcp_preloaded(**kwargs: object) -> None:
    """Import the AdCP client in the worker's parent, before the pool forks, when AdCP sellers exist (or
    ``ADCP_PRELOAD=on``): its typed models cost ~550 MiB per process, which the children then share
    copy-on-write instead of each importing its own (``gc.freeze`` keeps the collector off those pages)."""
    from buyer.sellers.adcp_preload import adcp_preload_wanted, preload_adcp

    if adcp_preload_wanted():
        preload_adcp()


@task_prerun.connect
@task_postrun.connect
def _connections_to_pool(sender: object = None, **kwargs: object) -> None:
    """What Django does around a request: a connection that is broken or past its age is closed (with a pool,
    given back to it), so a task starts on a healthy connection and never holds one between tasks."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
