"""Request models of the sandbox seller and FastAPI-compatible validation errors.

The models mirror the reference seller's OpenAPI (``QuoteRequest``, ``DealBookingRequest``,
``NegotiationMessage``...). Unknown fields are ignored, as FastAPI does by default. Errors are rendered
as ``{"detail": [{type, loc: ["body", ...], msg, input, ctx?}]}`` so a buyer cannot tell the difference.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class RequestValidationFailed(Exception):
    """A 422: ``errors`` is the FastAPI-style ``detail`` list."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("request validation failed")
        self.errors = errors


class Money(BaseModel):
    """Exact money in integer micros.

    ``from_attributes`` is set because the reference seller's model has it: a float sent where Money is
    expected then fails with ``model_attributes_type`` ("...object to extract fields from"), the exact
    error of quote_legacy_float.json.
    """

    model_config = ConfigDict(from_attributes=True)

    amount_micros: int = Field(ge=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class BuyerIdentity(BaseModel):
    seat_id: str | None = None
    seat_name: str | None = None
    dsp_platform: str | None = None
    agency_id: str | None = None
    agency_name: str | None = None
    agency_holding_company: str | None = None
    advertiser_id: str | None = None
    advertiser_name: str | None = None
    advertiser_industry: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None


class DealType(StrEnum):
    PG = "PG"
    PD = "PD"
    PA = "PA"


class MediaType(StrEnum):
    DIGITAL = "digital"
    CTV = "ctv"
    LINEAR_TV = "linear_tv"


class NegotiationAction(StrEnum):
    ACCEPT = "accept"
    COUNTER = "counter"
    REJECT = "reject"
    FINAL_OFFER = "final_offer"


PRICED_ACTIONS = frozenset({NegotiationAction.COUNTER, NegotiationAction.FINAL_OFFER})


class QuoteCreate(BaseModel):
    idempotency_key: str = Field(min_length=1)
    product_id: str
    deal_type: DealType
    impressions: int | None = Field(default=None, ge=0)
    flight_start: date | None = None
    flight_end: date | None = None
    target_cpm: Money | None = None
    buyer_identity: BuyerIdentity | None = None
    agent_url: str | None = None
    rate_card_id: str | None = None
    media_type: MediaType = MediaType.DIGITAL
    linear_tv: dict[str, Any] | None = None
    audience_plan: dict[str, Any] | None = None
    consent_context: dict[str, Any] | None = None


class DealCreate(BaseModel):
    idempotency_key: str = Field(min_length=1)
    quote_id: str
    buyer_identity: BuyerIdentity | None = None
    notes: str | None = None
    audience_plan: dict[str, Any] | None = None
    consent_context: dict[str, Any] | None = None


class NegotiationMessage(BaseModel):
    idempotency_key: str = Field(min_length=1)
    action: NegotiationAction
    negotiation_id: str | None = None
    proposal_id: str | None = None
    quote_id: str | None = None
    round_number: int | None = Field(default=None, ge=1)
    buyer_price: Money | None = None
    buyer_identity: BuyerIdentity | None = None
    rationale: str = ""

    @model_validator(mode="after")
    def _price_matches_action(self) -> Self:
        # A ValueError makes pydantic report ``value_error`` at loc ["body"] (nego_missing_price.json).
        if self.action in PRICED_ACTIONS and self.buyer_price is None:
            raise ValueError(f"action '{self.action.value}' requires buyer_price")
        if self.action is NegotiationAction.REJECT and self.buyer_price is not None:
            raise ValueError("action 'reject' must not carry buyer_price")
        if not (self.quote_id or self.proposal_id or self.negotiation_id):
            raise ValueError("a negotiation message needs quote_id, proposal_id or negotiation_id")
        return self


class PricingRequest(BaseModel):
    product_id: str
    buyer_tier: str = "public"
    agency_id: str | None = None
    advertiser_id: str | None = None
    volume: int = Field(default=0, ge=0)
    agent_url: str | None = None


class MediaKitSearchRequest(BaseModel):
    query: str
    buyer_tier: str = "public"
    agency_id: str | None = None
    advertiser_id: str | None = None
    audience_filter: dict[str, Any] | None = None


class ProductsQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class PerformanceQuery(BaseModel):
    """``?as_of=`` (sandbox extension): delivery as of an earlier moment, ISO 8601."""

    as_of: datetime | None = None


class DeliveryProfileRequest(BaseModel):
    """``{"profile": "under:0.7"}`` for the ``/_sandbox/delivery`` routes."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field(min_length=1, max_length=64)


class MediaKitPackagesQuery(BaseModel):
    layer: str | None = None
    featured_only: bool = False


M = TypeVar("M", bound=BaseModel)


def _jsonable(value: Any) -> Any:
    """Make an error's ``input``/``ctx`` JSON-safe; exceptions become ``{}``, as FastAPI renders them."""
    if isinstance(value, BaseException):
        return {}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def validation_errors(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    """pydantic errors → FastAPI's 422 ``detail`` list, locations prefixed by ``body`` or ``query``."""
    out: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "type": err["type"],
            "loc": [where, *err["loc"]],
            "msg": err["msg"],
            "input": _jsonable(err.get("input")),
        }
        if "ctx" in err:
            item["ctx"] = _jsonable(err["ctx"])
        out.append(item)
    return out


def parse_body(raw: bytes, model: type[M]) -> M:
    """Decode a JSON request body into ``model`` or raise :class:`RequestValidationFailed`."""
    if not raw.strip():
        raise RequestValidationFailed([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}])
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationFailed(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", exc.pos],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None
    except UnicodeDecodeError:
        raise RequestValidationFailed(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", 0],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": "body is not UTF-8"},
                }
            ]
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationFailed(validation_errors(exc, "body")) from None


def parse_query(params: dict[str, str], model: type[M]) -> M:
    """Validate query parameters (raw strings, lax-parsed) into ``model``."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise RequestValidationFailed(validation_errors(exc, "query")) from None
