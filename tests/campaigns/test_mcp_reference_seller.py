"""A seller whose MCP speaks the reference seller's legacy vocabulary sells exactly what it sells over REST."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from buyer.sandbox import create_app
from buyer.sellers.models import Protocol, Seller
from campaigns import services, tasks
from campaigns.models import BookingJob, JobStatus
from tests.conftest import serve_in_thread

pytestmark = pytest.mark.django_db


def _recommend(seller: Seller) -> list[tuple]:
    """Plan and research one brief with ``seller`` as the only seller; its lines, seller-neutral."""
    Seller.objects.exclude(pk=seller.pk).update(enabled=False)
    Seller.objects.filter(pk=seller.pk).update(enabled=True)
    start = timezone.now().date() + timedelta(days=7)
    job = services.job_create(
        name="Same catalog",
        objectives=["brand awareness", "app installs"],
        budget=Decimal(90000),
        start_date=start,
        end_date=start + timedelta(days=30),
        target_audience={},
        kpis={"max_cpm_usd": 40},
        channels=["branding", "ctv", "mobile_app", "performance"],
        formats=[],
        constraints={},
        brief={},
        auto_approve=False,
    )
    tasks.job_plan.run(str(job.pk))
    tasks.job_research.run(str(job.pk))
    job = BookingJob.objects.get(pk=job.pk)
    assert job.status == JobStatus.AWAITING_APPROVAL, (job.failure_reason, job.errors)
    return [
        (r.product_id, r.channel, r.deal_type, r.impressions, r.cpm_micros, r.cost_micros, r.publisher, r.format)
        for r in job.recommendations.order_by("priority")
    ]


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
def test_a_reference_mcp_seller_gives_the_same_recommendations_as_rest(fast_sellers, transport):
    rest_app, mcp_app = create_app(), create_app(mcp_dialect="reference")
    with serve_in_thread(rest_app) as rest_url, serve_in_thread(mcp_app) as mcp_url:
        over_rest = _recommend(Seller.objects.create(name="REST", base_url=rest_url, protocol=Protocol.REST))
        over_mcp = _recommend(
            Seller.objects.create(name="MCP", base_url=mcp_url, protocol=Protocol.MCP, mcp_transport=transport)
        )

    assert over_rest  # the brief buys something, so the comparison means something
    assert over_mcp == over_rest
    assert {line[2] for line in over_mcp} <= {"PG", "PD", "PA"}


def _negotiated(seller: Seller) -> list[tuple]:
    """A brief whose target is below the sellers' floors, researched and negotiated to the end."""
    Seller.objects.exclude(pk=seller.pk).update(enabled=False)
    Seller.objects.filter(pk=seller.pk).update(enabled=True)
    start = timezone.now().date() + timedelta(days=7)
    job = services.job_create(
        name="Negotiated",
        objectives=["brand awareness"],
        budget=Decimal(60000),
        start_date=start,
        end_date=start + timedelta(days=30),
        target_audience={},
        kpis={"target_cpm_usd": 5, "max_cpm_usd": 60},
        channels=["branding", "ctv"],
        formats=[],
        constraints={},
        brief={},
        auto_approve=False,
    )
    tasks.job_plan.run(str(job.pk))
    tasks.job_research.run(str(job.pk))
    for _ in range(10):
        job = BookingJob.objects.get(pk=job.pk)
        if job.stage != "negotiate":
            break
        BookingJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        tasks.job_negotiate.run(str(job.pk))
    job = BookingJob.objects.get(pk=job.pk)
    assert job.status == JobStatus.AWAITING_APPROVAL, (job.failure_reason, job.errors)
    return [
        (r.product_id, r.negotiation_status, r.cpm_micros, r.negotiation_rounds.count())
        for r in job.recommendations.order_by("priority")
    ]


@pytest.mark.parametrize("dialect", ["sandbox", "reference"])
def test_a_seller_reached_over_mcp_is_negotiated_with_as_over_rest(fast_sellers, dialect, monkeypatch):
    # The sandbox dialect offers a negotiate tool; the reference's MCP has none, so its REST negotiates.
    from buyer.sellers.client import SellerRestClient

    over_http: list[str] = []
    real = SellerRestClient.negotiate

    def counted(self, **kwargs):
        over_http.append(self.base_url)
        return real(self, **kwargs)

    monkeypatch.setattr(SellerRestClient, "negotiate", counted)
    rest_app, mcp_app = create_app(), create_app(mcp_dialect=dialect)
    with serve_in_thread(rest_app) as rest_url, serve_in_thread(mcp_app) as mcp_url:
        over_rest = _negotiated(Seller.objects.create(name="REST", base_url=rest_url, protocol=Protocol.REST))
        over_mcp = _negotiated(Seller.objects.create(name="MCP", base_url=mcp_url, protocol=Protocol.MCP))

    assert any(status == "agreed" for _, status, _, _ in over_rest)
    assert over_mcp == over_rest
    assert (mcp_url.rstrip("/") in {u.rstrip("/") for u in over_http}) == (dialect == "reference")
