"""REST shapes for product search and seller browsing. Every field explicit: nothing of a Seller row leaks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ninja import Schema
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from campaigns.policies import CHANNEL_INVENTORY

SEARCH_CHANNELS = tuple(CHANNEL_INVENTORY)


class ProductSearchIn(Schema):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(
        default=None,
        description="A planning channel; it selects the inventory types that channel buys.",
        json_schema_extra={"enum": [*SEARCH_CHANNELS, None]},
    )
    format: str | None = Field(
        default=None, max_length=50, description="An ad format or inventory type, e.g. video, banner, ctv."
    )
    min_price: Decimal | None = Field(default=None, ge=0, description="Lowest list CPM in USD.")
    max_price: Decimal | None = Field(default=None, ge=0, description="Highest list CPM in USD.")
    limit: int = Field(default=10, ge=1, le=50)
    query: str | None = Field(
        default=None, max_length=200, description="Words that must all occur in the product name or description."
    )
    seller_ids: list[str] | None = Field(
        default=None, min_length=1, max_length=100, description="Search only these enabled sellers."
    )

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str | None) -> str | None:
        if value is None:
            return None
        channel = value.strip().lower()
        if channel not in CHANNEL_INVENTORY:
            raise ValueError(f"unknown channel; choose one of {', '.join(SEARCH_CHANNELS)}")
        return channel

    @field_validator("format", "query")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("max_price")
    @classmethod
    def _range_ordered(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        low = info.data.get("min_price")
        if value is not None and low is not None and value < low:
            raise ValueError("max_price must be greater than or equal to min_price")
        return value

    @field_validator("seller_ids", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        # Seller ids are served as strings, but a client echoing back a number means the same seller.
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value


class OtherOfferOut(Schema):
    seller_id: str
    seller_name: str
    product_id: str
    cpm: float | None


class ProductOut(Schema):
    product_id: str
    name: str
    description: str
    seller_id: str
    seller_name: str
    publisher: str
    inventory_type: str
    ad_formats: list[str]
    delivery_type: str
    pricing_model: str
    cpm: float | None = Field(description="List CPM in USD; null when the seller prices on request.")
    floor_cpm: float | None
    available_impressions: int | None
    minimum_impressions: int
    deal_types: list[str]
    also_sold_by: list[OtherOfferOut]


class SellerFailureOut(Schema):
    seller_id: str
    seller_name: str
    error: str


class ProductSearchOut(Schema):
    results: list[ProductOut]
    total: int = Field(description="Matching products before the limit.")
    sellers_searched: int
    errors: list[SellerFailureOut]


class SellerFilters(Schema):
    include_disabled: bool = False


class SellerOut(Schema):
    seller_id: str
    name: str
    base_url: str
    protocol: str
    enabled: bool


class SellerListOut(Schema):
    sellers: list[SellerOut]


class MediaKitSearchIn(Schema):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=500)
    agency_id: str | None = Field(default=None, max_length=200)
    advertiser_id: str | None = Field(default=None, max_length=200)
    audience_filter: dict[str, Any] | None = None

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class MediaKitPackagesOut(Schema):
    packages: list[dict[str, Any]]


class MediaKitSearchOut(Schema):
    results: list[dict[str, Any]]
