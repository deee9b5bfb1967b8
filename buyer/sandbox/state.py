"""The sandbox seller's in-memory state: quotes, deals, negotiations and idempotency records.

Every operation that reads and then writes runs under one lock, so two concurrent bookings of the same quote
cannot both succeed and an idempotent replay never races its original. Each ``create_app`` call builds its
own :class:`SandboxState`; nothing is shared between app instances.

Errors are raised as :class:`SandboxError` carrying the HTTP status and the ``detail`` exactly as the
reference seller words it; the app turns them into ``{"detail": ...}`` responses.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from buyer.sandbox.catalog import Catalog, CatalogProduct
from buyer.sandbox.delivery import DEFAULT_PROFILE, Delivery, DeliveryProfile, simulate_delivery
from buyer.sandbox.pricing import (
    CURRENCY,
    MAX_ROUNDS,
    PriceDecision,
    concession,
    dollars,
    from_micros,
    money,
    negotiation_target,
    price_product,
    seller_move,
    to_micros,
)
from buyer.sandbox.schemas import (
    DealCreate,
    MediaType,
    NegotiationAction,
    NegotiationMessage,
    QuoteCreate,
)

QUOTE_TTL = timedelta(hours=24)
DEAL_TTL = timedelta(days=30)  # deal_book.json: expires_at = created_at + 30 days
DEFAULT_FLIGHT = timedelta(days=30)


class SandboxError(Exception):
    """An HTTP error answer: ``status`` and the ``detail`` value of the ``{"detail": ...}`` envelope."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.headers = headers


