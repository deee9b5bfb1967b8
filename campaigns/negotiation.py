"""Negotiation strategies: pure functions of the terms and the rounds so far. No I/O, no model, no clock.

A negotiation starts from a seller's quote that is above the brief's target CPM. Each round the buyer makes a
move (counter, accept the seller's standing price, or walk away) and the seller answers with its own price.
Every strategy obeys the same bounds, whatever the seller does:

- it never offers, and never accepts, above ``Terms.walk_away`` (which is never above the ceiling, the brief's
  max CPM, nor above the seller's own quote: negotiating can only improve a price);
- it never offers less than it offered before (a buyer who retreats is not believed);
- it stops after ``Terms.max_rounds`` priced rounds.

Walking away keeps the quote as it was: the seller's quoted price stands for the line, as it did before.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from statistics import median

CENT = Decimal("0.01")


class Strategy(StrEnum):
    NONE = "none"
    THRESHOLD = "threshold"
    ADAPTIVE = "adaptive"
    COMPETITIVE = "competitive"


class Action(StrEnum):
    COUNTER = "counter"
    ACCEPT = "accept"
    WALK_AWAY = "walk_away"


@dataclass(frozen=True)
class Terms:
    """What the buyer knows when it starts: the quote, the brief's target, and the most it agrees to."""

    quoted: Decimal  # the seller's quoted CPM
    target: Decimal  # the CPM the brief wants
    walk_away: Decimal  # the most this buyer agrees to: never above the ceiling nor the quote
    max_rounds: int = 3
    step_pct: Decimal = Decimal(25)  # threshold: each counter concedes this share of the target-to-walk-away gap
    competing: tuple[Decimal, ...] = ()  # real quotes of other sellers for the same channel and format


def terms_for(
    strategy: Strategy,
    *,
    quoted: Decimal,
    target: Decimal,
    ceiling: Decimal | None,
    competing: tuple[Decimal, ...] = (),
    max_rounds: int = 3,
    step_pct: Decimal = Decimal(25),
) -> Terms:
    """The terms of one negotiation. The walk-away price is the lower of the ceiling (the brief's max CPM) and
    the quote; the competitive strategy lowers it to the median of the competing sellers' real quotes."""
    walk_away = min(ceiling, quoted) if ceiling is not None else quoted
    rivals = [p for p in competing if p > 0]
    if strategy == Strategy.COMPETITIVE and rivals:
        walk_away = min(walk_away, _cents(Decimal(str(median(rivals)))))
    return Terms(
        quoted=quoted,
        target=target,
        walk_away=walk_away,
        max_rounds=max_rounds,
        step_pct=step_pct,
        competing=tuple(sorted(rivals)),
    )


@dataclass(frozen=True)
class Round:
    """One exchange: what the buyer offered and what the seller answered."""

    buyer_price: Decimal
    seller_price: Decimal
    rounds_remaining: int | None = None  # what the seller said is left after this round, when it says


@dataclass(frozen=True)
class Move:
    action: Action
    price: Decimal | None  # the offer for a counter; the seller's standing price for an accept
    reason: str


def worth_negotiating(terms: Terms) -> str:
    """Why a quote is not negotiated ("" when it is): only above the target, with room under the ceiling."""
    if terms.quoted <= terms.target:
        return "the quote is at or below the target CPM"
    if terms.target >= terms.walk_away:
        return "the ceiling leaves no room below the quote"
    if terms.max_rounds < 1:
        return "no negotiation rounds are allowed"
    return ""


def next_move(strategy: Strategy, terms: Terms, rounds: tuple[Round, ...]) -> Move:
    """The buyer's next move after ``rounds`` (oldest first), by ``strategy``; always within the bounds."""
    if strategy == Strategy.NONE:
        return Move(Action.WALK_AWAY, None, "negotiation is off for this brief")
    standing = rounds[-1].seller_price if rounds else terms.quoted
    last_offer = rounds[-1].buyer_price if rounds else None
    if rounds and standing <= last_offer:  # type: ignore[operator]
        return _accept(standing, "the seller met our offer")
    # The seller's last round rejects an offer below its own target, and then its quote stands: on the last
    # round (ours, or the one the seller says is its last) its standing price, if within bounds, is taken.
    seller_last = bool(rounds) and rounds[-1].rounds_remaining is not None and rounds[-1].rounds_remaining <= 1
    if len(rounds) >= terms.max_rounds or seller_last:
        if standing <= terms.walk_away and standing < terms.quoted:
            return _accept(standing, f"last round: the seller's ${standing} is within our walk-away price")
        return Move(Action.WALK_AWAY, None, f"{len(rounds)} rounds without a price within our walk-away")
    match strategy:
        case Strategy.THRESHOLD:
            offer, why = _threshold(terms, rounds)
        case Strategy.ADAPTIVE:
            if len(rounds) >= 2 and _moved(rounds[-2].seller_price, standing) <= Decimal("0.005"):
                return Move(Action.WALK_AWAY, None, "the seller stopped moving")
            offer, why = _adaptive(terms, rounds)
        case Strategy.COMPETITIVE:
            offer, why = _competitive(terms, rounds)
    offer = _bounded(offer, terms, last_offer)
    if offer >= standing:
        # Our next offer would reach the seller's price: take its price instead, if we may.
        if standing <= terms.walk_away:
            return _accept(standing, "the seller's price is within our next offer")
        offer = terms.walk_away
    return Move(Action.COUNTER, offer, why)


def _accept(price: Decimal, reason: str) -> Move:
    return Move(Action.ACCEPT, price, reason)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_DOWN)


def _bounded(offer: Decimal, terms: Terms, last_offer: Decimal | None) -> Decimal:
    offer = min(_cents(offer), terms.walk_away)
    if last_offer is not None:
        offer = max(offer, last_offer)
    return max(offer, CENT)


def _moved(before: Decimal, after: Decimal) -> Decimal:
    return (before - after) / before if before > 0 else Decimal(0)


def _threshold(terms: Terms, rounds: tuple[Round, ...]) -> tuple[Decimal, str]:
    """Open at the target and concede a fixed step of the gap to the walk-away price each round."""
    gap = terms.walk_away - terms.target
    step = gap * terms.step_pct / 100 * len(rounds)
    if not rounds:
        return terms.target, f"opening at the target ${terms.target}"
    return terms.target + step, f"conceding {terms.step_pct} % of the gap a round"


def _adaptive(terms: Terms, rounds: tuple[Round, ...]) -> tuple[Decimal, str]:
    """Open at the target; then concede as much as the seller conceded in its last move (tit for tat)."""
    if not rounds:
        return terms.target, f"opening at the target ${terms.target}"
    before = rounds[-2].seller_price if len(rounds) >= 2 else terms.quoted
    seller_step = max(Decimal(0), before - rounds[-1].seller_price)
    return rounds[-1].buyer_price + seller_step, f"matching the seller's last concession of ${_cents(seller_step)}"


def _competitive(terms: Terms, rounds: tuple[Round, ...]) -> tuple[Decimal, str]:
    """Open at the best competing quote (not below the target) and move toward the walk-away price (the
    competitors' median) over the rounds allowed."""
    if not terms.competing:
        return _threshold(terms, rounds)
    opening = max(terms.target, min(terms.competing[0], terms.walk_away))
    if not rounds:
        return opening, f"opening at the best competing quote ${_cents(opening)}"
    share = min(Decimal(len(rounds)) / Decimal(max(1, terms.max_rounds - 1)), Decimal(1))
    return opening + (terms.walk_away - opening) * share, "moving toward the competing sellers' median price"
