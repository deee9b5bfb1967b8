"""A worker on the embedded broker looks for work every CELERY_EMBEDDED_POLL_SECONDS, not kombu's second."""

from __future__ import annotations

from kombu.transport import sqlalchemy

from buyer.celery import _embedded_broker_polling


def test_the_embedded_broker_is_polled_at_the_configured_interval(settings, monkeypatch):
    monkeypatch.setattr(sqlalchemy.Transport, "polling_interval", 1.0)
    settings.CELERY_BROKER_URL = "sqla+sqlite:////tmp/broker.sqlite3"
    settings.CELERY_EMBEDDED_POLL_SECONDS = 0.05
    _embedded_broker_polling()
    assert sqlalchemy.Transport.polling_interval == 0.05


def test_a_redis_broker_is_left_alone(settings, monkeypatch):
    monkeypatch.setattr(sqlalchemy.Transport, "polling_interval", 1.0)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    _embedded_broker_polling()
    assert sqlalchemy.Transport.polling_interval == 1.0


def test_the_option_is_not_handed_to_sqlalchemy():
    # kombu passes every transport option to create_engine(), which refuses polling_interval.
    from django.conf import settings

    assert "polling_interval" not in getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
