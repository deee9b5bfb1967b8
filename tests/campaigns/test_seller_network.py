"""Many sellers at once: identity tiers, slow and failing sellers, circuit breakers, secrets that never leak."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from buyer.events.models import Event
from buyer.sandbox import create_app
from buyer.sellers.models import BreakerState, Seller, TrustLevel
from campaigns import services
from campaigns.models import BookedDeal, JobStage, JobStatus, RecommendationStatus
from tests.campaigns.test_flow import new_job, run
from tests.conftest import serve_in_thread

pytestmark = pytest.mark.django_db

AGENCY_KEY = "sandbox-agency-key-7f3a9c"


@pytest.fixture(autouse=True)
def _sellers_settings(settings):
    settings.SELLER_ENDPOINTS = []
    settings.IAB_SERVER_URL_IS_SET = False
    settings.SELLER_TIMEOUT_SECONDS = 1
    settings.SELLER_MAX_RETRIES = 0
    settings.SELLER_BREAKER_FAILURES = 2
    settings.SELLER_BREAKER_COOLDOWN_SECONDS = 300


def test_one_job_books_from_healthy_sellers_while_a_slow_one_times_out_and_a_flaky_ones_breaker_opens(
    admin_client,
):
    with (
        serve_in_thread(create_app(catalog="default")) as healthy_url,
        serve_in_thread(create_app(catalog="premium-video", latency_ms=4000)) as slow_url,
        serve_in_thread(create_app(catalog="performance", failure_rate=0.5, seed=3)) as flaky_url,
    ):
        Seller.objects.create(name="Healthy", base_url=healthy_url)
        Seller.objects.create(name="Slow", base_url=slow_url)
        flaky = Seller.objects.create(name="Flaky", base_url=flaky_url)

        started = time.monotonic()
        job = run(
            new_job(auto_approve=True, channels=["branding", "performance", "ctv"]), JobStage.PLAN, JobStage.RESEARCH
        )
        research_seconds = time.monotonic() - started
        # The slow seller costs its timeout, not its latency; nothing waits on it twice.
        assert research_seconds < 3.5
        job = run(job, JobStage.BOOK)
        assert job.status == JobStatus.COMPLETED, job.errors
        assert "Healthy" in {d.recommendation.seller_name for d in BookedDeal.objects.filter(job=job)}
        assert "Seller Slow" in " ".join(job.errors)

        # Keep buying until the flaky seller's failures cross the threshold (bounded: a few jobs at most).
        for _ in range(8):
            flaky.refresh_from_db()
            if flaky.breaker_state == BreakerState.OPEN:
                break
            run(new_job(channels=["performance"]), JobStage.PLAN, JobStage.RESEARCH)
        flaky.refresh_from_db()
        assert flaky.breaker_state == BreakerState.OPEN
        assert flaky.errors_total >= 2 and flaky.error_rate > 0

        # While open, the flaky seller is not called at all and the job goes on with the others.
        calls_before = flaky.calls_total
        job = run(new_job(channels=["performance"]), JobStage.PLAN, JobStage.RESEARCH)
        assert job.status == JobStatus.AWAITING_APPROVAL
        assert "circuit_open" in " ".join(job.errors)
        flaky.refresh_from_db()
        assert flaky.calls_total == calls_before

    page = admin_client.get("/admin/sellers/seller/").content.decode()
    assert "Flaky" in page and "open" in page.lower()


def test_an_agency_credential_gets_the_agency_price_and_the_same_brief_without_it_pays_public():
    app = create_app(catalog="default", api_keys={AGENCY_KEY: "agency"})
    with serve_in_thread(app) as url:
        seller = Seller(name="Tiered", base_url=url, agency_id="agency-42", seat_id="seat-7")
        seller.set_credential(AGENCY_KEY)
        seller.save()
        tiered = run(new_job(auto_approve=True, channels=["ctv"]), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)

        seller.set_credential(None)
        seller.save()
        public = run(new_job(auto_approve=True, channels=["ctv"]), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)

    tiered_line, public_line = tiered.recommendations.first(), public.recommendations.first()
    assert tiered_line.product_id == public_line.product_id
    assert (tiered_line.buyer_tier, public_line.buyer_tier) == ("agency", "public")
    assert Decimal(str(tiered_line.pricing["tier_discount_pct"])) == Decimal(10)
    assert tiered_line.cpm == (public_line.cpm * Decimal("0.9")).quantize(Decimal("0.01"))
    assert tiered_line.deal.buyer_tier == "agency" and public_line.deal.buyer_tier == "public"


def test_lines_from_a_restricted_seller_are_never_auto_approved():
    with serve_in_thread(create_app(catalog="default")) as url:
        Seller.objects.create(name="Restricted", base_url=url, trust_level=TrustLevel.RESTRICTED)
        job = run(new_job(auto_approve=True), JobStage.PLAN, JobStage.RESEARCH)
    assert job.status == JobStatus.AWAITING_APPROVAL
    assert set(job.recommendations.values_list("status", flat=True)) == {RecommendationStatus.PENDING_APPROVAL}
    ready = Event.objects.get(flow_id=str(job.pk), event_type="recommendations.ready")
    assert "Restricted" in ready.payload["auto_approve_withheld"]


def test_seller_credentials_never_appear_in_logs_events_api_responses_or_admin_pages(client, caplog, settings):
    settings.SELLER_BREAKER_FAILURES = 100
    caplog.set_level(logging.DEBUG)
    app = create_app(catalog="default", api_keys={AGENCY_KEY: "agency"})
    with serve_in_thread(app) as url:
        seller = Seller(name="Secretive", base_url=url, agency_id="agency-42")
        seller.set_credential(AGENCY_KEY)
        seller.save()
        job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
        services.job_approve_all(job_id=str(job.pk))
        job = run(job, JobStage.BOOK)
        assert job.status == JobStatus.COMPLETED
        responses = [
            client.get(f"/bookings/{job.pk}"),
            client.get("/bookings"),
            client.get("/events", {"limit": 500}),
            client.get("/sellers", {"include_disabled": "true"}),
            client.post("/products/search", {"limit": 50}, content_type="application/json"),
            client.get(f"/sellers/{seller.pk}/media-kit"),
        ]
    assert all(r.status_code == 200 for r in responses), [(r.status_code, r.content[:200]) for r in responses]

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests")
    client.force_login(admin)
    pages = [client.get("/admin/sellers/seller/"), client.get(f"/admin/sellers/seller/{seller.pk}/change/")]
    assert all(p.status_code == 200 for p in pages)

    haystacks = {
        "logs": caplog.text,
        "events": json.dumps(list(Event.objects.values("payload", "metadata")), default=str),
        "api": " ".join(r.content.decode() for r in responses),
        "admin": " ".join(p.content.decode() for p in pages),
        "seller row": json.dumps(list(Seller.objects.values()), default=str),
    }
    for where, text in haystacks.items():
        assert AGENCY_KEY not in text, f"credential leaked into {where}"
    assert "agency" in haystacks["api"]  # the tier itself is not a secret and is shown


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
def test_a_job_with_one_rest_and_one_mcp_seller_books_from_both(transport):
    with (
        serve_in_thread(create_app(catalog="default")) as rest_url,
        serve_in_thread(create_app(catalog="premium-video")) as mcp_url,
    ):
        Seller.objects.create(name="Over REST", base_url=rest_url)
        Seller.objects.create(name="Over MCP", base_url=mcp_url, protocol="mcp", mcp_transport=transport)
        job = run(new_job(auto_approve=True, channels=["branding", "ctv"], budget=Decimal(150000)), JobStage.PLAN)
        job = run(job, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    deals = BookedDeal.objects.filter(job=job).select_related("recommendation")
    assert {d.recommendation.seller_name for d in deals} == {"Over REST", "Over MCP"}
    assert all(d.deal_id.startswith("DEMO-") for d in deals)
