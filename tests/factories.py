from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from buyer.sellers.models import Seller
from campaigns.models import BookingJob, Campaign, JobStage, JobStatus, Recommendation


class SellerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Seller

    name = factory.Sequence(lambda n: f"Seller {n}")
    base_url = factory.Sequence(lambda n: f"http://127.0.0.1:{19000 + n}")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    objectives = ["brand awareness"]
    budget_micros = 50_000 * 1_000_000
    start_date = factory.LazyFunction(lambda: timezone.now().date() + timedelta(days=7))
    end_date = factory.LazyFunction(lambda: timezone.now().date() + timedelta(days=37))
    channels = ["branding", "ctv"]


class BookingJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BookingJob

    campaign = factory.SubFactory(CampaignFactory)
    status = JobStatus.AWAITING_APPROVAL
    stage = JobStage.APPROVAL


class RecommendationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Recommendation

    job = factory.SubFactory(BookingJobFactory)
    seller = factory.SubFactory(SellerFactory)
    seller_name = factory.LazyAttribute(lambda o: o.seller.name)
    seller_url = factory.LazyAttribute(lambda o: o.seller.base_url)
    product_id = factory.Sequence(lambda n: f"prod-{n:08x}")
    product_name = factory.Sequence(lambda n: f"Product {n}")
    channel = "branding"
    inventory_type = "display"
    deal_type = "PD"
    impressions = 1_000_000
    base_cpm_micros = 10_000_000
    cpm_micros = 10_000_000
    cost_micros = 10_000 * 1_000_000
    quote_id = factory.Sequence(lambda n: f"qt-{n:012x}")
    priority = factory.Sequence(lambda n: n + 1)
    rationale = "test line"
