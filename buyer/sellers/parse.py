"""Seller JSON → domain types. Pure functions: no I/O, raise ``InvalidResponse`` on a shape we cannot trust.

Prices stay exact: Money objects via ``parse_money`` (micros → Decimal), the legacy float fields
(``ext.floor_cpm``, percentages, placeholder stats) via ``str`` → Decimal, never through float arithmetic.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, NonNegativeInt, ValidationError, field_validator

from .money import cost_for, parse_legacy_float, parse_money
from .types import Deal, DealPerformance, NegotiationRound, Product, Quote


class InvalidResponse(ValueError):
    """A seller response that is JSON but not the shape the protocol promises."""


# -- field helpers ---------------------------------------------------------------------------------


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidResponse(f"{what} is not an object")
    return value


def _opt_obj(value: Any, what: str) -> dict[str, Any]:
    return {} if value is None else _obj(value, what)


def _req_str(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidResponse(f"{what}.{key} is missing")
    return value


def _opt_str(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key)
    return value if isinstance(value, str) else default


def _opt_int(data: dict[str, Any], key: str, what: str, default: int | None) -> int | None:
    value = data.get(key)
    if value is None:
        return default
    # Some sellers serialise counts through floats (500000.0); that is still a whole number.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidResponse(f"{what}.{key} is not an integer")
    return value


def _int(data: dict[str, Any], key: str, what: str, default: int = 0) -> int:
    value = _opt_int(data, key, what, default)
    return default if value is None else value


def _str_tuple(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


# Deal-type spellings, compared without case, spaces or punctuation: REST says ``PG``/``PD``/``PA``, the
# reference seller's MCP tools ``programmaticguaranteed``/``preferreddeal``/``privateauction``.
_DEAL_TYPE_SPELLINGS = {
    "pg": "PG",
    "programmaticguaranteed": "PG",
    "guaranteed": "PG",
    "pd": "PD",
    "preferreddeal": "PD",
    "preferred": "PD",
    "pa": "PA",
    "privateauction": "PA",
}


def deal_types(value: Any) -> tuple[str, ...]:
    """A seller's list of deal types in the protocol's words (``PG``, ``PD``, ``PA``), first mention first.

    A spelling we do not know is kept as the seller wrote it, so a product is never reported as offering
    "no deal type" when it offers one we merely spell differently; the planner says what it could not use."""
    kinds: list[str] = []
    for item in _str_tuple(value):
        key = "".join(ch for ch in item.lower() if ch.isalnum())
        kind = _DEAL_TYPE_SPELLINGS.get(key, item.strip())
        if kind and kind not in kinds:
            kinds.append(kind)
    return tuple(kinds)


def _req_money(data: dict[str, Any], key: str, what: str) -> Decimal:
    amount = parse_money(data.get(key))
    if amount is None:
        raise InvalidResponse(f"{what}.{key} is missing")
    return amount


def _price(value: Any) -> Decimal | None:
    """A price that may be Money (modern) or a bare number (legacy)."""
    if isinstance(value, dict):
        return parse_money(value)
    return parse_legacy_float(value)


def _pct(value: Any) -> Decimal:
    # Unlike prices a percentage may legitimately be negative (a surcharge), so no parse_legacy_float.
    if value is None:
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidResponse("percentage is not a number")
    try:
        pct = Decimal(str(value))
    except InvalidOperation:
        raise InvalidResponse("percentage is not a number") from None
    if not pct.is_finite():
        raise InvalidResponse("percentage is not finite")
    return pct


def parse_date(value: Any, what: str) -> date:
    if not isinstance(value, str):
        raise InvalidResponse(f"{what} is not a date")
    try:
        if len(value) > 10:  # a datetime where a date was expected: keep its calendar day
            return parse_datetime(value, what).date()
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidResponse(f"{what} is not a date") from None


def parse_datetime(value: Any, what: str) -> datetime:
    """ISO 8601 → aware UTC. Naive values are UTC: the reference seller stamps ``utcnow()``."""
    if not isinstance(value, str):
        raise InvalidResponse(f"{what} is not a datetime")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidResponse(f"{what} is not a datetime") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _opt_datetime(value: Any, what: str) -> datetime | None:
    return None if value is None else parse_datetime(value, what)


def unwrap(payload: Any, key: str) -> dict[str, Any]:
    """``{"quote": {...}}`` → the inner object; a bare object carrying ``<key>_id`` is accepted too."""
    body = _obj(payload, "response")
    inner = body.get(key)
    if isinstance(inner, dict):
        return inner
    if f"{key}_id" in body:
        return body
    raise InvalidResponse(f"response has no '{key}' object")


# -- domain parsers --------------------------------------------------------------------------------


def parse_product(data: Any) -> Product:
    d = _obj(data, "product")
    ext = _opt_obj(d.get("ext"), "product.ext")
    return Product(
        product_id=_req_str(d, "product_id", "product"),
        name=_opt_str(d, "name"),
        description=_opt_str(d, "description"),
        seller_organization_id=_opt_str(d, "seller_organization_id"),
        inventory_type=_opt_str(ext, "inventory_type") or _opt_str(d, "inventory_type"),
        ad_formats=_str_tuple(d.get("ad_formats")),
        delivery_type=_opt_str(d, "delivery_type"),
        pricing_model=_opt_str(d, "pricing_model", "cpm"),
        # null (or absent) is "price on request": it stays None and nothing downstream may guess one.
        base_cpm=parse_money(d.get("base_price")),
        floor_cpm=_price(ext.get("floor_cpm")),
        available_impressions=_opt_int(d, "available_impressions", "product", None),
        minimum_impressions=_int(ext, "minimum_impressions", "product.ext"),
        deal_types=deal_types(ext.get("deal_types")),
        raw=d,
    )


def parse_product_page(payload: Any) -> tuple[list[Any], int | None]:
    """One ``GET /products`` page → (raw product dicts, total_count if the seller reported one)."""
    body = _obj(payload, "response")
    items = body.get("products")
    if not isinstance(items, list):
        raise InvalidResponse("response.products is not a list")
    return items, _opt_int(body, "total_count", "response", None)


def parse_quote(payload: Any) -> Quote:
    q = unwrap(payload, "quote")
    product = _obj(q.get("product"), "quote.product")
    pricing = _obj(q.get("pricing"), "quote.pricing")
    terms = _obj(q.get("terms"), "quote.terms")
    return Quote(
        quote_id=_req_str(q, "quote_id", "quote"),
        status=_req_str(q, "status", "quote"),
        deal_type=_req_str(q, "deal_type", "quote"),
        product_id=_req_str(product, "product_id", "quote.product"),
        product_name=_opt_str(product, "name"),
        base_cpm=_req_money(pricing, "base_cpm", "quote.pricing"),
        final_cpm=_req_money(pricing, "final_cpm", "quote.pricing"),
        tier_discount_pct=_pct(pricing.get("tier_discount_pct")),
        volume_discount_pct=_pct(pricing.get("volume_discount_pct")),
        rationale=_opt_str(pricing, "rationale"),
        # PA quotes may carry no impression commitment; 0 means "none promised", not "none available".
        impressions=_int(terms, "impressions", "quote.terms"),
        flight_start=parse_date(terms.get("flight_start"), "quote.terms.flight_start"),
        flight_end=parse_date(terms.get("flight_end"), "quote.terms.flight_end"),
        guaranteed=terms.get("guaranteed") is True,
        buyer_tier=_opt_str(q, "buyer_tier", "public"),
        expires_at=_opt_datetime(q.get("expires_at"), "quote.expires_at"),
        seller_id=q.get("seller_id") if isinstance(q.get("seller_id"), str) else None,
        raw=q,
    )


def parse_deal(payload: Any) -> Deal:
    d = unwrap(payload, "deal")
    product = _obj(d.get("product"), "deal.product")
    pricing = _obj(d.get("pricing"), "deal.pricing")
    terms = _obj(d.get("terms"), "deal.terms")
    instructions = _opt_obj(d.get("activation_instructions"), "deal.activation_instructions")
    return Deal(
        deal_id=_req_str(d, "deal_id", "deal"),
        deal_type=_req_str(d, "deal_type", "deal"),
        status=_req_str(d, "status", "deal"),
        quote_id=_req_str(d, "quote_id", "deal"),
        product_id=_req_str(product, "product_id", "deal.product"),
        product_name=_opt_str(product, "name"),
        # After a negotiation this is the agreed price, not the list price: it is what we will pay.
        final_cpm=_req_money(pricing, "final_cpm", "deal.pricing"),
        impressions=_int(terms, "impressions", "deal.terms"),
        flight_start=parse_date(terms.get("flight_start"), "deal.terms.flight_start"),
        flight_end=parse_date(terms.get("flight_end"), "deal.terms.flight_end"),
        buyer_tier=_opt_str(d, "buyer_tier", "public"),
        expires_at=_opt_datetime(d.get("expires_at"), "deal.expires_at"),
        activation_instructions={k: v for k, v in instructions.items() if isinstance(v, str)},
        openrtb_params=_opt_obj(d.get("openrtb_params"), "deal.openrtb_params"),
        raw=d,
    )


def parse_negotiation_round(payload: Any) -> NegotiationRound:
    body = _obj(payload, "response")
    rnd = _obj(body.get("round"), "response.round")
    return NegotiationRound(
        negotiation_id=_req_str(body, "negotiation_id", "response"),
        status=_req_str(body, "status", "response"),
        round_number=_int(rnd, "round_number", "round"),
        buyer_price=_price(rnd.get("buyer_price")),
        seller_price=_price(rnd.get("seller_price")),
        action=_req_str(rnd, "action", "round"),
        rationale=_opt_str(rnd, "rationale"),
        rounds_remaining=_int(body, "rounds_remaining", "response"),
        raw=body,
    )


class _PerformanceWire(BaseModel):
    """``GET /api/v1/deals/{id}/performance`` (or the MCP ``get_deal_performance`` text) in either shape.

    Modern: ``impressions_delivered`` and ``spend`` (Money, or a legacy float) with ``as_of``. The reference
    seller: ``impressions_served``, ``avg_cpm_actual`` (float dollars, no spend field), ``delivery_pacing`` and
    ``last_updated``. Counts and money must be non-negative: a negative delivery is garbage, not data.
    """

    model_config = ConfigDict(extra="ignore")

    deal_id: str | None = None
    impressions_delivered: NonNegativeInt | None = None
    impressions_served: NonNegativeInt | None = None
    spend: Any = None
    avg_cpm_actual: Any = None
    as_of: str | None = None
    last_updated: str | None = None
    status: str | None = None
    delivery_status: str | None = None
    delivery_pacing: str | None = None

    @field_validator("impressions_delivered", "impressions_served", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        # Some sellers serialise counts through floats (500000.0); that is still a whole number.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
            raise ValueError("must be a whole number")
        return value


def parse_deal_performance(payload: Any, deal_id: str) -> DealPerformance:
    """Delivery to date, from either shape (see ``_PerformanceWire``); spend without a spend field is
    impressions x ``avg_cpm_actual`` / 1000. A body with no impression count at all is not a reading."""
    body = _obj(payload, "response")
    if isinstance(body.get("performance"), dict):
        body = body["performance"]
    try:
        wire = _PerformanceWire.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "performance"
        raise InvalidResponse(f"performance.{where}: {first['msg']}") from None
    impressions = wire.impressions_delivered if wire.impressions_delivered is not None else wire.impressions_served
    if impressions is None:
        raise InvalidResponse("performance has no impressions_delivered or impressions_served")
    spend = _price(wire.spend)
    derived = spend is None
    if spend is None:
        avg_cpm = _price(wire.avg_cpm_actual)
        spend = cost_for(impressions, avg_cpm) if avg_cpm else Decimal(0)
    if spend < 0:
        raise InvalidResponse("performance.spend is negative")
    stamp = wire.as_of or wire.last_updated
    return DealPerformance(
        deal_id=wire.deal_id or deal_id,
        impressions_delivered=impressions,
        spend=spend,
        as_of=parse_datetime(stamp, "performance.as_of") if stamp else None,
        status=(wire.status or wire.delivery_status or "").strip().lower()[:32],
        delivery_pacing=(wire.delivery_pacing or "").strip().lower()[:32],
        spend_derived=derived,
        raw=body,
    )
