from __future__ import annotations

from django.db.models import QuerySet

from buyer.sellers.models import Seller


def seller_list_enabled() -> QuerySet[Seller]:
    return Seller.objects.filter(enabled=True).order_by("pk")
