"""Domain types the seller clients return, whatever the wire (REST or MCP) looked like."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    description: str
    seller_organization_id: str
    inventory_type: str
    ad_formats: tuple[str, ...]
    delivery_type: str
    pricing_model: str
    base_cpm: Decimal | None  # None: price on request, never priced by us
    floor_cpm: Decimal | None
    available_impressions: int | None
    minimum_impressions: int
    deal_types: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def publisher_domain(self) -> str:
        """The publisher's site as the seller names it (the product's ``domain``), or "" when it names none.

        The protocol identifies a publisher by ``seller_organization_id`` only; ``domain`` is what a person
        recognises ("meridian-news.example"), so pages show it where the seller sends one."""
        domain = self.raw.get("domain")
        if not isinstance(domain, str):
            return ""
        cleaned = "".join(ch for ch in domain.strip() if ch.isprintable())
        return cleaned[:200]


@dataclass(frozen=True)
class BuyerIdentity:
    seat_id: str | None = None
    agency_id: str | None = None
    advertiser_id: str | None = None
    dsp_platform: str | None = None

    def as_wire(self) -> dict[str, str] | None:
        body = {k: v for k, v in self.__dict__.items() if v}
        return body or None


@dataclass(frozen=True)
class QuoteRequest:
    idempotency_key: str
    product_id: str
    deal_type: str  # PG | PD | PA
    impressions: int
    flight_start: date
    flight_end: date
    target_cpm: Decimal | None = None
    buyer_identity: BuyerIdentity | None = None
    media_type: str = "digital"


@dataclass(frozen=True)
class Quote:
    quote_id: str
    status: str
    deal_type: str
    product_id: str
    product_name: str
    base_cpm: Decimal
    final_cpm: Decimal
    tier_discount_pct: Decimal
    volume_discount_pct: Decimal
    rationale: str
    impressions: int
    flight_start: date
    flight_end: date
    guaranteed: bool
    buyer_tier: str
    expires_at: datetime | None
    seller_id: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Deal:
    deal_id: str
    deal_type: str
    status: str
    quote_id: str
    product_id: str
    product_name: str
    final_cpm: Decimal
    impressions: int
    flight_start: date
    flight_end: date
    buyer_tier: str
    expires_at: datetime | None
    activation_instructions: dict[str, str]
    openrtb_params: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class NegotiationRound:
    negotiation_id: str
    status: str  # active | accepted | rejected | expired
    round_number: int
    buyer_price: Decimal | None
    seller_price: Decimal | None
    action: str
    rationale: str
    rounds_remaining: int
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class DealPerformance:
    """A seller's cumulative delivery of one deal, as of ``as_of`` (None when the seller gives no time)."""

    deal_id: str
    impressions_delivered: int
    spend: Decimal
    as_of: datetime | None = None
    # The seller's own words, kept as data: a delivery status (``makegood_pending``…) and its pacing verdict.
    status: str = ""
    delivery_pacing: str = ""
    # True when the seller sent no spend and it was worked out from an average CPM (which can fall).
    spend_derived: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class TaskState:
    """Where a seller's asynchronous order stands (AdCP ``get_task_status``): still ``submitted``, ``working``
    or ``input-required`` (``message`` says what the seller needs), ``completed`` with its ``deal`` read back,
    or ``rejected``/``failed``/``canceled`` with the seller's reason in ``message``."""

    task_id: str
    status: str
    message: str = ""
    deal: Deal | None = None
    error_code: str = ""

    @property
    def pending(self) -> bool:
        return self.deal is None and self.status in {"submitted", "working", "input-required", "auth-required"}


@dataclass(frozen=True)
class BudgetChange:
    """A booked deal's budget as the seller holds it after the buyer changed it (AdCP ``update_media_buy``):
    the package's ``budget`` and, when the seller states them, the impressions it now delivers."""

    deal_id: str
    package_id: str
    budget: Decimal
    impressions: int | None = None
    status: str = ""
