"""``GET /metrics``: who may read it, and that each figure comes from what the product holds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from buyer.health.models import BEAT, Heartbeat, worker_role
from buyer.llm.models import LlmCall
from buyer.metrics import collect, views
from buyer.metrics.models import StepTiming
from buyer.metrics.multiproc import ENV, metrics_dir_prepare
from buyer.metrics.steps import step_timing_record
from campaigns.models import JobStage, JobStatus
from campaigns.steps import run_step
from pacing.models import PacingAlert
from tests.factories import BookingJobFactory, SellerFactory

pytestmark = pytest.mark.django_db


def key(*scopes: str) -> str:
    return api_key_create(name="scraper", scopes=list(scopes))[1]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(client: Client, secret: str) -> dict:
    response = client.get("/metrics", HTTP_X_API_KEY=secret)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def test_only_a_metrics_or_admin_key_reads_metrics_and_a_metrics_key_reads_nothing_else(client: Client):
    metrics_key, admin_key, read_key = key(Scope.METRICS), key(Scope.ADMIN), key(Scope.READ)
    unauthorized = client.get("/metrics")
    assert unauthorized.status_code == 401 and unauthorized.json() == {"detail": "Invalid or missing API key"}
    assert client.get("/metrics", HTTP_X_API_KEY="mba_nope_nope").status_code == 401
    refused = client.get("/metrics", HTTP_X_API_KEY=read_key)
    assert refused.status_code == 403 and "metrics" in refused.json()["detail"]
    assert client.get("/metrics", HTTP_X_API_KEY=metrics_key).status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_key}").status_code == 200  # Prometheus
    assert client.get("/metrics", HTTP_X_API_KEY=admin_key).status_code == 200
    assert client.post("/metrics", HTTP_X_API_KEY=metrics_key).status_code == 405
    # A key for scraping is not a key for the API.
    assert client.get("/bookings", HTTP_X_API_KEY=metrics_key).status_code == 403
    assert client.get("/bookings", HTTP_X_API_KEY=read_key).status_code == 200


def test_jobs_sellers_llm_calls_alerts_and_heartbeats_are_read_from_the_database(client: Client, settings):
    for status, count in [(JobStatus.COMPLETED, 3), (JobStatus.FAILED, 1), (JobStatus.AWAITING_APPROVAL, 2)]:
        BookingJobFactory.create_batch(count, status=status)
    seller = SellerFactory(name="Acme Video", calls_total=40, errors_total=3, latency_ms=250.0, breaker_state="open")
    for role, tokens, micros, outcome in [
        ("planner", 100, 1500, "ok"),
        ("planner", 50, 500, "ok"),
        ("planner", 0, 0, "error"),
    ]:
        LlmCall.objects.create(
            agent_role=role,
            requested_model="gpt-x",
            served_model="gpt-x" if outcome == "ok" else "",
            input_tokens=tokens,
            output_tokens=tokens // 2,
            cost_micros=micros,
            outcome=outcome,
        )
    job = BookingJobFactory(status=JobStatus.COMPLETED)
    now = timezone.now()
    common = dict(job=job, scope="campaign", direction="under", opened_at=now, updated_at=now)
    PacingAlert.objects.create(scope_key="campaign", level="critical", peak_level="critical", **common)
    PacingAlert.objects.create(scope_key="channel:ctv", level="warning", peak_level="warning", **common)
    PacingAlert.objects.create(
        scope_key="channel:dooh", level="warning", peak_level="warning", resolved_at=now, **common
    )
    Heartbeat.objects.create(role=worker_role(settings.CELERY_TASK_DEFAULT_QUEUE), hostname="w1", seen_at=now)
    Heartbeat.objects.create(role=BEAT, hostname="w1", seen_at=now - timedelta(hours=1))

    got = scrape(client, key(Scope.METRICS))
    assert got[("buyer_jobs", (("status", "completed"),))] == 4
    assert got[("buyer_jobs", (("status", "failed"),))] == 1
    assert got[("buyer_jobs", (("status", "awaiting_approval"),))] == 2
    assert got[("buyer_jobs", (("status", "cancelled"),))] == 0
    labels = (("seller", "Acme Video"), ("seller_id", str(seller.pk)))
    assert got[("buyer_seller_calls_total", labels)] == 40
    assert got[("buyer_seller_errors_total", labels)] == 3
    assert got[("buyer_seller_latency_seconds", labels)] == 0.25
    assert got[("buyer_seller_breaker_state", (*labels, ("state", "open")))] == 1
    assert got[("buyer_seller_breaker_state", (*labels, ("state", "closed")))] == 0
    planner = (("agent_role", "planner"), ("model", "gpt-x"))
    assert got[("buyer_llm_calls_total", (*planner, ("outcome", "ok")))] == 2
    assert got[("buyer_llm_calls_total", (*planner, ("outcome", "error")))] == 1
    assert got[("buyer_llm_tokens_total", (*planner[:1], ("kind", "input"), *planner[1:]))] == 150
    assert got[("buyer_llm_tokens_total", (*planner[:1], ("kind", "output"), *planner[1:]))] == 75
    assert got[("buyer_llm_cost_usd_total", planner)] == pytest.approx(0.002)
    assert got[("buyer_pacing_alerts_open", (("level", "critical"),))] == 1
    assert got[("buyer_pacing_alerts_open", (("level", "warning"),))] == 1
    steps_role = (("role", worker_role(settings.CELERY_TASK_DEFAULT_QUEUE)),)
    assert got[("buyer_worker_heartbeat_fresh", steps_role)] == 1
    assert got[("buyer_worker_heartbeat_fresh", (("role", BEAT),))] == 0
    assert got[("buyer_worker_heartbeat_age_seconds", (("role", BEAT),))] >= 3600
    assert got[("buyer_worker_heartbeat_fresh", (("role", worker_role(settings.CELERY_PACING_QUEUE)),))] == 0
    assert got[("buyer_metrics_source_up", (("source", "database"),))] == 1
    assert got[("buyer_metrics_source_up", (("source", "broker"),))] == 1
    assert got[("buyer_build_info", (("version", settings.VERSION),))] == 1


def test_queue_depth_counts_the_tasks_waiting_in_each_queue(client: Client, settings):
    from kombu import Producer, Queue

    from buyer.celery import app

    waiting = Queue(settings.CELERY_PACING_QUEUE)
    with app.connection_for_write() as conn:
        producer = Producer(conn.default_channel)
        for _ in range(3):
            producer.publish({"waiting": True}, routing_key=waiting.name, declare=[waiting])
    try:
        got = scrape(client, key(Scope.METRICS))
        assert got[("buyer_queue_depth", (("queue", settings.CELERY_PACING_QUEUE),))] == 3
        assert ("buyer_queue_depth", (("queue", settings.CELERY_BOOKING_QUEUE),)) in got
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(settings.CELERY_PACING_QUEUE)


def test_a_source_that_cannot_be_read_is_reported_down_and_the_rest_still_answers(client: Client, monkeypatch):
    def database_down():
        raise OperationalError("connection refused")
        yield  # pragma: no cover - a generator, as the readers are

    monkeypatch.setitem(collect.SOURCES, collect.DATABASE, (collect.job_families, database_down))
    got = scrape(client, key(Scope.METRICS))
    assert got[("buyer_metrics_source_up", (("source", "database"),))] == 0
    assert not any(name == "buyer_jobs" for name, _ in got)  # left out, not reported as zero
    assert got[("buyer_metrics_source_up", (("source", "broker"),))] == 1


def test_step_durations_fall_in_their_buckets_and_only_ever_add_up():
    step_timing_record(stage="book", outcome="ok", seconds=0.3)
    step_timing_record(stage="book", outcome="ok", seconds=0.3)
    step_timing_record(stage="book", outcome="ok", seconds=7.0)
    step_timing_record(stage="book", outcome="ok", seconds=10_000)
    row = StepTiming.objects.get(stage="book", outcome="ok")
    assert row.count == 4 and row.sum_seconds == pytest.approx(10_007.6)
    got = samples(generate_latest(_registry(collect.step_families)).decode())
    book = (("outcome", "ok"), ("stage", "book"))
    bucket = lambda le: got[("buyer_step_duration_seconds_bucket", (("le", le), *book))]  # noqa: E731
    assert bucket("0.25") == 0 and bucket("0.5") == 2 and bucket("5.0") == 2 and bucket("10.0") == 3
    assert bucket("300.0") == 3 and bucket("+Inf") == 4
    assert got[("buyer_step_duration_seconds_count", book)] == 4


def _registry(reader) -> CollectorRegistry:
    class One:
        def collect(self):
            return reader()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())
    return registry


def test_a_step_that_runs_is_timed_with_its_outcome_and_one_not_due_is_not(monkeypatch):
    job = BookingJobFactory(status=JobStatus.PENDING, stage=JobStage.PLAN)

    def fails(job):
        raise RuntimeError("seller exploded")

    monkeypatch.setattr("campaigns.steps.job_retry_later", lambda job, seconds: None)
    run_step(str(job.pk), JobStage.PLAN, fails)
    assert StepTiming.objects.get(stage="plan", outcome="error").count == 1
    job.refresh_from_db()
    job.lease_expires_at = None
    job.save(update_fields=["lease_expires_at"])
    run_step(str(job.pk), JobStage.PLAN, lambda job: None)
    assert StepTiming.objects.get(stage="plan", outcome="ok").count == 1
    run_step(str(job.pk), JobStage.BOOK, lambda job: None)  # not this job's stage: nothing ran, nothing timed
    assert not StepTiming.objects.filter(stage="book").exists()


@pytest.mark.django_db(transaction=True)
def test_http_answers_are_counted_by_route_pattern_and_status_whoever_answers_them():
    from buyer.asgi import build_application

    application = build_application()
    secret = key(Scope.ADMIN)

    async def run():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for _ in range(2):
                await client.get("/health")
            await client.get(f"/bookings/{'0' * 8}-0000-4000-8000-{'0' * 12}", headers={"X-API-Key": secret})
            await client.get("/bookings", headers={"X-API-Key": secret})
            await client.get("/bookings")
            await client.get("/no-such-route")
            await client.post("/mcp", json={})
            return (await client.get("/metrics", headers={"X-API-Key": secret})).text

    before = samples(views.exposition().decode())
    got = samples(asyncio.run(run()))

    def delta(route: str, status: str, method: str = "GET") -> float:
        name = ("buyer_http_requests_total", (("method", method), ("route", route), ("status", status)))
        return got.get(name, 0) - before.get(name, 0)

    assert delta("/health", "200") == 2
    assert delta("/bookings/<job_id>", "404") == 1  # the pattern, never the job's id
    assert delta("/bookings", "200") == 1 and delta("/bookings", "401") == 1
    assert delta("<unmatched>", "404") == 1
    assert delta("/mcp", "503", method="POST") + delta("/mcp", "401", method="POST") == 1
    assert not any("0000-4000" in dict(labels).get("route", "") for _, labels in got)
    duration = ("buyer_http_request_duration_seconds_count", (("method", "GET"), ("route", "/health")))
    assert got[duration] - before.get(duration, 0) == 2


COUNT_IN_A_PROCESS = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")
django.setup()
from buyer.metrics.http import http_observe
for _ in range({n}):
    http_observe(route="/bookings", method="GET", status=200, seconds=0.01)
"""


def test_the_web_workers_counters_are_summed_across_processes(tmp_path, monkeypatch):
    env = metrics_dir_prepare({"PATH": "/usr/bin:/bin", "BUYER_VAR_DIR": str(tmp_path)}, port=9999)
    directory = env[ENV]
    assert directory == str(tmp_path / "metrics" / "web-9999")
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", COUNT_IN_A_PROCESS.format(n=n)], env=env, check=True, timeout=60)
    monkeypatch.setenv(ENV, directory)
    got = samples(views.exposition().decode())
    labels = (("method", "GET"), ("route", "/bookings"), ("status", "200"))
    assert got[("buyer_http_requests_total", labels)] == 5
    # The next server starts from zero: an earlier run's files are removed.
    metrics_dir_prepare(env, port=9999)
    assert not list((tmp_path / "metrics" / "web-9999").glob("*.db"))
