"""Product search across every enabled seller: fan out, then merge, de-duplicate and rank.

``merge_catalogs`` is pure (catalogs in, ranked matches out) so the ranking rules are testable without HTTP;
``product_search`` does the I/O around it; ``search_enabled_sellers`` is what the REST API and the MCP tool
call. Prices stay Decimal here; ``search_outcome_out`` turns them into the floats both interfaces answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from buyer.sellers.client import fetch_catalogs
from buyer.sellers.errors import SellerError
from buyer.sellers.models import Seller
from buyer.sellers.registry import client_for
from buyer.sellers.selectors import seller_list_enabled
from buyer.sellers.services import seller_seed_from_settings
from buyer.sellers.types import Product
from campaigns.policies import CHANNEL_INVENTORY

logger = logging.getLogger("buyer.sellers")

# Only these pricing models carry a CPM in ``base_price``; a CPC or flat fee is not a CPM and is never shown as one.
CPM_PRICING_MODELS = frozenset({"cpm", ""})


@dataclass(frozen=True)
class SellerRef:
    seller_id: str
    name: str


@dataclass(frozen=True)
class SearchFilters:
    """All optional. ``inventory_types`` comes from a planning channel; ``format`` matches the inventory type or
    an ad format; ``query`` terms must all occur in the name or description (case-insensitive)."""

    inventory_types: frozenset[str] | None = None
    format: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    query: str | None = None

    @property
    def has_price_filter(self) -> bool:
        return self.min_price is not None or self.max_price is not None


@dataclass(frozen=True)
class OtherOffer:
    """The same publisher's product, sold by another seller at the same or a higher price."""

    seller: SellerRef
    product_id: str
    cpm: Decimal | None


@dataclass(frozen=True)
class Match:
    seller: SellerRef
    product: Product
    also_sold_by: tuple[OtherOffer, ...] = ()

    @property
    def cpm(self) -> Decimal | None:
        return cpm_of(self.product)


@dataclass(frozen=True)
class SearchResult:
    matches: list[Match]
    total: int  # matches before the limit


@dataclass(frozen=True)
class SellerFailure:
    seller: SellerRef
    error: str


@dataclass(frozen=True)
class SearchOutcome:
    matches: list[Match]
    total: int
    sellers_searched: int
    errors: list[SellerFailure] = field(default_factory=list)


def cpm_of(product: Product) -> Decimal | None:
    """The list CPM, or None for "price on request" and for prices that are not CPMs."""
    if product.pricing_model.strip().lower() not in CPM_PRICING_MODELS:
        return None
    return product.base_cpm


def merge_catalogs(
    catalogs: Iterable[tuple[SellerRef, Sequence[Product]]], filters: SearchFilters, *, limit: int
) -> SearchResult:
    """Filter, de-duplicate and rank every seller's products; return the best ``limit`` and the total count.

    Ranking is total and deterministic: priced products first, then CPM ascending, available impressions
    descending, seller name, seller id, product id. The same publisher product (publisher, name and inventory
    type) offered by several sellers is listed once, from the seller ranked first (the cheapest); the others are
    recorded in ``also_sold_by``.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    candidates: list[tuple[SellerRef, Product]] = []
    seen: set[tuple[str, str]] = set()
    for seller, products in catalogs:
        for product in products:
            if (seller.seller_id, product.product_id) in seen or not _matches(product, filters):
                continue
            seen.add((seller.seller_id, product.product_id))
            candidates.append((seller, product))
    candidates.sort(key=_rank_key)

    kept: list[tuple[SellerRef, Product, list[OtherOffer]]] = []
    first_by_listing: dict[tuple[str, str, str], int] = {}
    for seller, product in candidates:
        key = _listing_key(product)
        index = first_by_listing.get(key) if key is not None else None
        if index is not None:
            winner_seller, _, others = kept[index]
            # A seller listing two products under one name keeps both: only a second seller is a duplicate.
            if winner_seller.seller_id != seller.seller_id:
                if all(o.seller.seller_id != seller.seller_id for o in others):
                    others.append(OtherOffer(seller, product.product_id, cpm_of(product)))
                continue
        if key is not None and index is None:
            first_by_listing[key] = len(kept)
        kept.append((seller, product, []))

    matches = [Match(seller, product, tuple(others)) for seller, product, others in kept]
    return SearchResult(matches=matches[:limit], total=len(matches))


def product_search(*, sellers: Sequence[Seller], filters: SearchFilters, limit: int) -> SearchOutcome:
    """Fetch every given seller's catalog in parallel and merge them. A failing seller is reported, not raised."""
    refs = {str(seller.pk): SellerRef(str(seller.pk), seller.name) for seller in sellers}
    failures: list[SellerFailure] = []
    clients = {}
    try:
        for seller in sellers:
            key = str(seller.pk)
            try:
                clients[key] = client_for(seller)
            except Exception:
                # A seller we cannot even build a client for (bad stored config) must not cost us the others.
                logger.warning("no client for seller %s", seller.pk, exc_info=True)
                failures.append(SellerFailure(refs[key], "client_unavailable"))
        catalogs = fetch_catalogs(clients, max_workers=settings.SELLER_MAX_PARALLEL)
    finally:
        for client in clients.values():
            client.close()

    found: list[tuple[SellerRef, Sequence[Product]]] = []
    for key, result in catalogs.items():
        if isinstance(result, SellerError):
            failures.append(SellerFailure(refs[key], describe_failure(result)))
        else:
            found.append((refs[key], result))
    merged = merge_catalogs(found, filters, limit=limit)
    failures.sort(key=lambda f: (f.seller.name, f.seller.seller_id))
    return SearchOutcome(merged.matches, merged.total, len(sellers), failures)


