"""Every MCP tool through the official client, in process, on the test database.

Tools run on the SDK's worker thread with their own database connection, hence ``transactional_db``. For each
tool: a valid call, an unknown argument refused, and a domain error answered as a tool error.
"""

from __future__ import annotations

import json
from datetime import timedelta

import anyio
import pytest
from django.utils import timezone
from mcp import Client

from buyer.events.models import Event
from buyer.health.checks import worker_queues
from buyer.health.heartbeat import heartbeat_record
from buyer.health.models import worker_role
from buyer.mcp.server import SERVER_NAME
from buyer.mcp.tools import TOOLS
from campaigns.models import BookedDeal, BookingJob, DealStatus, JobStage, JobStatus, RecommendationStatus
from tests.factories import BookedDealFactory, BookingJobFactory, RecommendationFactory
from tests.mcp.conftest import ADMIN, READER, WRITER, call, error_text, ok

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED_TOOLS = {
    "get_setup_status",
    "health_check",
    "get_config",
    "list_campaigns",
    "get_campaign_status",
    "summarize_campaign",
    "check_pacing",
    "review_budgets",
    "list_bookings",
    "get_booking",
    "create_booking",
    "approve_recommendations",
    "list_deals",
    "search_products",
    "list_events",
}
UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"


def a_brief(**overrides):
    start = timezone.now().date() + timedelta(days=10)
    body = {
        "name": "Holiday push",
        "objectives": ["brand awareness", "reach"],
        "budget": 60000,
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=30)).isoformat(),
        "kpis": {"max_cpm_usd": 40},
        "channels": ["branding", "ctv"],
    }
    return body | overrides


def awaiting_job(lines: int = 2) -> BookingJob:
    job = BookingJobFactory()
    for _ in range(lines):
        RecommendationFactory(job=job)
    return job


def book(job: BookingJob, *, status: str = DealStatus.BOOKED) -> list[BookedDeal]:
    deals = []
    for rec in job.recommendations.all():
        deals.append(
            BookedDealFactory(recommendation=rec, deal_id=f"deal-{rec.pk}", deal_type=rec.deal_type, status=status)
        )
    BookingJob.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, stage=JobStage.DONE, progress=1.0)
    return deals


# --- The registry ---------------------------------------------------------------------------------------------


def test_the_server_lists_the_fourteen_tools_each_refusing_unknown_arguments(server):
    async def listing():
        async with Client(server) as client:
            return client.server_info, (await client.list_tools()).tools

    info, tools = anyio.run(listing)
    assert info.name == SERVER_NAME
    assert {t.name for t in tools} == EXPECTED_TOOLS == set(TOOLS)
    for t in tools:
        assert t.input_schema["additionalProperties"] is False, t.name
        assert t.description and t.annotations is not None
    by_name = {t.name: t for t in tools}
    assert by_name["list_bookings"].annotations.read_only_hint is True
    assert by_name["approve_recommendations"].annotations.read_only_hint is False


@pytest.mark.parametrize("name", sorted(EXPECTED_TOOLS))
def test_every_tool_refuses_an_unknown_argument(server, name):
    text = error_text(call(server, name, {"no_such_argument": 1}))
    assert "no_such_argument" in text and "Extra inputs are not permitted" in text
    assert "Traceback" not in text


def test_without_a_principal_every_tool_refuses(server):
    assert "Authentication required" in error_text(call(server, "list_bookings", as_=None))


def test_an_unexpected_failure_is_a_generic_tool_error_without_a_stack_trace(server, monkeypatch):
    from buyer.mcp import status

    def broken():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(status, "setup_status", broken)
    text = error_text(call(server, "get_setup_status"))
    assert text == "Error executing tool get_setup_status"


# --- Foundation -----------------------------------------------------------------------------------------------


def test_setup_status_needs_sellers_and_the_database(server, settings):
    settings.SELLER_ENDPOINTS = []
    body = ok(call(server, "get_setup_status"))
    assert body["checks"]["database_accessible"] is True
    assert body["checks"]["seller_endpoints_configured"] is False and body["setup_complete"] is False
    assert body["next_steps"]
    settings.SELLER_ENDPOINTS = ["http://seller.example:8000"]
    body = ok(call(server, "get_setup_status"))
    assert body["setup_complete"] is True
    assert set(body["checks"]) == {
        "seller_endpoints_configured",
        "database_accessible",
        "api_key_configured",
        "llm_configured",
    }


