"""Readiness (``GET /health/ready``): the database, the broker, a fresh heartbeat from the workers of every queue
and from beat; and what every surface answers while the database or the broker is down (503, never a 500)."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace

import kombu.exceptions
import psycopg
import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from buyer.accounts.models import Role
from buyer.accounts.services import user_create
from buyer.apikeys.services import api_key_create
from buyer.health import checks
from buyer.health.heartbeat import HeartbeatScheduler, HeartbeatStep, heartbeat_record
from buyer.health.models import BEAT, Heartbeat, worker_role
from buyer.mcp.server import build_mcp_server
from tests.conftest import free_port
from tests.mcp.conftest import call, error_text
from tests.proxy import silent_server

pytestmark = pytest.mark.django_db


def all_alive(hostname: str = "worker-1@host") -> None:
    heartbeat_record([worker_role(queue) for queue in checks.worker_queues()] + [BEAT], hostname)


def ready(client: Client):
    response = client.get("/health/ready")
    return response.status_code, response.json()


def test_ready_when_the_database_the_broker_and_every_heartbeat_are_fresh(client):
    all_alive()
    status, body = ready(client)
    assert status == 200 and body["status"] == "ready" and body["failed"] == []
    assert body["checks"]["database"]["status"] == "healthy" and body["checks"]["broker"]["status"] == "healthy"
    for queue in checks.worker_queues():
        assert body["checks"][worker_role(queue)]["status"] == "healthy"
    assert "hostname" not in str(body) and "worker-1@host" not in str(body)  # public: not who runs them


def test_the_public_readiness_is_kept_a_second_and_computed_once(client, monkeypatch):
    monkeypatch.setattr(checks, "READINESS_KEPT_S", 60.0)
    monkeypatch.setattr(checks, "_readiness_kept", None)
    calls = []
    real = checks.readiness
    monkeypatch.setattr(checks, "readiness", lambda: calls.append(1) or real())
    assert ready(client)[0] == 503
    all_alive()
    assert ready(client)[0] == 503 and len(calls) == 1  # the kept answer
    monkeypatch.setattr(checks, "_readiness_kept", None)
    assert ready(client)[0] == 200 and len(calls) == 2


def test_no_heartbeat_yet_names_every_queue_and_beat(client):
    status, body = ready(client)
    assert status == 503 and body["status"] == "unready"
    assert body["failed"] == [worker_role(queue) for queue in checks.worker_queues()] + [BEAT]
    assert body["checks"][BEAT]["detail"] == "no heartbeat yet"


def test_a_stale_heartbeat_names_what_stopped(client, settings):
    all_alive()
    stale = timezone.now() - timedelta(seconds=settings.HEALTH_HEARTBEAT_STALE_SECONDS + 1)
    Heartbeat.objects.filter(role=BEAT).update(seen_at=stale)
    status, body = ready(client)
    assert status == 503 and body["failed"] == [BEAT]
    assert body["checks"][BEAT]["age_s"] > settings.HEALTH_HEARTBEAT_STALE_SECONDS


def test_an_unreachable_broker_is_named(client, monkeypatch):
    from buyer.celery import app

    all_alive()
    monkeypatch.setitem(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    status, body = ready(client)
    assert status == 503 and body["failed"] == ["broker"]
    assert "127.0.0.1:1" not in str(body)


def test_an_unreachable_database_is_named_and_the_heartbeats_are_not_guessed(client, monkeypatch):
    all_alive()
    if connection.vendor == "postgresql":
        params = connection.get_connection_params()
        monkeypatch.setattr(connection, "get_connection_params", lambda: {**params, "port": free_port()})
    else:
        monkeypatch.setattr(checks.connection, "cursor", lambda: (_ for _ in ()).throw(OperationalError("down")))
    body = checks.readiness()
    assert body["status"] == "unready" and body["failed"] == ["database"]
    assert body["checks"]["database"]["error"] and body["checks"][BEAT]["status"] == "unknown"


def test_a_hung_database_is_named_within_the_probes_timeout(client, monkeypatch, needs_postgres):
    all_alive()
    params = connection.get_connection_params()
    with silent_server() as port:
        monkeypatch.setattr(connection, "get_connection_params", lambda: {**params, "port": port})
        started = time.monotonic()
        body = checks.readiness()
        elapsed = time.monotonic() - started
    assert body["failed"] == ["database"] and body["checks"]["database"]["status"] == "unhealthy"
    assert elapsed < checks.DATABASE_PROBE_TIMEOUT_S + 1.5, elapsed


def test_a_hung_redis_answers_503_naming_it_within_its_socket_timeout(lenient, settings, needs_redis):
    """The rate-limit cache on a Redis that accepts and never answers: the API says so, it does not hang."""
    secret = api_key_create(name="caller", scopes=["read"])[1]
    with silent_server() as port:
        cache = {**settings.CACHES["ratelimit"], "LOCATION": f"redis://127.0.0.1:{port}/0"}
        settings.CACHES = {**settings.CACHES, "ratelimit": cache}
        settings.API_RATE_LIMIT_PER_MINUTE = 600
        started = time.monotonic()
        response = lenient.get("/bookings", HTTP_X_API_KEY=secret)
        elapsed = time.monotonic() - started
    assert response.status_code == 503 and response.json()["detail"].startswith("The broker is unavailable")
    assert elapsed < cache["OPTIONS"]["socket_timeout"] + 1.5, elapsed


def test_the_readiness_route_is_public_and_documented(client):
    schema = client.get("/openapi.json").json()["paths"]["/health/ready"]["get"]
    assert "security" not in schema and {"200", "503"} <= set(schema["responses"])


# --- What answers while a service is down ---------------------------------------------------------------


@pytest.fixture
def lenient() -> Client:
    """A client that gets the server's answer to an exception, as a browser or an API client does."""
    return Client(raise_request_exception=False)