def coded(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The structured error detail ``{"error": code, "message": ..., ...}``."""
    return {"error": code, "message": message, **extra}


def unsupported(message: str, capability: str, path: str) -> SandboxError:
    """400 ``unsupported_capability`` with the ``unsupported`` list the reference seller adds."""
    return SandboxError(
        400, coded("unsupported_capability", message, unsupported=[{"capability": capability, "path": path}])
    )


def iso_z(moment: datetime) -> str:
    """``2026-11-24T15:11:10.114812Z``: the reference seller's timestamp format."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def payload_hash(model: QuoteCreate | DealCreate | NegotiationMessage) -> str:
    """Stable hash of a request body without its idempotency key (key order and whitespace do not matter)."""
    body = model.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tier their API key grants (``public`` without one) and their idempotency scope."""

    tier: str = "public"
    scope: str = "public"


@dataclass
class QuoteRecord:
    quote_id: str
    product: CatalogProduct
    deal_type: str
    decision: PriceDecision
    impressions: int | None
    flight_start: date
    flight_end: date
    buyer_tier: str
    buyer_identity: dict[str, Any] | None
    media_type: str
    consent_context: dict[str, Any] | None
    inventory_available: bool
    created_at: datetime
    expires_at: datetime
    seller_id: str
    status: str = "available"
    deal_id: str | None = None

    @property
    def guaranteed(self) -> bool:
        return self.deal_type == "PG"

    def product_ref(self) -> dict[str, Any]:
        return {
            "product_id": self.product.product_id,
            "name": self.product.name,
            "inventory_type": self.product.inventory_type,
        }

    def pricing_wire(self, final: Decimal | None = None, rationale: str | None = None) -> dict[str, Any]:
        d = self.decision
        return {
            "pricing_type": "fixed",
            "base_cpm": money(d.base),
            # Percentages as floats (15.0 = 15 %), as the reference seller serves them.
            "tier_discount_pct": float(d.tier_discount * 100),
            "volume_discount_pct": float(d.volume_discount * 100),
            "final_cpm": money(d.final if final is None else final),
            "pricing_model": "cpm",
            "rationale": d.rationale if rationale is None else rationale,
            "base_cpp": None,
            "final_cpp": None,
        }

    def terms_wire(self) -> dict[str, Any]:
        return {
            "impressions": self.impressions,
            "flight_start": self.flight_start.isoformat(),
            "flight_end": self.flight_end.isoformat(),
            "guaranteed": self.guaranteed,
            "grps": None,
            "guaranteed_grps": None,
            "target_demo": None,
        }

    def to_wire(self) -> dict[str, Any]:
        """``{"quote": {...}}`` as in quote_pd.json."""
        return {
            "quote": {
                "quote_id": self.quote_id,
                "status": self.status,
                "deal_type": self.deal_type,
                "product": self.product_ref(),
                "pricing": self.pricing_wire(),
                "terms": self.terms_wire(),
                "availability": {
                    "inventory_available": self.inventory_available,
                    "estimated_fill_rate": None,
                    "competing_demand": None,
                },
                "buyer_tier": self.buyer_tier,
                "rate_card_id": None,
                "expires_at": iso_z(self.expires_at),
                "seller_id": self.seller_id,
                "created_at": iso_z(self.created_at),
                "deal_id": self.deal_id,
                "media_type": self.media_type,
                "linear_tv": None,
                "consent_context": self.consent_context,
            }
        }


@dataclass
class DealRecord:
    deal_id: str
    quote: QuoteRecord
    final_cpm: Decimal
    rationale: str
    negotiation_id: str | None
    wseat: list[str]
    notes: str | None
    created_at: datetime
    expires_at: datetime
    status: str = "proposed"
    # What the ``backwards`` profile served last, so the next answer can be smaller.
    last_served: int | None = None
    # A misbehaving seller's own figure, when it books other impressions than it quoted (``booking_drift``).
    impressions: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """``{"deal": {...}, "audience_plan_snapshot": null, ...}``, as in deal_book.json."""
        q = self.quote
        return {
            "deal": {
                "deal_id": self.deal_id,
                "deal_type": q.deal_type,
                "status": self.status,
                "quote_id": q.quote_id,
                "rate_card_id": None,
                "product": q.product_ref(),
                "pricing": q.pricing_wire(final=self.final_cpm, rationale=self.rationale),
                "terms": q.terms_wire() | ({"impressions": self.impressions} if self.impressions else {}),
                "buyer_tier": q.buyer_tier,
                # The reference seller leaves seller_id empty on deals (deal_book.json); mirror it.
                "seller_id": None,
                "expires_at": iso_z(self.expires_at),
                "activation_instructions": {
                    "ttd": f"In The Trade Desk, create a new PMP deal with Deal ID: {self.deal_id}",
                    "dv360": f"In DV360, add deal {self.deal_id} under Inventory > My Inventory > Deals",
                    "xandr": f"In Xandr, navigate to Deals and enter Deal ID: {self.deal_id}",
                },
                "openrtb_params": {
                    "id": self.deal_id,
                    "bidfloor": money(self.final_cpm),
                    "at": 1,
                    "wseat": list(self.wseat),
                    "wadomain": [],
                },
                "media_type": q.media_type,
                "linear_tv": None,
                "created_at": iso_z(self.created_at),
                "consent_context": q.consent_context,
                "supply_chain": None,
            },
            "audience_plan_snapshot": None,
            "audience_match_summary": None,
        }


@dataclass
class NegotiationRecord:
    negotiation_id: str
    quote_id: str
    quote_price: Decimal
    floor: Decimal
    target: Decimal
    started_at: datetime
    status: str = "active"  # active | accepted | rejected
    standing: Decimal = Decimal(0)  # the seller's current price: quote price, then its last counter
    last_buyer_price: Decimal | None = None
    priced_rounds: int = 0
    cumulative: float = 0.0
    agreed_price: Decimal | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    completed_at: datetime | None = None

    def response(self, round_wire: dict[str, Any], rounds_remaining: int) -> dict[str, Any]:
        """The NegotiationRoundResponse shape of nego2_open.json."""
        return {
            "negotiation_id": self.negotiation_id,
            "status": self.status,
            "round": round_wire,
            "rounds_remaining": max(rounds_remaining, 0),
        }


@dataclass(frozen=True)
class IdempotencyRecord:
    payload_hash: str
    ref: str  # the quote or deal id this key produced
    response: dict[str, Any] | None = None  # negotiation rounds replay their exact original answer


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id(prefix: str, nbytes: int, taken: dict[str, Any], *, upper: bool = False) -> str:
    while True:
        token = secrets.token_hex(nbytes)
        candidate = f"{prefix}{token.upper() if upper else token}"
        if candidate not in taken:
            return candidate


class SandboxState:
    """All mutable state of one sandbox seller, guarded by a single re-entrant lock.

    ``clock`` returns the current time (timezone-aware); tests replace it to move time forward.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: Callable[[], datetime] | None = None,
        delivery_default: DeliveryProfile = DEFAULT_PROFILE,
        delivery_seed: int = 0,
    ) -> None:
        self.catalog = catalog
        self.clock: Callable[[], datetime] = clock or _utcnow
        # Booking drift, for testing buyers: deals book this many percent more impressions, or at a CPM this
        # many percent higher, than quoted (real sellers have billed above their quotes).
        self.overbook_pct = Decimal(0)
        self.overprice_pct = Decimal(0)
        self.delivery_default = delivery_default
        self.delivery_seed = delivery_seed
        self.product_profiles: dict[str, DeliveryProfile] = {}
        self.deal_profiles: dict[str, DeliveryProfile] = {}
        self._lock = threading.RLock()
        self._quotes: dict[str, QuoteRecord] = {}
        self._deals: dict[str, DealRecord] = {}
        self._negotiations: dict[str, NegotiationRecord] = {}
        self._negotiation_by_quote: dict[str, str] = {}
        self._idempotency: dict[tuple[str, str, str], IdempotencyRecord] = {}

    def now(self) -> datetime:
        moment = self.clock()
        # A naive clock is taken as UTC rather than local time, so tests cannot skew expiry by TZ.
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    # -- idempotency ---------------------------------------------------------------------------

    def _replay(self, caller: Caller, kind: str, key: str, digest: str, what: str) -> IdempotencyRecord | None:
        """The earlier record for this key, ``None`` if the key is new; 409 if used for another body."""
        prior = self._idempotency.get((caller.scope, kind, key))
        if prior is None:
            return None
        if prior.payload_hash != digest:
            raise SandboxError(
                409,
                coded(
                    "idempotency_conflict",
                    f"idempotency_key '{key}' was already used for a different {what}.",
                    unsupported=[],
                ),
            )
        return prior

    def _remember(self, caller: Caller, kind: str, key: str, record: IdempotencyRecord) -> None:
        self._idempotency[(caller.scope, kind, key)] = record

    # -- quotes --------------------------------------------------------------------------------

    def _refresh(self, quote: QuoteRecord) -> None:
        """Lazy expiry: an available quote past ``expires_at`` becomes expired (booked ones never expire)."""
        if quote.status == "available" and self.now() >= quote.expires_at:
            quote.status = "expired"

    def create_quote(self, req: QuoteCreate, caller: Caller) -> dict[str, Any]:
        """``POST /api/v1/quotes``.

        Order, as on the reference seller where it has the check: idempotent replay (200) or conflict (409);
        media_type linear_tv (400); PG without impressions (400); unknown product (404); price on request
        or unsupported deal type or non-USD target (400 unsupported_capability); bad flight dates, too few
        or too many impressions (400). Then the quote is priced for the caller's tier and stored.
        """
        digest = payload_hash(req)
        with self._lock:
            prior = self._replay(caller, "quote", req.idempotency_key, digest, "quote request")
            if prior is not None:
                quote = self._quotes[prior.ref]
                self._refresh(quote)
                return quote.to_wire()

            if req.media_type is MediaType.LINEAR_TV:
                # The reference seller cannot price linear TV as a media type and says so structurally.
                raise unsupported("Seller does not support media_type 'linear_tv'.", "linear_tv", "media_type")
            if req.deal_type.value == "PG" and not req.impressions:
                raise SandboxError(
                    400,
                    coded(
                        "pg_requires_impressions",
                        "Programmatic Guaranteed deals require an impressions count.",
                    ),
                )
            product = self.catalog.product(req.product_id)
            if product is None:
                raise SandboxError(404, coded("product_not_found", f"Product '{req.product_id}' not found in catalog."))
            if product.base_cpm is None:
                raise unsupported(
                    f"Product '{product.product_id}' is priced on request only; contact the seller.",
                    "price_on_request",
                    "product_id",
                )
            if req.deal_type.value not in product.deal_types:
                raise unsupported(
                    f"Product '{product.product_id}' does not support deal type '{req.deal_type.value}' "
                    f"(supported: {', '.join(product.deal_types)}).",
                    f"deal_type:{req.deal_type.value}",
                    "deal_type",
                )
            if req.target_cpm is not None and req.target_cpm.currency != CURRENCY:
                raise unsupported(
                    f"Seller prices in {CURRENCY} only.",
                    f"currency:{req.target_cpm.currency}",
                    "target_cpm.currency",
                )
            now = self.now()
            flight_start = req.flight_start or now.date()
            flight_end = req.flight_end or (flight_start + DEFAULT_FLIGHT)
            if flight_end < flight_start:
                raise SandboxError(400, coded("invalid_flight_dates", "flight_end must not be before flight_start."))
            if req.impressions and req.impressions < product.minimum_impressions:
                raise SandboxError(
                    400,
                    coded(
                        "below_minimum_impressions",
                        f"Minimum impressions for this product: {product.minimum_impressions}.",
                    ),
                )
            available = product.available_impressions
            if req.impressions and available is not None and req.impressions > available:
                raise SandboxError(
                    400,
                    coded(
                        "insufficient_inventory",
                        f"Requested {req.impressions} impressions; only {available} are available.",
                    ),
                )

            decision = price_product(
                base=product.base_cpm,
                floor=product.floor_cpm,
                tier=caller.tier,
                impressions=req.impressions,
                target=from_micros(req.target_cpm.amount_micros) if req.target_cpm else None,
            )
            quote = QuoteRecord(
                quote_id=_new_id("qt-", 6, self._quotes),
                product=product,
                deal_type=req.deal_type.value,
                decision=decision,
                impressions=req.impressions,
                flight_start=flight_start,
                flight_end=flight_end,
                buyer_tier=caller.tier,
                buyer_identity=req.buyer_identity.model_dump(exclude_none=True) if req.buyer_identity else None,
                media_type=req.media_type.value,
                consent_context=req.consent_context,
                inventory_available=available is None or (req.impressions or product.minimum_impressions) <= available,
                created_at=now,
                expires_at=now + QUOTE_TTL,
                seller_id=self.catalog.seller_id,
            )
            self._quotes[quote.quote_id] = quote
            self._remember(caller, "quote", req.idempotency_key, IdempotencyRecord(digest, quote.quote_id))
            return quote.to_wire()

    def get_quote(self, quote_id: str) -> dict[str, Any]:
        """``GET /api/v1/quotes/{id}``: 404 when unknown, 410 when expired (as the reference documents)."""
        with self._lock:
            quote = self._quotes.get(quote_id)
            if quote is None:
                raise SandboxError(404, coded("quote_not_found", f"Quote '{quote_id}' not found."))
            self._refresh(quote)
            if quote.status == "expired":
                raise SandboxError(410, coded("quote_expired", "Quote has expired. Request a new quote."))
            return quote.to_wire()

    # -- deals ---------------------------------------------------------------------------------

    def book_deal(self, req: DealCreate, caller: Caller) -> dict[str, Any]:
        """``POST /api/v1/deals``: an available quote becomes a deal, at the negotiated price if agreed."""
        digest = payload_hash(req)
        with self._lock:
            prior = self._replay(caller, "deal", req.idempotency_key, digest, "deal booking")
            if prior is not None:
                return self._deals[prior.ref].to_wire()

            quote = self._quotes.get(req.quote_id)
            if quote is None:
                raise SandboxError(404, coded("quote_not_found", f"Quote '{req.quote_id}' not found."))
            self._refresh(quote)
            if quote.status == "booked":
                raise SandboxError(
                    409, coded("quote_already_booked", "Quote status is 'booked', expected 'available'.")
                )
            if quote.status != "available":
                raise SandboxError(
                    400,
                    coded(
                        "quote_expired",
                        f"Quote '{quote.quote_id}' expired at {iso_z(quote.expires_at)}. Request a new quote.",
                    ),
                )

            final = quote.decision.final
            rationale = quote.decision.rationale
            negotiation_id: str | None = None
            neg = self._negotiations.get(self._negotiation_by_quote.get(quote.quote_id, ""))
            if neg is not None and neg.status == "accepted" and neg.agreed_price is not None:
                final = neg.agreed_price
                negotiation_id = neg.negotiation_id
                rationale = f"{rationale} | Negotiated to {dollars(final)} CPM ({neg.negotiation_id})"

            seats = [
                seat
                for seat in (
                    (req.buyer_identity.seat_id if req.buyer_identity else None),
                    (quote.buyer_identity or {}).get("seat_id"),
                )
                if seat
            ]
            now = self.now()
            if self.overprice_pct:
                final = (final * (1 + self.overprice_pct / 100)).quantize(Decimal("0.01"))
            deal = DealRecord(
                deal_id=_new_id("DEMO-", 6, self._deals, upper=True),
                quote=quote,
                impressions=(
                    int(quote.impressions * (1 + self.overbook_pct / 100))
                    if self.overbook_pct and quote.impressions is not None
                    else None
                ),
                final_cpm=final,
                rationale=rationale,
                negotiation_id=negotiation_id,
                wseat=list(dict.fromkeys(seats)),
                notes=req.notes,
                created_at=now,
                expires_at=now + DEAL_TTL,
            )
            self._deals[deal.deal_id] = deal
            quote.status = "booked"
            quote.deal_id = deal.deal_id
            self._remember(caller, "deal", req.idempotency_key, IdempotencyRecord(digest, deal.deal_id))
            return deal.to_wire()

    def _deal(self, deal_id: str) -> DealRecord:
        deal = self._deals.get(deal_id)
        if deal is None:
            raise SandboxError(404, coded("deal_not_found", f"Deal '{deal_id}' not found."))
        return deal

    def get_deal(self, deal_id: str) -> dict[str, Any]:
        with self._lock:
            return self._deal(deal_id).to_wire()

    # -- delivery ------------------------------------------------------------------------------

    def set_delivery_profile(
        self, profile: DeliveryProfile, *, deal_id: str | None = None, product_id: str | None = None
    ) -> None:
        """Choose how one deal, one product's deals or (neither given) every other deal delivers."""
        with self._lock:
            if deal_id is not None:
                self._deal(deal_id)  # 404 for an unknown deal
                self.deal_profiles[deal_id] = profile
            elif product_id is not None:
                if self.catalog.product(product_id) is None:
                    raise SandboxError(404, coded("product_not_found", f"Product '{product_id}' not found."))
                self.product_profiles[product_id] = profile
            else:
                self.delivery_default = profile

    def delivery_profiles(self) -> dict[str, Any]:
        with self._lock:
            return {
                "default": self.delivery_default.label,
                "products": {pid: p.label for pid, p in self.product_profiles.items()},
                "deals": {did: p.label for did, p in self.deal_profiles.items()},
                "seed": self.delivery_seed,
            }

    def _profile_for(self, deal: DealRecord) -> DeliveryProfile:
        return (
            self.deal_profiles.get(deal.deal_id)
            or self.product_profiles.get(deal.quote.product.product_id)
            or self.delivery_default
        )

    def _delivery(self, deal: DealRecord, at: datetime | None) -> tuple[Delivery, DeliveryProfile, datetime]:
        quote = deal.quote
        now = self.now()
        moment = now if at is None else min(at if at.tzinfo else at.replace(tzinfo=UTC), now)
        profile = self._profile_for(deal)
        delivery = simulate_delivery(
            deal_id=deal.deal_id,
            booked=quote.impressions or quote.product.minimum_impressions,
            cpm_micros=to_micros(deal.final_cpm),
            flight_start=quote.flight_start,
            flight_end=quote.flight_end,
            now=moment,
            profile=profile,
            seed=self.delivery_seed,
        )
        if profile.name == "backwards":
            # A broken seller: every answer after the first is smaller than the one before.
            served = delivery.impressions if deal.last_served is None else max(0, deal.last_served - 1000)
            deal.last_served = served
            delivery = Delivery(
                served, (served * to_micros(deal.final_cpm) + 500) // 1000, 0.0, delivery.status, "on_track"
            )
        elif profile.name == "negative":
            delivery = Delivery(-1000, -1, 0.0, delivery.status, "on_track")
        return delivery, profile, moment

    def deal_performance(self, deal_id: str, *, at: datetime | None = None) -> dict[str, Any]:
        """``GET /api/v1/deals/{id}/performance``: simulated delivery to date (see ``delivery.py``).

        ``at`` (a sandbox extension, never later than now) answers as of an earlier moment, so a demo can
        show how delivery grew. A deal booked without an impressions count delivers against the product's
        minimum, but reports ``impressions_booked`` as null, as booked.
        """
        with self._lock:
            deal = self._deal(deal_id)
            quote = deal.quote
            delivery, _, moment = self._delivery(deal, at)
            cpm_micros = to_micros(deal.final_cpm)
            return {
                "deal_id": deal.deal_id,
                "impressions_delivered": delivery.impressions,
                "impressions_booked": quote.impressions,
                "spend": {"amount_micros": delivery.spend_micros, "currency": CURRENCY},
                "cpm": {"amount_micros": cpm_micros, "currency": CURRENCY},
                "pacing_pct": delivery.pacing_pct,
                "status": delivery.status,
                "delivery_pacing": delivery.delivery_pacing,
                "flight_start": quote.flight_start.isoformat(),
                "flight_end": quote.flight_end.isoformat(),
                "as_of": iso_z(moment),
            }

    def deal_performance_reference(self, deal_id: str) -> dict[str, Any]:
        """The same delivery in the reference seller's MCP shape (``mcp_tools_real.json``): impressions served,
        the average CPM as float dollars and no spend field."""
        with self._lock:
            deal = self._deal(deal_id)
            delivery, _, moment = self._delivery(deal, None)
            booked = deal.quote.impressions or deal.quote.product.minimum_impressions
            return {
                "deal_id": deal.deal_id,
                "impressions_available": booked,
                "impressions_served": delivery.impressions,
                "fill_rate": round(delivery.impressions / booked, 4) if booked else 0.0,
                "win_rate": 0.0,
                "avg_cpm_actual": float(deal.final_cpm) if delivery.impressions else 0.0,
                "delivery_pacing": delivery.delivery_pacing,
                "last_updated": iso_z(moment),
            }

    # -- negotiation ---------------------------------------------------------------------------

    def negotiate(self, msg: NegotiationMessage, caller: Caller) -> dict[str, Any]:
        """``POST /api/v1/negotiations/messages``; the policy lives in :func:`pricing.seller_move`.

        One negotiation per quote. It is found by ``quote_id`` (or ``proposal_id``): a message carrying a
        ``negotiation_id``, alone or beside the quote's id, is 404 "Proposal not found", as on the reference
        seller (it looks the id up as a proposal).
        """
        digest = payload_hash(msg)
        with self._lock:
            prior = self._replay(caller, "negotiation", msg.idempotency_key, digest, "negotiation message")
            if prior is not None and prior.response is not None:
                return json.loads(json.dumps(prior.response))

            ref = msg.quote_id or msg.proposal_id
            quote = self._quotes.get(ref) if ref else None
            if quote is None or msg.negotiation_id:
                raise SandboxError(404, "Proposal not found")
            neg = self._negotiations.get(self._negotiation_by_quote.get(quote.quote_id, ""))

            if neg is not None and neg.status != "active":
                if neg.status == "accepted" and msg.action is NegotiationAction.ACCEPT:
                    # Accepting an agreed deal again is harmless: answer the agreement (nego2_accept.json).
                    response = neg.response(neg.rounds[-1], 0)
                    self._remember_round(caller, msg, digest, quote.quote_id, response)
                    return response
                raise SandboxError(400, f"Negotiation is {neg.status}, cannot {msg.action.value}")

            self._refresh(quote)
            if quote.status == "booked":
                raise SandboxError(
                    409, coded("quote_already_booked", "Quote status is 'booked', expected 'available'.")
                )
            if quote.status != "available":
                raise SandboxError(400, coded("quote_expired", "Quote has expired. Request a new quote."))
            if msg.buyer_price is not None and msg.buyer_price.currency != CURRENCY:
                raise unsupported(
                    f"Seller negotiates in {CURRENCY} only.",
                    f"currency:{msg.buyer_price.currency}",
                    "buyer_price.currency",
                )

            if neg is None:
                neg = self._open_negotiation(quote)
            if msg.action in (NegotiationAction.COUNTER, NegotiationAction.FINAL_OFFER):
                assert msg.buyer_price is not None  # guaranteed by NegotiationMessage validation
                response = self._priced_round(
                    neg,
                    from_micros(msg.buyer_price.amount_micros),
                    msg.action is NegotiationAction.FINAL_OFFER,
                )
            else:
                response = self._terminal_round(neg, msg.action)
            self._remember_round(caller, msg, digest, quote.quote_id, response)
            return response

    def _remember_round(
        self, caller: Caller, msg: NegotiationMessage, digest: str, quote_id: str, response: dict[str, Any]
    ) -> None:
        # A deep copy, so a replay answers exactly what the original answered whatever happens next.
        snapshot = json.loads(json.dumps(response))
        self._remember(caller, "negotiation", msg.idempotency_key, IdempotencyRecord(digest, quote_id, snapshot))

    def _open_negotiation(self, quote: QuoteRecord) -> NegotiationRecord:
        quote_price = quote.decision.final
        floor = quote.product.floor_cpm if quote.product.floor_cpm is not None else quote_price
        floor = min(floor, quote_price)  # a quote is never below the floor; this only guards the arithmetic
        neg = NegotiationRecord(
            negotiation_id=_new_id("neg-", 4, self._negotiations),
            quote_id=quote.quote_id,
            quote_price=quote_price,
            floor=floor,
            target=negotiation_target(floor, quote_price),
            started_at=self.now(),
            standing=quote_price,
        )
        self._negotiations[neg.negotiation_id] = neg
        self._negotiation_by_quote[quote.quote_id] = neg.negotiation_id
        return neg

    def _round_wire(
        self,
        neg: NegotiationRecord,
        *,
        round_number: int,
        buyer_price: Decimal | None,
        seller_price: Decimal,
        action: str,
        concession_pct: float,
        rationale: str,
    ) -> dict[str, Any]:
        return {
            "round_number": round_number,
            "buyer_price": money(buyer_price if buyer_price is not None else Decimal(0)),
            "seller_price": money(seller_price),
            "action": action,
            "concession_pct": concession_pct,
            "cumulative_concession_pct": neg.cumulative,
            "rationale": rationale,
            "timestamp": iso_z(self.now()),
        }

    def _priced_round(self, neg: NegotiationRecord, buyer_price: Decimal, buyer_final: bool) -> dict[str, Any]:
        round_number = neg.priced_rounds + 1
        move = seller_move(
            quote_price=neg.quote_price,
            floor=neg.floor,
            target=neg.target,
            standing=neg.standing,
            round_number=round_number,
            buyer_price=buyer_price,
            buyer_final=buyer_final,
        )
        if move.action == "counter":
            step, neg.cumulative = concession(neg.quote_price, move.seller_price, neg.cumulative)
            neg.standing = move.seller_price
        else:
            step = 0.0
        neg.priced_rounds = round_number
        neg.last_buyer_price = buyer_price
        neg.status = move.status
        if move.status == "accepted":
            neg.agreed_price = move.seller_price
        if move.status != "active":
            neg.completed_at = self.now()
        round_wire = self._round_wire(
            neg,
            round_number=round_number,
            buyer_price=buyer_price,
            seller_price=move.seller_price,
            action=move.action,
            concession_pct=step,
            rationale=move.rationale,
        )
        neg.rounds.append(round_wire)
        remaining = 0 if move.status == "rejected" else MAX_ROUNDS - round_number
        return neg.response(round_wire, remaining)

    def _terminal_round(self, neg: NegotiationRecord, action: NegotiationAction) -> dict[str, Any]:
        """The buyer's own ``accept`` (of the seller's standing price) or ``reject``; no price engine runs."""
        round_number = max(neg.priced_rounds, 1)
        if action is NegotiationAction.ACCEPT:
            neg.status = "accepted"
            neg.agreed_price = neg.standing
            buyer_price: Decimal | None = neg.standing
            rationale = f"Buyer accepted the seller's price of {dollars(neg.standing)} CPM. Deal agreed."
        else:
            neg.status = "rejected"
            buyer_price = neg.last_buyer_price
            rationale = "Buyer rejected the seller's price. Negotiation closed without agreement."
        neg.completed_at = self.now()
        round_wire = self._round_wire(
            neg,
            round_number=round_number,
            buyer_price=buyer_price,
            seller_price=neg.standing,
            action=action.value,
            concession_pct=0.0,
            rationale=rationale,
        )
        neg.rounds.append(round_wire)
        return neg.response(round_wire, 0)
