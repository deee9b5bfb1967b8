"""``/metrics`` on a running stack: two web workers' HTTP counters summed, the worker's step durations and the
queues read from the database and the broker."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import API_KEY, Api

pytestmark = pytest.mark.stack


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_sum_the_web_workers_and_report_the_workers_steps(make_stack, brief):
    stack = make_stack(web_workers=2)
    api = Api(stack)
    job = api.wait_for(api.submit(brief, auto_approve=True), "completed", "failed")
    assert job["status"] == "completed", job
    requests = 40
    # New connections each time, so both web workers take some of them.
    for _ in range(requests):
        assert httpx.get(f"{stack.web_url}/health", timeout=10).status_code == 200
    got = scrape(api.http)
    health = ("buyer_http_requests_total", (("method", "GET"), ("route", "/health"), ("status", "200")))
    assert got[health] >= requests  # plus the launcher's own health checks
    assert got[("buyer_http_requests_total", (("method", "POST"), ("route", "/bookings"), ("status", "202")))] == 1
    for stage in ("plan", "research", "book"):
        assert got[("buyer_step_duration_seconds_count", (("outcome", "ok"), ("stage", stage)))] >= 1
    assert got[("buyer_jobs", (("status", "completed"),))] == 1
    assert got[("buyer_metrics_source_up", (("source", "database"),))] == 1
    assert got[("buyer_metrics_source_up", (("source", "broker"),))] == 1
    queues = {dict(labels)["queue"] for name, labels in got if name == "buyer_queue_depth"}
    assert len(queues) == 3
    fresh = {
        dict(labels)["role"]: value for (name, labels), value in got.items() if name == "buyer_worker_heartbeat_fresh"
    }
    assert set(fresh.values()) == {1}, fresh
