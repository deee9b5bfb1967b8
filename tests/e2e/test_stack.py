"""End to end with real processes: web (uvicorn), a Celery worker with beat, and the sandbox seller."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Api

pytestmark = pytest.mark.stack


def test_a_brief_reaches_approval_priced_by_seller_quotes_and_books_seller_deal_ids(make_stack, brief):
    stack = make_stack()
    api = Api(stack)
    # The public documentation works under uvicorn, its assets served locally (no CDN).
    public = httpx.Client(base_url=stack.web_url)
    assert public.get("/openapi.json").json()["info"]["title"]
    for page, asset in [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]:
        html = public.get(page).text
        assert asset in html and "cdn" not in html.lower()
        src = next(part for part in html.split('"') if part.endswith(asset))
        assert public.get(src).status_code == 200
    assert public.get("/bookings").status_code == 401
    job_id = api.submit(brief)
    job = api.wait_for(job_id, "awaiting_approval", "failed")
    assert job["status"] == "awaiting_approval", job
    assert job["recommendations"]
    seller = httpx.Client(base_url=stack.seller_url)
    for line in job["recommendations"]:
        quote = seller.get(f"/api/v1/quotes/{line['quote_id']}").json()["quote"]
        assert line["cpm"] == quote["pricing"]["final_cpm"]["amount_micros"] / 1_000_000
        assert line["cpm"] <= brief["kpis"]["max_cpm_usd"]
    assert sum(line["cost"] for line in job["recommendations"]) <= brief["budget"]

    response = api.http.post(f"/bookings/{job_id}/approve-all")
    assert response.status_code == 202 and response.json()["approved_count"] == len(job["recommendations"])
    job = api.wait_for(job_id, "completed", "failed")
    assert job["status"] == "completed", job
    assert len(job["booked_lines"]) == len(job["recommendations"])
    for line in job["booked_lines"]:
        deal = seller.get(f"/api/v1/deals/{line['deal_id']}")
        assert deal.status_code == 200
        assert deal.json()["deal"]["quote_id"] == line["quote_id"]

    events = api.http.get("/events", params={"flow_id": job_id, "limit": 500}).json()["events"]
    kinds = {e["event_type"] for e in events}
    assert {
        "campaign.created",
        "budget.allocated",
        "quote.received",
        "approval.requested",
        "approval.granted",
        "deal.booked",
    } <= kinds
    assert all(e["flow_id"] == job_id for e in events)


def test_auto_approve_completes_without_a_human_and_a_job_with_nothing_to_buy_fails(make_stack, brief):
    api = Api(make_stack())
    done = api.submit(brief, auto_approve=True)
    nothing = api.submit({**brief, "channels": ["dooh"]}, auto_approve=True)
    job = api.wait_for(done, "completed", "failed")
    assert job["status"] == "completed" and job["booked_lines"], job
    failed = api.wait_for(nothing, "completed", "failed")
    assert failed["status"] == "failed" and failed["failure_reason"], failed
    assert failed["booked_lines"] == []


def test_jobs_survive_a_restart_of_web_and_worker(make_stack, brief):
    # A slow seller makes research take seconds, so the worker can be killed in the middle of it.
    stack = make_stack(sandbox_args=["--latency-ms", "1200"])
    api = Api(stack)
    waiting = api.submit(brief)
    api.wait_for(waiting, "awaiting_approval")
    in_flight = api.submit({**brief, "name": "Killed mid-flow"}, auto_approve=True)
    api.wait_for(in_flight, "running")

    stack.stop("web", "worker", kill=True)
    stack.start("worker", "web")
    stack.wait_healthy()

    assert api.job(waiting)["status"] == "awaiting_approval"
    assert api.http.post(f"/bookings/{waiting}/approve-all").status_code == 202
    approved = api.wait_for(waiting, "completed", "failed", timeout=120)
    assert approved["status"] == "completed" and approved["booked_lines"], approved
    resumed = api.wait_for(in_flight, "completed", "failed", timeout=120)
    assert resumed["status"] == "completed", resumed
    # Nothing was booked twice: one seller deal per booked line.
    deal_ids = [line["deal_id"] for line in resumed["booked_lines"]]
    assert len(deal_ids) == len(set(deal_ids)) == len(resumed["recommendations"])


def test_refresh_now_reads_delivery_on_the_workers_pacing_queue(make_stack, brief):
    import time
    from datetime import date, timedelta

    # The sandbox reports delivery from the flight's start although the deals are booked now: no grace period,
    # so what it reports is judged at once.
    stack = make_stack(sandbox_args=["--delivery-profile", "*=under:0.6"], PACING_GRACE_HOURS="0")
    api = Api(stack)
    start = date.fromisoformat(brief["start_date"]) - timedelta(days=12)  # a flight that began days ago
    brief = {**brief, "start_date": start.isoformat(), "end_date": (start + timedelta(days=29)).isoformat()}
    job_id = api.submit(brief, auto_approve=True)
    assert api.wait_for(job_id, "completed", "failed")["status"] == "completed"

    response = api.http.post(f"/pacing/campaigns/{job_id}/refresh")
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    deadline = time.monotonic() + 60
    while (run := api.http.get(f"/pacing/runs/{run_id}").json())["status"] not in {"done", "failed"}:
        assert time.monotonic() < deadline, run
        time.sleep(0.3)
    assert run["status"] == "done", run

    pacing = api.http.get(f"/pacing/campaigns/{job_id}").json()
    assert pacing["pacing"]["status"] == "behind" and pacing["pacing"]["alert_level"] == "critical"
    assert all(deal["delivery_as_of"] and deal["deal_status"] == "delivering" for deal in pacing["deals"])
    critical = api.http.get("/events", params={"event_type": "pacing.deviation_detected", "flow_id": job_id})
    assert critical.json()["total"] >= 1
