from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from buyer.sellers.models import Seller


def configured_endpoints() -> list[str]:
    endpoints = list(settings.SELLER_ENDPOINTS)
    if not endpoints and settings.IAB_SERVER_URL_IS_SET:
        endpoints = [settings.IAB_SERVER_URL]
    return endpoints


def seller_seed_from_settings() -> list[Seller]:
    """Create a Seller row for each configured endpoint that has none; never overwrite an admin's edits."""
    sellers = []
    for url in configured_endpoints():
        seller = Seller.objects.filter(base_url=url).first()
        if seller is None:
            try:
                with transaction.atomic():
                    seller = Seller.objects.create(name=urlsplit(url).netloc, base_url=url, seeded_from_env=True)
            except IntegrityError:  # another process seeded it first
                seller = Seller.objects.get(base_url=url)
        sellers.append(seller)
    return sellers