class UnknownSellerIds(ValueError):
    """A search named seller ids that are unknown or disabled."""

    def __init__(self, unknown: list[str]):
        super().__init__(f"unknown or disabled seller ids: {', '.join(unknown[:10])}")
        self.unknown = unknown


def search_enabled_sellers(
    *,
    channel: str | None = None,
    format: str | None = None,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    query: str | None = None,
    limit: int,
    seller_ids: Sequence[str] | None = None,
) -> SearchOutcome:
    """Search every enabled seller (or only ``seller_ids``, which must all be enabled); ``channel`` is a planning
    channel and selects the inventory types it buys. Arguments are validated by the caller's schema."""
    seller_seed_from_settings()
    sellers = list(seller_list_enabled())
    if seller_ids is not None:
        by_id = {str(s.pk): s for s in sellers}
        unknown = [i for i in seller_ids if i not in by_id]
        if unknown:
            raise UnknownSellerIds(unknown)
        sellers = [by_id[i] for i in dict.fromkeys(seller_ids)]
    filters = SearchFilters(
        inventory_types=frozenset(CHANNEL_INVENTORY[channel]) if channel else None,
        format=format,
        min_price=min_price,
        max_price=max_price,
        query=query,
    )
    return product_search(sellers=sellers, filters=filters, limit=limit)


def search_outcome_out(outcome: SearchOutcome) -> dict[str, Any]:
    """The answer of ``POST /products/search`` and of the MCP ``search_products`` tool."""
    return {
        "results": [_product_out(match) for match in outcome.matches],
        "total": outcome.total,
        "sellers_searched": outcome.sellers_searched,
        "errors": [
            {"seller_id": f.seller.seller_id, "seller_name": f.seller.name, "error": f.error} for f in outcome.errors
        ],
    }


def _product_out(match: Match) -> dict[str, Any]:
    product = match.product
    return {
        "product_id": product.product_id,
        "name": product.name,
        "description": product.description,
        "seller_id": match.seller.seller_id,
        "seller_name": match.seller.name,
        "publisher": product.seller_organization_id,
        "inventory_type": product.inventory_type,
        "ad_formats": list(product.ad_formats),
        "delivery_type": product.delivery_type,
        "pricing_model": product.pricing_model,
        "cpm": _price(match.cpm),
        "floor_cpm": _price(product.floor_cpm),
        "available_impressions": product.available_impressions,
        "minimum_impressions": product.minimum_impressions,
        "deal_types": list(product.deal_types),
        "also_sold_by": [
            {
                "seller_id": other.seller.seller_id,
                "seller_name": other.seller.name,
                "product_id": other.product_id,
                "cpm": _price(other.cpm),
            }
            for other in match.also_sold_by
        ],
    }


def _price(amount: Decimal | None) -> float | None:
    return float(amount) if amount is not None else None


def describe_failure(exc: SellerError) -> str:
    """The seller's error code and HTTP status only: the message may quote the seller's body at length."""
    where = f"HTTP {exc.status}" if exc.status is not None else "no response"
    return f"{exc.code} ({where})"


def _matches(product: Product, filters: SearchFilters) -> bool:
    inventory_type = product.inventory_type.lower()
    if filters.inventory_types is not None and inventory_type not in filters.inventory_types:
        return False
    if filters.format is not None:
        formats = {inventory_type, *(f.lower() for f in product.ad_formats)}
        if filters.format.lower() not in formats:
            return False
    if filters.has_price_filter:
        cpm = cpm_of(product)
        if cpm is None:
            return False
        if filters.min_price is not None and cpm < filters.min_price:
            return False
        if filters.max_price is not None and cpm > filters.max_price:
            return False
    if filters.query:
        text = f"{product.name}\n{product.description}".casefold()
        if not all(term in text for term in filters.query.casefold().split()):
            return False
    return True


def _rank_key(item: tuple[SellerRef, Product]) -> tuple:
    seller, product = item
    cpm = cpm_of(product)
    return (
        cpm is None,
        cpm if cpm is not None else Decimal(0),
        -(product.available_impressions or 0),
        seller.name,
        seller.seller_id,
        product.product_id,
    )


def _listing_key(product: Product) -> tuple[str, str, str] | None:
    """Identity of a publisher's product across sellers; None when the publisher is unknown."""
    publisher = product.seller_organization_id.strip().casefold()
    if not publisher:
        return None
    name = " ".join(product.name.casefold().split())
    return publisher, name, product.inventory_type.strip().casefold()