def test_the_api_answers_503_json_when_the_database_is_down(lenient, monkeypatch):
    def down(*args, **kwargs):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr("campaigns.selectors.job_page", down)
    response = lenient.get("/bookings")
    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The database is unavailable; try again in a few seconds"}
    assert response["Retry-After"] == "5"


def test_a_database_error_that_is_not_an_outage_stays_a_500(lenient, monkeypatch):
    def deadlock(*args, **kwargs):
        raise psycopg.errors.DeadlockDetected("deadlock detected")

    monkeypatch.setattr("campaigns.selectors.job_page", deadlock)
    response = lenient.get("/bookings")
    assert response.status_code == 500 and response.json() == {"detail": "Internal server error"}


def test_the_api_answers_503_json_naming_the_broker_when_a_job_cannot_be_queued(lenient, monkeypatch):
    def down(*args, **kwargs):
        raise kombu.exceptions.OperationalError("broker refused")

    monkeypatch.setattr("campaigns.services.job_create_from_brief", down)
    response = lenient.post("/bookings", {"brief": {"name": "x"}}, content_type="application/json")
    assert response.status_code in (422, 503)  # the brief is checked first
    start = timezone.now().date() + timedelta(days=7)
    brief = {
        "name": "Outage", "objectives": ["reach"], "budget": 1000, "channels": ["ctv"],
        "start_date": start.isoformat(), "end_date": (start + timedelta(days=10)).isoformat(),
    }  # fmt: skip
    response = lenient.post("/bookings", {"brief": brief}, content_type="application/json")
    assert response.status_code == 503 and response.json()["detail"].startswith("The broker is unavailable")


def test_a_page_answers_the_503_page_when_the_database_is_down(lenient, monkeypatch):
    user_create(username="mia", email="mia@example.com", password="s3cret-pass-word", role=Role.MEDIA_BUYER)
    assert lenient.login(username="mia", password="s3cret-pass-word")

    def down(*args, **kwargs):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr("campaigns.selectors.job_list_for_dashboard", down)
    response = lenient.get("/app/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"The database is unavailable" in response.content and b"<html" in response.content


def test_an_mcp_tool_says_the_database_is_down_without_the_drivers_message(monkeypatch):
    def down(*args, **kwargs):
        raise psycopg.OperationalError("could not connect to server at 10.0.0.7:5432")

    monkeypatch.setattr("campaigns.selectors.job_page", down)
    text = error_text(call(build_mcp_server(), "list_bookings", {}))
    assert text == "The database is unavailable; try again in a few seconds"


# --- Who writes the heartbeats ---------------------------------------------------------------------------


class Timer:
    def __init__(self):
        self.calls = []

    def call_repeatedly(self, seconds, fn, args, priority=0):
        self.calls.append((seconds, fn, args))
        return SimpleNamespace(cancel=lambda: self.calls.append("cancelled"))


@pytest.mark.django_db(transaction=True)  # a heartbeat closes its connection after writing
def test_a_worker_writes_the_heartbeat_of_each_queue_it_consumes_at_start_and_on_its_timer(settings):
    from buyer.celery import app

    timer = Timer()
    queues = {settings.CELERY_BOOKING_QUEUE: None, settings.CELERY_TASK_DEFAULT_QUEUE: None}
    worker = SimpleNamespace(
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=queues))),
        hostname="w1@host",
        timer=timer,
    )
    step = HeartbeatStep(SimpleNamespace(app=app))
    step.start(worker)
    written = dict(Heartbeat.objects.values_list("role", "hostname"))
    assert written == {worker_role(q): "w1@host" for q in queues}
    ((seconds, fn, args),) = timer.calls
    assert seconds == settings.HEALTH_HEARTBEAT_SECONDS
    first = Heartbeat.objects.get(role=worker_role(settings.CELERY_BOOKING_QUEUE)).seen_at
    fn(*args)
    assert Heartbeat.objects.get(role=worker_role(settings.CELERY_BOOKING_QUEUE)).seen_at > first
    step.stop(worker)
    assert timer.calls[-1] == "cancelled"


def test_a_heartbeat_that_cannot_be_written_never_stops_the_worker(monkeypatch, caplog):
    from buyer.health import heartbeat

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(heartbeat, "heartbeat_write", down)
    heartbeat._record_quietly([BEAT], "host")  # no exception
    assert "heartbeat of beat not written: OperationalError" in caplog.text


@pytest.mark.django_db(transaction=True)  # a heartbeat closes its connection after writing
def test_beat_writes_its_heartbeat_as_it_ticks(settings, tmp_path):
    from buyer.celery import app

    scheduler = HeartbeatScheduler(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    scheduler.setup_schedule()
    try:
        delay = scheduler.tick()
    finally:
        scheduler.close()
    assert Heartbeat.objects.filter(role=BEAT).exists()
    assert delay <= settings.HEALTH_HEARTBEAT_SECONDS


def test_the_heartbeat_healthcheck_command_exits_by_freshness(capsys):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="Not fresh: beat"):
        call_command("heartbeat_fresh", "beat")
    all_alive()
    call_command("heartbeat_fresh", "beat", "worker")
    assert "Fresh: " in capsys.readouterr().out
    with pytest.raises(CommandError, match="No such heartbeat: worker:nope"):
        call_command("heartbeat_fresh", "worker:nope")
