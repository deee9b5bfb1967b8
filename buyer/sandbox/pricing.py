"""Money, tiered pricing and the negotiation policy of the sandbox seller (delivery is in ``delivery.py``).

Pure functions over ``Decimal`` dollars: no state, no I/O, so the rules can be read (and tested) in one place.
Money leaves this module as ``{"amount_micros": int, "currency": "USD"}``; floats appear only in the legacy
fields the reference seller itself serves as floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

MICROS_PER_UNIT = 1_000_000
CENT = Decimal("0.01")
CURRENCY = "USD"

# ------------------------------------------------------------------------------------------------
# Money
# ------------------------------------------------------------------------------------------------


def round_cents(amount: Decimal) -> Decimal:
    """Half-up to the cent, as a price list would."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def to_micros(amount: Decimal) -> int:
    return int((amount * MICROS_PER_UNIT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_UNIT


def money(amount: Decimal, currency: str = CURRENCY) -> dict[str, Any]:
    """Decimal dollars → the wire Money object."""
    return {"amount_micros": to_micros(amount), "currency": currency}


def legacy_float(amount: Decimal | None) -> float | None:
    """Only for the reference seller's legacy float fields (``ext.floor_cpm``, ``/pricing``)."""
    return None if amount is None else float(amount)


def dollars(amount: Decimal) -> str:
    """``$15.00``: the format the reference seller's rationale strings use."""
    return f"${round_cents(amount):,.2f}"


# ------------------------------------------------------------------------------------------------
# Tiered pricing
# ------------------------------------------------------------------------------------------------

TIERS: tuple[str, ...] = ("public", "seat", "agency", "advertiser")
TIER_DISCOUNTS: dict[str, Decimal] = {
    "public": Decimal("0"),
    "seat": Decimal("0.05"),
    "agency": Decimal("0.10"),
    "advertiser": Decimal("0.15"),
}
# Highest bracket first: the first threshold the volume reaches wins.
VOLUME_BRACKETS: tuple[tuple[int, Decimal], ...] = (
    (10_000_000, Decimal("0.10")),
    (5_000_000, Decimal("0.05")),
)


def volume_discount(impressions: int | None) -> Decimal:
    for threshold, discount in VOLUME_BRACKETS:
        if impressions is not None and impressions >= threshold:
            return discount
    return Decimal("0")


@dataclass(frozen=True)
class PriceDecision:
    """What a quote (or the ``/pricing`` preview) says about price."""

    base: Decimal
    tier: str
    tier_discount: Decimal  # fraction, 0.10 = 10 %
    volume_discount: Decimal  # fraction
    final: Decimal  # cents
    target_applied: bool
    rationale: str


def price_product(
    *,
    base: Decimal,
    floor: Decimal | None,
    tier: str,
    impressions: int | None,
    target: Decimal | None = None,
) -> PriceDecision:
    """Price a product for a caller tier.

    ``base x (1 - tier) x (1 - volume)``, rounded to the cent, never below the floor. A buyer ``target``
    between the floor and that price becomes the price; a target above it changes nothing, and a target
    below the floor is ignored (the seller does not meet a below-floor ask by quoting its floor).
    """
    tier_cut = TIER_DISCOUNTS[tier]
    volume_cut = volume_discount(impressions)
    listed = round_cents(base * (1 - tier_cut) * (1 - volume_cut))
    parts = [f"Base price: {dollars(base)} CPM"]
    if tier_cut:
        parts.append(f"{tier.title()} tier: -{tier_cut * 100:.0f}%")
    if volume_cut:
        parts.append(f"Volume discount: -{volume_cut * 100:.1f}%")
    if floor is not None and listed < floor:
        listed = floor
        parts.append(f"Floor enforced: {dollars(floor)} CPM")
    final = listed
    target_applied = False
    if target is not None and target < listed and (floor is None or target >= floor):
        final = round_cents(target)
        target_applied = True
        parts.append(f"Buyer target accepted: {dollars(final)} CPM")
    parts.append(f"Final price: {dollars(final)} CPM")
    savings = 1 - final / base if base > 0 else Decimal(0)
    if savings > 0:
        parts.append(f"(Total savings: {savings * 100:.1f}%)")
    return PriceDecision(
        base=base,
        tier=tier,
        tier_discount=tier_cut,
        volume_discount=volume_cut,
        final=final,
        target_applied=target_applied,
        rationale=" | ".join(parts),
    )


# ------------------------------------------------------------------------------------------------
# Negotiation policy
# ------------------------------------------------------------------------------------------------

MAX_ROUNDS = 3


def negotiation_target(floor: Decimal, quote_price: Decimal) -> Decimal:
    """The seller's walk-away-happy price: midway between its floor and the quote's price."""
    return round_cents((floor + quote_price) / 2)


def scheduled_counter(quote_price: Decimal, target: Decimal, round_number: int) -> Decimal:
    """Where the seller's counter stands in a round: halfway to the target in round 1, the target after."""
    if round_number <= 1:
        return round_cents(quote_price - (quote_price - target) / 2)
    return target


@dataclass(frozen=True)
class SellerMove:
    """The seller's answer to one priced buyer message (counter or final_offer)."""

    status: str  # active | accepted | rejected
    action: str  # the seller's action: counter | accept | reject
    seller_price: Decimal
    rationale: str


def seller_move(
    *,
    quote_price: Decimal,
    floor: Decimal,
    target: Decimal,
    standing: Decimal,
    round_number: int,
    buyer_price: Decimal,
    buyer_final: bool,
) -> SellerMove:
    """Decide the seller's answer to a buyer price.

    ``standing`` is the seller's last counter (the quote price before any). The rules, in order:

    1. ``buyer_price`` ≥ target, or ≥ the standing counter → accepted at the buyer's price.
    2. Last round (``MAX_ROUNDS``) or a buyer ``final_offer`` below that → rejected; the standing price
       is reported as the seller's best.
    3. Below the floor in round 1 → counter at the floor (as the reference seller does: it names its
       minimum viable price rather than walk away).
    4. Otherwise → counter at ``min(standing, scheduled_counter(round))``.

    Counters therefore never rise between rounds and never fall below the floor (the target is ≥ floor).
    """
    if buyer_price >= target or buyer_price >= standing:
        return SellerMove(
            "accepted", "accept", buyer_price, "Buyer price meets or exceeds seller target. Deal accepted."
        )
    if buyer_final:
        return SellerMove(
            "rejected",
            "reject",
            standing,
            f"Final offer {dollars(buyer_price)} is below what we can accept. "
            f"Our best price remains {dollars(standing)} CPM. Negotiation closed without agreement.",
        )
    if round_number >= MAX_ROUNDS:
        return SellerMove(
            "rejected",
            "reject",
            standing,
            f"Maximum {MAX_ROUNDS} rounds reached. Negotiation concluded without agreement "
            f"(our best price was {dollars(standing)} CPM).",
        )
    if buyer_price < floor and round_number == 1:
        return SellerMove(
            "active",
            "counter",
            floor,
            f"Buyer offer {dollars(buyer_price)} is below our floor. Countering at the floor price "
            f"{dollars(floor)} CPM — the minimum viable price for this inventory "
            f"(round {round_number}/{MAX_ROUNDS}).",
        )
    counter = min(standing, scheduled_counter(quote_price, target, round_number))
    return SellerMove(
        "active",
        "counter",
        counter,
        f"Counter at {dollars(counter)} CPM (round {round_number}/{MAX_ROUNDS}).",
    )


def concession(reference: Decimal, seller_price: Decimal, cumulative_before: float) -> tuple[float, float]:
    """This round's and the cumulative concession, as fractions of the quote price (the samples' 0.2 = 20 %).

    Only downward moves count; a round that does not go below the seller's lowest price so far concedes 0.
    """
    if reference <= 0:
        return 0.0, cumulative_before
    total = float(max(Decimal(0), (reference - seller_price) / reference))
    incremental = max(0.0, total - cumulative_before)
    return incremental, cumulative_before + incremental
