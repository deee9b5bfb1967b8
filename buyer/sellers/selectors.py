from __future__ import annotations

from django.db.models import QuerySet

from buyer.sellers.models import Seller


def seller_list_enabled() -> QuerySet[Seller]:
    return Seller.objects.filter(enabled=True).order_by("pk")


def seller_list_for_admin() -> QuerySet[Seller]:
    """Every seller, enabled or not; the credential is only ever exposed as ``has_credential``."""
    return Seller.objects.order_by("name", "pk")


def seller_get(seller_id: int | str) -> Seller | None:
    try:
        return Seller.objects.filter(pk=int(seller_id)).first()
    except (TypeError, ValueError):
        return None
