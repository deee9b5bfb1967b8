"""Product search across sellers, the seller list, and each seller's media kit (read scope).

Media-kit answers are the seller's own JSON, passed through as data: seller text is untrusted and is never
rendered or interpreted here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Query, Router
from ninja.errors import HttpError, ValidationError

from buyer.sellers.errors import SellerError
from buyer.sellers.models import Seller
from buyer.sellers.registry import client_for
from buyer.sellers.schemas import (
    MediaKitPackagesOut,
    MediaKitSearchIn,
    MediaKitSearchOut,
    ProductSearchIn,
    ProductSearchOut,
    SellerFilters,
    SellerListOut,
)
from buyer.sellers.search import UnknownSellerIds, search_enabled_sellers, search_outcome_out
from buyer.sellers.selectors import seller_get, seller_list_enabled, seller_list_for_admin
from buyer.sellers.services import seller_seed_from_settings

logger = logging.getLogger("buyer.sellers")

router = Router(tags=["sellers"])

SELLER_NOT_FOUND = "Seller not found"
PACKAGE_NOT_FOUND = "Package not found"

T = TypeVar("T")


# -- product search -------------------------------------------------------------------------------------------


@router.post("/products/search", response=ProductSearchOut, summary="Search products across every enabled seller")
def search_products(request: HttpRequest, payload: ProductSearchIn):
    """Fetches every enabled seller's catalog in parallel, filters it, lists a product offered by several sellers
    once (from the cheapest, the others in ``also_sold_by``) and ranks by list CPM, cheapest first; products priced
    on request come last with ``cpm: null`` and are left out when a price filter is set. A seller that fails is
    reported in ``errors`` and never fails the search."""
    try:
        outcome = search_enabled_sellers(**payload.model_dump())
    except UnknownSellerIds as exc:
        raise ValidationError(
            [{"loc": ["body", "payload", "seller_ids"], "msg": str(exc), "type": "value_error"}]
        ) from None
    return search_outcome_out(outcome)


# -- sellers and their media kits -----------------------------------------------------------------------------


@router.get("/sellers", response=SellerListOut, summary="List the seller agents the buyer buys from")
def list_sellers(request: HttpRequest, filters: Query[SellerFilters]):
    """Enabled sellers by name; ``include_disabled=true`` adds the disabled ones. Credentials are never listed."""
    seller_seed_from_settings()
    sellers: QuerySet[Seller] = seller_list_for_admin() if filters.include_disabled else seller_list_enabled()
    return {
        "sellers": [
            {
                "seller_id": str(seller.pk),
                "name": seller.name,
                "base_url": _public_url(seller.base_url),
                "protocol": seller.protocol,
                "enabled": seller.enabled,
            }
            for seller in sellers.order_by("name", "pk")
        ]
    }


@router.get("/sellers/{seller_id}/media-kit", response=dict[str, Any], summary="A seller's media kit, as it sent it")
def get_media_kit(request: HttpRequest, seller_id: str):
    """The seller's ``GET /media-kit`` answer: featured and all packages, with public price ranges."""
    return _seller_call(_seller_or_404(seller_id), lambda client: client.media_kit())


@router.get(
    "/sellers/{seller_id}/media-kit/packages",
    response=MediaKitPackagesOut,
    summary="A seller's media-kit packages",
)
def list_media_kit_packages(request: HttpRequest, seller_id: str):
    return {"packages": _seller_call(_seller_or_404(seller_id), lambda client: client.media_kit_packages())}


@router.get(
    "/sellers/{seller_id}/media-kit/packages/{package_id}",
    response=dict[str, Any],
    summary="One media-kit package of a seller",
)
def get_media_kit_package(request: HttpRequest, seller_id: str, package_id: str):
    """404 ``Package not found`` when the seller does not know the package."""
    seller = _seller_or_404(seller_id)

    def fetch(client: Any) -> dict[str, Any]:
        try:
            return client.media_kit_package(package_id)
        except ValueError:  # "." or "..": not an id the seller could hold
            raise HttpError(404, PACKAGE_NOT_FOUND) from None
        except SellerError as exc:
            if exc.status == 404:
                raise HttpError(404, PACKAGE_NOT_FOUND) from None
            raise

    return _seller_call(seller, fetch)


@router.post(
    "/sellers/{seller_id}/media-kit/search",
    response=MediaKitSearchOut,
    summary="Search a seller's media-kit packages by keywords",
)
def search_media_kit(request: HttpRequest, seller_id: str, payload: MediaKitSearchIn):
    """The seller scores its packages against the query words; results come back in the seller's order."""
    filters = payload.model_dump(exclude={"query"}, exclude_none=True)
    results = _seller_call(_seller_or_404(seller_id), lambda client: client.media_kit_search(payload.query, **filters))
    return {"results": results}


def _seller_or_404(seller_id: str) -> Seller:
    # Disabled sellers are not contacted: they are off for a reason (broken, untrusted, retired).
    # Digits only and short: ``int()`` would also take " 7" or non-ASCII digits, and a huge id overflows SQLite.
    seller = seller_get(seller_id) if seller_id.isascii() and seller_id.isdigit() and len(seller_id) <= 18 else None
    if seller is None or not seller.enabled:
        raise HttpError(404, SELLER_NOT_FOUND)
    return seller


def _seller_call(seller: Seller, call: Callable[[Any], T]) -> T:
    # ``call`` gets whatever client_for builds (REST, MCP, guarded): all share the SellerRestClient surface.
    try:
        client = client_for(seller)
    except Exception:
        # Stored configuration we cannot use (an unreadable credential, say) is this seller's failure, not ours.
        logger.warning("no client for seller %s", seller.pk, exc_info=True)
        raise HttpError(502, f"Seller {seller.name} failed: client_unavailable") from None
    try:
        return call(client)
    except SellerError as exc:
        logger.warning("seller %s media kit call failed: %s", seller.pk, exc)
        # Only the seller's error code: its message and body are untrusted and may echo our credential.
        raise HttpError(502, f"Seller {seller.name} failed: {exc.code}") from None
    finally:
        client.close()


def _public_url(url: str) -> str:
    """The seller's address without userinfo, query or fragment, where a credential could hide."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
