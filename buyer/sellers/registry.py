"""Clients for the sellers in the database, configured from settings."""

from __future__ import annotations

from django.conf import settings

from buyer.sellers.client import SellerRestClient
from buyer.sellers.models import Seller


def client_for(seller: Seller) -> SellerRestClient:
    return SellerRestClient(
        seller.base_url,
        timeout=settings.SELLER_TIMEOUT_SECONDS,
        max_retries=settings.SELLER_MAX_RETRIES,
    )
