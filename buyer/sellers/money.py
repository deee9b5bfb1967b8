"""Money at the seller boundary: ``{"amount_micros": int, "currency": "USD"}`` on the wire, Decimal inside."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

MICROS_PER_UNIT = 1_000_000
CENT = Decimal("0.01")


class MoneyError(ValueError):
    """A value that should be Money is not."""


def micros_to_decimal(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_UNIT


def decimal_to_micros(amount: Decimal) -> int:
    return int((amount * MICROS_PER_UNIT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def money(amount: Decimal, currency: str = "USD") -> dict[str, Any]:
    return {"amount_micros": decimal_to_micros(amount), "currency": currency}


def parse_money(value: Any, *, currency: str = "USD") -> Decimal | None:
    """Money object → Decimal; ``None`` stays ``None`` (price on request). Anything else is an error."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("amount_micros"), int)
        or isinstance(value.get("amount_micros"), bool)
    ):
        raise MoneyError(f"not a Money object: {value!r}")
    if value.get("currency", currency) != currency:
        raise MoneyError(f"unsupported currency {value.get('currency')!r}")
    return micros_to_decimal(value["amount_micros"])


def parse_legacy_float(value: Any) -> Decimal | None:
    """The seller's legacy float prices (MCP tools, ``/pricing``, ``ext.floor_cpm``) → Decimal via ``str``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MoneyError(f"not a price: {value!r}")
    amount = Decimal(str(value))
    if not amount.is_finite() or amount < 0:
        raise MoneyError(f"not a price: {value!r}")
    return amount


def cost_for(impressions: int, cpm: Decimal) -> Decimal:
    """Cost of ``impressions`` at ``cpm``, rounded up to the cent so budget checks stay conservative."""
    return (Decimal(impressions) * cpm / 1000).quantize(CENT, rounding=ROUND_CEILING)
