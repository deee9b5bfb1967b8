"""The Celery application; configuration comes from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")

app = Celery("buyer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _embedded_broker_polling(**kwargs: object) -> None:
    """Poll the embedded broker every CELERY_EMBEDDED_POLL_SECONDS instead of kombu's second.

    Set on the transport class: kombu's SQLAlchemy transport hands every transport option to create_engine(),
    which refuses ``polling_interval``."""
    from django.conf import settings

    if str(settings.CELERY_BROKER_URL).startswith("sqla+"):
        from kombu.transport import sqlalchemy

        sqlalchemy.Transport.polling_interval = settings.CELERY_EMBEDDED_POLL_SECONDS
