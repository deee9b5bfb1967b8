from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from buyer.sellers.models import Seller
from campaigns.models import BookedDeal, BookingJob, Campaign, JobStage, JobStatus, Recommendation


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


class BookedDealFactory(factory.django.DjangoModelFactory):
    """A seller-issued deal for a recommendation; every field follows its line unless given."""

    class Meta:
        model = BookedDeal

    recommendation = factory.SubFactory(RecommendationFactory)
    job = factory.LazyAttribute(lambda o: o.recommendation.job)
    seller = factory.LazyAttribute(lambda o: o.recommendation.seller)
    seller_url = factory.LazyAttribute(lambda o: o.recommendation.seller_url)
    deal_id = factory.Sequence(lambda n: f"DEAL-{n:04d}")
    quote_id = factory.LazyAttribute(lambda o: o.recommendation.quote_id)
    product_id = factory.LazyAttribute(lambda o: o.recommendation.product_id)
    product_name = factory.LazyAttribute(lambda o: o.recommendation.product_name)
    channel = factory.LazyAttribute(lambda o: o.recommendation.channel)
    deal_type = "PD"
    impressions = factory.LazyAttribute(lambda o: o.recommendation.impressions)
    cpm_micros = factory.LazyAttribute(lambda o: o.recommendation.cpm_micros)
    cost_micros = factory.LazyAttribute(lambda o: o.recommendation.cost_micros)
    flight_start = factory.LazyAttribute(lambda o: o.recommendation.job.campaign.start_date)
    flight_end = factory.LazyAttribute(lambda o: o.recommendation.job.campaign.end_date)
