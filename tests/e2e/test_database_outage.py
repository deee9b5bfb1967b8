"""The database goes away under a running stack (a TCP proxy in front of PostgreSQL, stopped and started): the
readiness check names it within 2 s, the API answers a JSON 503 within 3 s, both are healthy again within 5 s
of its return, and the job that was running completes."""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.e2e.conftest import API_KEY, Api, database_url
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("needs_postgres")]


def timed_get(http: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = http.get(path)
    return response, time.monotonic() - started


def until(predicate, *, timeout: float, why: list | None = None) -> float:
    """Seconds until ``predicate()`` holds (polled every 0.1 s); fails past ``timeout`` (saying ``why[-1]``)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"not within {timeout} s: {why[-1].text if why else ''}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_database_outage_is_reported_quickly_and_recovered_from_in_seconds(make_stack, brief):
    direct = urlsplit(database_url())
    proxy = TcpProxy(direct.hostname or "127.0.0.1", direct.port or 5432)
    proxy.start()
    through_proxy = urlunsplit(direct._replace(netloc=f"{direct.username}@127.0.0.1:{proxy.port}"))
    try:
        stack = make_stack(
            DATABASE_URL=through_proxy,
            HEALTH_HEARTBEAT_SECONDS="1",
            HEALTH_HEARTBEAT_STALE_SECONDS="10",
            sandbox_args=["--latency-ms", "400"],  # a job takes seconds: the outage meets it running
        )
        api = Api(stack)
        http = httpx.Client(base_url=stack.web_url, headers={"X-API-Key": API_KEY}, timeout=30)
        last: list[httpx.Response] = []
        until(lambda: last.append(http.get("/health/ready")) or last[-1].status_code == 200, timeout=90, why=last)
        job_id = api.submit(brief, auto_approve=True)
        until(lambda: api.job(job_id)["status"] == "running", timeout=10)

        proxy.stop()
        # Readiness is kept a second per web process: the outage shows within that second plus the probe.
        seen: list[httpx.Response] = []
        took = until(lambda: seen.append(http.get("/health/ready")) or seen[-1].status_code == 503, timeout=2, why=seen)
        assert "database" in seen[-1].json()["failed"] and took <= 2, (took, seen[-1].text)
        for path in ("/bookings", f"/bookings/{job_id}", "/deals"):
            answer, took = timed_get(http, path)
            assert answer.status_code == 503 and took <= 3, (path, took, answer.text)
            assert answer.json()["detail"].startswith("The database is unavailable") and answer.headers["Retry-After"]
        assert http.get("/health").status_code == 200  # liveness: the process answers
        time.sleep(3)  # an outage longer than the pool's first reconnection delays

        proxy.start()
        assert until(lambda: http.get("/health/ready").status_code == 200, timeout=5) <= 5
        assert until(lambda: http.get("/bookings").status_code == 200, timeout=5) <= 5
        assert api.wait_for(job_id, "completed", "failed", timeout=120)["status"] == "completed"
    finally:
        proxy.stop()