def test_health_reports_each_service_and_workers_by_their_heartbeats_on_the_embedded_broker(
    server, settings, monkeypatch, tmp_path
):
    from buyer.celery import app

    embedded = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    monkeypatch.setitem(app.conf, "broker_url", embedded)
    settings.CELERY_BROKER_URL = embedded
    settings.SELLER_ENDPOINTS = ["http://seller.example:8000"]
    body = ok(call(server, "health_check"))
    services = body["services"]
    assert body["version"] == settings.VERSION
    assert services["database"]["status"] == "healthy"
    assert services["seller_connections"] == {"status": "configured", "endpoint_count": 1, "open_breakers": 0}
    assert services["event_bus"]["status"] == "healthy"
    assert services["broker"]["status"] == "healthy" and services["broker"]["transport"] == "embedded"
    assert services["worker"]["status"] == "unhealthy" and "no recent heartbeat" in services["worker"]["detail"]
    assert body["status"] == "degraded"

    heartbeat_record([worker_role(queue) for queue in worker_queues()], "worker-1@host")
    body = ok(call(server, "health_check"))
    assert body["services"]["worker"]["status"] == "healthy" and body["services"]["worker"]["workers"] == [
        "worker-1@host"
    ]
    assert body["status"] == "healthy"


def test_health_is_unhealthy_when_the_broker_is_unreachable(server, monkeypatch):
    from buyer.celery import app

    monkeypatch.setitem(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    body = ok(call(server, "health_check"))
    assert body["services"]["broker"]["status"] == "unhealthy"
    assert body["services"]["worker"]["status"] == "unhealthy"
    assert body["status"] == "unhealthy"
    assert "127.0.0.1:1" not in json.dumps(body)


def test_a_queue_whose_workers_stopped_writing_heartbeats_makes_the_worker_unhealthy(settings):
    from buyer.health.models import Heartbeat
    from buyer.mcp.status import _worker

    heartbeat_record([worker_role(queue) for queue in worker_queues()], "worker-1@host")
    assert _worker(database_ok=True)["status"] == "healthy"
    stale = timezone.now() - timedelta(seconds=settings.HEALTH_HEARTBEAT_STALE_SECONDS + 1)
    Heartbeat.objects.filter(role=worker_role(settings.CELERY_PACING_QUEUE)).update(seen_at=stale)
    worker = _worker(database_ok=True)
    assert worker["status"] == "unhealthy" and settings.CELERY_PACING_QUEUE in worker["detail"]
    assert _worker(database_ok=False)["status"] == "unknown"


def test_get_config_answers_the_settings_an_operator_needs(server, settings):
    body = ok(call(server, "get_config"))
    assert body["environment"] == settings.ENVIRONMENT
    assert body["database"] == {"engine": settings.DATABASE_ENGINE}
    assert body["llm"]["models"]["default"] == settings.DEFAULT_LLM_MODEL
    assert body["llm"]["temperature"] == settings.LLM_TEMPERATURE
    assert body["llm"]["max_tokens"] == settings.LLM_MAX_TOKENS
    assert body["agent"]["crew_max_iterations"] == settings.CREW_MAX_ITERATIONS
    assert body["cors_allowed_origins"] == settings.CORS_ALLOWED_ORIGINS
    assert body["log_level"] == settings.LOG_LEVEL


def test_get_config_never_contains_a_secret(server, settings):
    from tests.factories import SellerFactory

    secrets = {
        "API_KEY": "apikey-s3cr3t-1",
        "SECRET_KEY": "django-s3cr3t-2",
        "ANTHROPIC_API_KEY": "sk-ant-s3cr3t-3",
        "OPENDIRECT_TOKEN": "od-s3cr3t-4",
        "OPENDIRECT_API_KEY": "od-s3cr3t-5",
    }
    for name, value in secrets.items():
        setattr(settings, name, value)
    settings.DATABASE_URL = "postgresql://buyer:dbpa55word-6@db.internal:5432/buyer"
    settings.CELERY_BROKER_URL = "redis://:brokerpa55-7@redis.internal:6379/0"
    settings.REDIS_URL = settings.CELERY_BROKER_URL
    settings.SELLER_ENDPOINTS = ["http://user:urlpa55-8@seller.example:8000/agent?token=urltoken-9"]
    seller = SellerFactory(base_url="http://admin:rowpa55-10@seller-two.example:9000")
    seller.set_credential("seller-credential-11")
    seller.save()

    text = json.dumps(ok(call(server, "get_config")))
    for needle in [
        *secrets.values(),
        "dbpa55word-6",
        "brokerpa55-7",
        "urlpa55-8",
        "urltoken-9",
        "rowpa55-10",
        "seller-credential-11",
        seller.credential_ciphertext,
        "db.internal",
        "redis.internal",
    ]:
        assert needle not in text, needle
    assert "http://seller.example:8000/agent" in text and "http://seller-two.example:9000" in text


# --- Campaigns, pacing, budgets ------------------------------------------------------------------------------


def test_list_campaigns_shows_jobs_as_campaigns_with_budget_and_flight(server):
    job = awaiting_job()
    BookingJobFactory(status=JobStatus.FAILED)
    body = ok(call(server, "list_campaigns"))
    assert body["total"] == 2
    waiting = ok(call(server, "list_campaigns", {"status": "awaiting_approval"}))
    assert waiting["total"] == 1
    row = waiting["campaigns"][0]
    assert row["campaign_id"] == str(job.pk) and row["name"] == job.campaign.name
    assert row["budget"] == 50_000.0
    assert row["flight"] == {"start": job.campaign.start_date.isoformat(), "end": job.campaign.end_date.isoformat()}
    assert "Input should be" in error_text(call(server, "list_campaigns", {"status": "paused"}))


def test_campaign_status_carries_budget_and_pacing_no_data(server):
    job = awaiting_job()
    book(job)
    body = ok(call(server, "get_campaign_status", {"campaign_id": str(job.pk)}))
    assert body["campaign_id"] == str(job.pk) and body["status"] == "completed"
    assert body["booked"] == 20_000.0 and body["spent"] == 0.0 and body["delivery_pct"] == 0.0
    assert body["pacing"]["status"] == "no_data" and body["pacing"]["channel_pacing"] == []
    assert error_text(call(server, "get_campaign_status", {"campaign_id": UNKNOWN_JOB})) == "Campaign not found"
    assert error_text(call(server, "get_campaign_status", {"campaign_id": "not-a-uuid"})) == "Campaign not found"


def test_a_campaign_summary_by_the_rules_and_the_agent_only_for_a_writer(server):
    job = awaiting_job()
    book(job)
    body = ok(call(server, "summarize_campaign", {"campaign_id": str(job.pk)}, as_=READER))
    assert body["by"] == "rules" and "booked for $20,000.00" in body["text"]
    assert body["facts"]["booked_usd"] == 20_000.0
    refused = error_text(
        call(server, "summarize_campaign", {"campaign_id": str(job.pk), "use_agent": True}, as_=READER)
    )
    assert "needs a write-scoped API key" in refused
    assert error_text(call(server, "summarize_campaign", {"campaign_id": UNKNOWN_JOB})) == "Campaign not found"


def test_check_pacing_answers_no_data_until_snapshots_exist(server):
    job = awaiting_job()
    body = ok(call(server, "check_pacing", {"campaign_id": str(job.pk)}))
    assert body["status"] == "no_data"
    assert body["pacing_pct"] is None and body["deviation_pct"] is None and body["channel_pacing"] == []
    assert "snapshot" in body["message"]
    assert error_text(call(server, "check_pacing", {"campaign_id": UNKNOWN_JOB})) == "Campaign not found"


def test_review_budgets_totals_budget_booked_and_spent(server):
    waiting = awaiting_job()  # active: its budget counts, nothing booked yet
    done = awaiting_job(lines=3)
    book(done)
    cancelled = BookingJobFactory(status=JobStatus.CANCELLED)  # neither active nor booked: left out
    body = ok(call(server, "review_budgets"))
    assert body["totals"] == {"budget": 100_000.0, "booked": 30_000.0, "spent": 0.0, "remaining": 70_000.0}
    assert body["campaign_count"] == 2
    rows = {row["campaign_id"]: row for row in body["campaigns"]}
    assert set(rows) == {str(waiting.pk), str(done.pk)} and str(cancelled.pk) not in rows
    assert rows[str(done.pk)]["booked"] == 30_000.0 and rows[str(done.pk)]["delivery_pct"] == 0.0
    assert rows[str(done.pk)]["booked_pct"] == 60.0
    assert len(ok(call(server, "review_budgets", {"limit": 1}))["campaigns"]) == 1
    assert "greater than or equal to 1" in error_text(call(server, "review_budgets", {"limit": 0}))


def test_check_pacing_and_review_budgets_answer_from_the_latest_snapshot(server):
    from pacing.snapshots import snapshot_run_create, snapshot_take
    from tests.pacing.conftest import at, deliver, make_campaign

    job, deals = make_campaign(deals={"branding": 30_000_000_000, "ctv": 20_000_000_000})
    midway = at(16, 0)  # half the flight gone: half of each deal due
    deliver(deals["branding"], spend_micros=10_500_000_000, as_of=midway)  # 30 % under
    deliver(deals["ctv"], spend_micros=11_500_000_000, as_of=midway)  # 15 % over
    snapshot_take(run=snapshot_run_create(), as_of=midway)

    body = ok(call(server, "check_pacing", {"campaign_id": str(job.pk)}))
    assert (body["status"], body["pacing_pct"], body["deviation_pct"]) == ("behind", 88.0, -12.0)
    assert body["alert_level"] == "warning" and body["spent"] == 22_000.0 and body["expected"] == 25_000.0
    channels = {c["channel"]: c for c in body["channel_pacing"]}
    assert (channels["branding"]["status"], channels["branding"]["deviation_pct"]) == ("behind", -30.0)
    assert (channels["ctv"]["status"], channels["ctv"]["alert_level"]) == ("ahead", "warning")
    assert "message" not in body
    status = ok(call(server, "get_campaign_status", {"campaign_id": str(job.pk)}))
    assert status["spent"] == 22_000.0 and status["pacing"]["status"] == "behind"
    review = ok(call(server, "review_budgets"))
    assert review["totals"]["spent"] == 22_000.0
    assert review["campaigns"][0]["delivery_pct"] == 44.0


def test_check_pacing_says_when_a_campaign_has_only_just_begun_delivering(server):
    from pacing.snapshots import snapshot_run_create, snapshot_take
    from tests.pacing.conftest import at, deliver, make_campaign

    job, deals = make_campaign(deals={"ctv": 20_000_000_000})
    deliver(deals["ctv"], spend_micros=0, as_of=at(1, 18))  # nothing yet, six hours in: no alarm
    snapshot_take(run=snapshot_run_create(), as_of=at(1, 18))

    body = ok(call(server, "check_pacing", {"campaign_id": str(job.pk)}))
    assert (body["status"], body["in_grace"], body.get("alert_level")) == ("behind", True, None)
    assert body["channel_pacing"][0]["in_grace"] is True
    snapshot_take(run=snapshot_run_create(), as_of=at(2, 6))
    later = ok(call(server, "check_pacing", {"campaign_id": str(job.pk)}))
    assert (later["in_grace"], later["alert_level"]) == (False, "critical")


def test_failed_and_cancelled_deals_are_not_booked_money(server):
    job = awaiting_job()
    deals = book(job)
    BookedDeal.objects.filter(pk=deals[0].pk).update(status=DealStatus.FAILED)
    assert ok(call(server, "review_budgets"))["totals"]["booked"] == 10_000.0


# --- Bookings -------------------------------------------------------------------------------------------------


def test_list_bookings_answers_as_the_rest_api(server, client):
    awaiting_job()
    BookingJobFactory(status=JobStatus.FAILED)
    for params in ({}, {"status": "failed"}, {"limit": 1, "offset": 1}):
        rest = client.get("/bookings", params).json()
        assert ok(call(server, "list_bookings", params)) == rest
    assert "Input should be" in error_text(call(server, "list_bookings", {"status": "nope"}))


def test_get_booking_answers_as_the_rest_api(server, client):
    job = awaiting_job()
    book(job)
    rest = client.get(f"/bookings/{job.pk}").json()
    assert ok(call(server, "get_booking", {"job_id": str(job.pk)})) == rest
    assert error_text(call(server, "get_booking", {"job_id": UNKNOWN_JOB})) == "Job not found"
    assert error_text(call(server, "get_booking", {"job_id": "../etc"})) == "Job not found"


def test_create_booking_stores_the_brief_and_dispatches_the_job(server, dispatched):
    body = ok(call(server, "create_booking", {"brief": a_brief(), "auto_approve": True}, as_=WRITER))
    job = BookingJob.objects.select_related("campaign").get(pk=body["job_id"])
    assert body["status"] == "pending" and job.auto_approve is True
    assert job.campaign.budget_micros == 60_000_000_000 and job.campaign.channels == ["branding", "ctv"]
    assert dispatched == [str(job.pk)]
    assert Event.objects.filter(event_type="campaign.created", flow_id=str(job.pk)).exists()


def test_create_booking_with_an_idempotency_key_returns_the_same_job(server, dispatched):
    args = {"brief": a_brief(), "idempotency_key": "retry-1"}
    first = ok(call(server, "create_booking", args, as_=WRITER))
    assert ok(call(server, "create_booking", args, as_=WRITER))["job_id"] == first["job_id"]
    other = {"brief": a_brief(budget=1), "idempotency_key": "retry-1"}
    assert "different" in error_text(call(server, "create_booking", other, as_=WRITER))
    assert BookingJob.objects.count() == 1


@pytest.mark.parametrize(
    ("invalid", "field"),
    [
        (a_brief(end_date="2000-01-01"), "end_date"),
        (a_brief(budget=0), "budget"),
        (a_brief(name=""), "name"),
        (a_brief(channels=["carrier_pigeon"]), "channels"),
    ],
)
def test_create_booking_refuses_an_invalid_brief(server, dispatched, invalid, field):
    text = error_text(call(server, "create_booking", {"brief": invalid}, as_=WRITER))
    assert field in text
    assert BookingJob.objects.count() == 0 and dispatched == []


def test_a_read_only_key_cannot_create_or_approve(server, dispatched):
    job = awaiting_job()
    scope_error = "This API key lacks the 'write' scope"
    assert error_text(call(server, "create_booking", {"brief": a_brief()}, as_=READER)) == scope_error
    approve = {"job_id": str(job.pk), "approve_all": True}
    assert error_text(call(server, "approve_recommendations", approve, as_=READER)) == scope_error
    assert BookingJob.objects.count() == 1 and dispatched == []
    assert ok(call(server, "list_bookings", as_=READER))["total"] == 1


def test_approve_all_starts_booking_every_line(server, dispatched):
    job = awaiting_job(lines=2)
    body = ok(call(server, "approve_recommendations", {"job_id": str(job.pk), "approve_all": True}, as_=WRITER))
    assert body["status"] == "booking" and body["approved_count"] == 2 and body["rejected_count"] == 0
    assert body["total_cost"] == 20_000.0 and body["total_impressions"] == 2_000_000
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.stage == JobStage.BOOK
    assert dispatched == [str(job.pk)]
    event = Event.objects.get(event_type="approval.granted", flow_id=str(job.pk))
    assert event.payload["actor"] == WRITER.name


def test_approving_some_lines_rejects_the_others(server, dispatched):
    job = awaiting_job(lines=3)
    first = job.recommendations.order_by("priority").first()
    args = {"job_id": str(job.pk), "product_ids": [first.product_id]}
    body = ok(call(server, "approve_recommendations", args, as_=WRITER))
    assert (body["approved_count"], body["rejected_count"]) == (1, 2)
    statuses = set(job.recommendations.exclude(pk=first.pk).values_list("status", flat=True))
    assert statuses == {RecommendationStatus.REJECTED}


def test_keep_unselected_leaves_the_other_lines_for_a_later_decision(server, dispatched):
    job = awaiting_job(lines=3)
    first = job.recommendations.order_by("priority").first()
    args = {"job_id": str(job.pk), "product_ids": [first.product_id], "keep_unselected": True}
    body = ok(call(server, "approve_recommendations", args, as_=WRITER))
    assert (body["approved_count"], body["rejected_count"]) == (1, 0)
    statuses = set(job.recommendations.exclude(pk=first.pk).values_list("status", flat=True))
    assert statuses == {RecommendationStatus.PENDING_APPROVAL}
    both = {"job_id": str(job.pk), "approve_all": True, "keep_unselected": True}
    assert "with approve_all every line is named" in error_text(call(server, "approve_recommendations", both))


def test_approving_by_recommendation_id(server, dispatched):
    job = awaiting_job(lines=2)
    second = job.recommendations.order_by("priority").last()
    args = {"job_id": str(job.pk), "recommendation_ids": [str(second.pk)]}
    body = ok(call(server, "approve_recommendations", args, as_=WRITER))
    assert (body["approved_count"], body["rejected_count"]) == (1, 1)
    second.refresh_from_db()
    assert second.status == RecommendationStatus.APPROVED


def test_approval_errors_are_tool_errors(server, dispatched):
    job = awaiting_job()
    unknown = {"job_id": str(job.pk), "product_ids": ["prod-nope"]}
    assert "no line awaiting approval has product id 'prod-nope'" in error_text(
        call(server, "approve_recommendations", unknown, as_=WRITER)
    )
    by_pk = {"job_id": str(job.pk), "product_ids": [str(job.recommendations.first().pk)]}
    assert "has product id" in error_text(call(server, "approve_recommendations", by_pk, as_=WRITER))
    both = {"job_id": str(job.pk), "product_ids": ["x"], "approve_all": True}
    assert "or approve_all=true" in error_text(call(server, "approve_recommendations", both))
    neither = {"job_id": str(job.pk)}
    assert "or approve_all=true" in error_text(call(server, "approve_recommendations", neither))
    missing = {"job_id": UNKNOWN_JOB, "approve_all": True}
    assert error_text(call(server, "approve_recommendations", missing)) == "Job not found"
    book(job)
    done = {"job_id": str(job.pk), "approve_all": True}
    assert "only a job awaiting approval" in error_text(call(server, "approve_recommendations", done))
    assert dispatched == []


# --- Deals, products, events ---------------------------------------------------------------------------------


def test_list_deals_shows_seller_deal_ids(server):
    job = awaiting_job()
    deals = book(job)
    body = ok(call(server, "list_deals"))
    assert body["total"] == 2
    assert {d["deal_id"] for d in body["deals"]} == {d.deal_id for d in deals}
    assert all(d["job_id"] == str(job.pk) and d["cost"] == 10_000.0 for d in body["deals"])
    assert ok(call(server, "list_deals", {"status": "failed"}))["total"] == 0
    assert "Input should be" in error_text(call(server, "list_deals", {"status": "won"}))


def test_search_products_without_sellers_is_empty_and_bad_filters_are_tool_errors(server, settings):
    settings.SELLER_ENDPOINTS = []
    assert ok(call(server, "search_products")) == {"results": [], "total": 0, "sellers_searched": 0, "errors": []}
    assert "unknown channel" in error_text(call(server, "search_products", {"channel": "radio"}))
    bad_range = {"min_price": 10, "max_price": 5}
    assert "max_price must be greater than or equal to min_price" in error_text(
        call(server, "search_products", bad_range)
    )
    assert "unknown or disabled seller ids: 999" in error_text(call(server, "search_products", {"seller_ids": ["999"]}))


def test_search_products_searches_a_real_seller_as_rest_does(server, client, settings):
    from buyer.sandbox import create_app
    from tests.conftest import serve_in_thread

    settings.SELLER_ENDPOINTS = []
    settings.SELLER_MAX_RETRIES = 0
    with serve_in_thread(create_app()) as url:
        from buyer.sellers.models import Seller

        Seller.objects.create(name="Sandbox", base_url=url)
        args = {"channel": "ctv", "max_price": 60, "limit": 5}
        body = ok(call(server, "search_products", args))
        rest = client.post("/products/search", args, content_type="application/json").json()
    assert body["results"] and body["sellers_searched"] == 1
    assert body == rest
    assert all(r["inventory_type"] == "ctv" and r["cpm"] <= 60 for r in body["results"])


def test_list_events_filters_by_flow(server, dispatched):
    created = ok(call(server, "create_booking", {"brief": a_brief()}))
    ok(call(server, "create_booking", {"brief": a_brief(name="Other")}))
    body = ok(call(server, "list_events", {"flow_id": created["job_id"]}))
    assert body["total"] == 1
    assert body["events"][0]["event_type"] == "campaign.created" and body["events"][0]["payload"]["name"]
    assert ok(call(server, "list_events", {"event_type": "campaign.created"}))["total"] == 2
    assert "Input should be" in error_text(call(server, "list_events", {"event_type": "made.up"}))


def test_results_are_structured_content_and_the_same_json_as_text(server):
    result = call(server, "review_budgets")
    assert json.loads(result.content[0].text) == result.structured_content


# --- Prompts --------------------------------------------------------------------------------------------------


def test_prompts_point_the_assistant_at_the_right_tools(server):
    async def prompts():
        async with Client(server) as client:
            listed = {p.name for p in (await client.list_prompts()).prompts}
            texts = {name: (await client.get_prompt(name)).messages[0].content.text for name in listed}
            return listed, texts

    listed, texts = anyio.run(prompts)
    assert {"status", "approvals", "pacing", "setup", "help"} <= listed
    assert "list_campaigns" in texts["status"]
    assert "awaiting_approval" in texts["approvals"] and "approve_recommendations" in texts["approvals"]
    assert "check_pacing" in texts["pacing"]
    assert "get_setup_status" in texts["setup"]
    assert all(name in texts["help"] for name in EXPECTED_TOOLS)


def test_admin_scope_may_do_everything(server, dispatched):
    assert ok(call(server, "create_booking", {"brief": a_brief()}, as_=ADMIN))["status"] == "pending"
