"""Reads for the pacing pages."""

from __future__ import annotations

from django.db.models import QuerySet

from campaigns.models import BookedDeal, DealStatus

# Deals the seller holds for delivery: these are the ones pacing will watch.
PACED_STATUSES = (
    DealStatus.BOOKED,
    DealStatus.DELIVERING,
    DealStatus.MAKEGOOD_PENDING,
    DealStatus.PARTIALLY_CANCELED,
)


def deals_to_pace() -> QuerySet[BookedDeal]:
    """Booked deals that pacing will follow, soonest flight first, with their campaign and seller."""
    return (
        BookedDeal.objects.filter(status__in=PACED_STATUSES)
        .select_related("job__campaign", "seller")
        .only(
            "deal_id",
            "product_name",
            "channel",
            "deal_type",
            "impressions",
            "cost_micros",
            "flight_start",
            "flight_end",
            "status",
            "seller_url",
            "seller__name",
            "job__id",
            "job__campaign__name",
        )
        .order_by("flight_start", "job__campaign__name", "pk")
    )
