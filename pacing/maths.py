"""The pacing maths, as pure functions: curves, expected spend, the guide's thresholds, projections.

``snapshots.py`` computes the same quantities set-based in SQL; the tests hold the two to each other. Money is
integer micros; the thresholds are compared in integers, so exactly 10 % or 25 % off is never rounded over:

- deviation = (actual - expected) / expected;
- beyond 10 % (``10·|actual - expected| > expected``) is a *warning*, beyond 25 % (``4·|…| > expected``)
  *critical*, for under- and over-pacing alike; exactly 10 % raises nothing, exactly 25 % a warning;
- before anything is due (expected 0) nothing is judged, unless money was already spent: that is critical
  over-pacing.

A flight runs from 00:00 UTC on its first day to 24:00 UTC on its last, as the sellers deliver it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from campaigns.models import PacingCurve

WARNING_PCT = 10
CRITICAL_PCT = 25
# Bounds that keep a freak figure (a big spend against a tiny expected one) storable: pacing beyond 10,000 times
# the plan reads 999,999.99 %, a projection is at most $1bn (the largest budget a brief may have).
MAX_PACING_RATIO = 10_000
MAX_PACING_PCT = Decimal("999999.99")
MAX_PROJECTED_MICROS = 10**15
_HUNDRED = Decimal(100)
_PCT = Decimal("0.01")


def flight_bounds(flight_start: date, flight_end: date) -> tuple[datetime, datetime]:
    start = datetime.combine(flight_start, time(0), tzinfo=UTC)
    return start, datetime.combine(flight_end, time(0), tzinfo=UTC) + timedelta(days=1)


def elapsed_share(flight_start: date, flight_end: date, at: datetime) -> Decimal:
    """The share of the flight's time gone by at ``at``: 0 before it starts, 1 once it has ended."""
    start, end = flight_bounds(flight_start, flight_end)
    if at <= start:
        return Decimal(0)
    if at >= end:
        return Decimal(1)
    micro = timedelta(microseconds=1)
    return Decimal((at - start) // micro) / Decimal((end - start) // micro)


def curve_share(curve: str, elapsed: Decimal) -> Decimal:
    """The share of the budget due once ``elapsed`` of the flight has gone by, for a pacing curve.

    ``even`` spends in a straight line; ``front_loaded`` spends twice the even rate at the start, falling to
    nothing at the end (``t(2 - t)``); ``back_loaded`` the mirror image (``t²``); ``asap`` is due by mid-flight
    (``min(1, 2t)``). Every curve starts at 0, ends at 1 and never falls.
    """
    t = min(max(elapsed, Decimal(0)), Decimal(1))
    if curve == PacingCurve.FRONT_LOADED:
        return t * (2 - t)
    if curve == PacingCurve.BACK_LOADED:
        return t * t
    if curve == PacingCurve.ASAP:
        return min(Decimal(1), 2 * t)
    return t


def expected_micros(booked_micros: int, share: Decimal) -> int:
    """What should have been spent of ``booked_micros`` by ``share`` of the curve, to the micro."""
    return int((Decimal(booked_micros) * share).to_integral_value(rounding=ROUND_HALF_EVEN))


def alert_level(*, actual: int, expected: int) -> str:
    """``critical``, ``warning`` or "" (nothing to report), from integer micros."""
    if expected <= 0:
        return "critical" if actual > 0 else ""
    gap = abs(actual - expected)
    if gap * 100 > expected * CRITICAL_PCT:
        return "critical"
    if gap * 100 > expected * WARNING_PCT:
        return "warning"
    return ""


@dataclass(frozen=True)
class Assessment:
    status: str  # not_started | on_track | behind | ahead
    alert_level: str  # "" | warning | critical
    pacing_pct: Decimal | None  # actual as a percentage of expected
    deviation_pct: Decimal | None  # pacing_pct - 100

    @property
    def direction(self) -> str:
        """``under``, ``over`` or "" (on track or not started)."""
        return {"behind": "under", "ahead": "over"}.get(self.status, "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "alert_level": self.alert_level or None,
            "pacing_pct": None if self.pacing_pct is None else float(self.pacing_pct),
            "deviation_pct": None if self.deviation_pct is None else float(self.deviation_pct),
        }


def assess(*, actual: int, expected: int) -> Assessment:
    """Rate actual against expected spend (micros). The level comes from the exact integers, the
    percentages are rounded to 0.01 for people."""
    level = alert_level(actual=actual, expected=expected)
    if expected <= 0:
        return Assessment("ahead" if actual > 0 else "not_started", level, None, None)
    if actual > expected * MAX_PACING_RATIO:
        pacing = MAX_PACING_PCT
    else:
        pacing = (Decimal(actual) * _HUNDRED / Decimal(expected)).quantize(_PCT, rounding=ROUND_HALF_EVEN)
    status = "ahead" if level and actual > expected else "behind" if level else "on_track"
    return Assessment(status, level, pacing, pacing - _HUNDRED)


def projected_micros(*, booked: int, expected: int, actual: int, share: Decimal, final: bool = False) -> int:
    """Spend at flight end if delivery keeps its pace so far: ``actual ÷ share`` of the curve, but never more
    than the booked cost (or what was already spent, if more): a seller stops serving a deal at its booked
    impressions, so a deal running ahead finishes early rather than spending more.

    Once the flight is over, or the deal completed (``final``), it is what was spent; before anything was due,
    the plan (or what was already spent, if more); never more than ``MAX_PROJECTED_MICROS``."""
    if share >= 1 or final:
        return actual
    ceiling = min(max(booked, actual), MAX_PROJECTED_MICROS)
    if expected <= 0 or share <= 0:
        return max(booked, actual)
    if actual > share * MAX_PROJECTED_MICROS:
        return min(ceiling, MAX_PROJECTED_MICROS)
    return min(ceiling, int((Decimal(actual) / share).to_integral_value(rounding=ROUND_HALF_EVEN)))


def days_left(flight_start: date, flight_end: date, on: date) -> int:
    """Flight days from ``on`` to the end, ``on`` included: the whole flight before it starts, 0 after."""
    length = (flight_end - flight_start).days + 1
    return min(max((flight_end - on).days + 1, 0), length)


@dataclass(frozen=True)
class Move:
    from_channel: str
    to_channel: str
    amount_micros: int


def plan_reallocation(
    *,
    channels: dict[str, dict[str, Any]],
    campaign_budget_micros: int,
    minimum_micros: int,
    max_share_pct: Decimal,
) -> list[Move]:
    """Moves of unspent budget from under-pacing channels to over-pacing ones, or ``[]``.

    ``channels`` maps a channel to ``{"status", "budget", "projected"}`` (micros): its pacing status, its current
    budget and its projected spend at flight end. An under-pacing channel can give what it will not spend
    (``budget - projected``); the total moved is capped at ``max_share_pct`` of the campaign budget and must
    reach ``minimum_micros``. Receivers share the amount in proportion to how far they run over their budget
    (equally when none does yet), whole cents each; the campaign total never changes.
    """
    givers = sorted(
        (
            (_whole_cents(max(0, info["budget"] - info["projected"])), name)
            for name, info in channels.items()
            if info["status"] == "behind"
        ),
        reverse=True,
    )
    takers = sorted(name for name, info in channels.items() if info["status"] == "ahead")
    spare = sum(amount for amount, _ in givers)
    cap = int(Decimal(campaign_budget_micros) * max_share_pct / _HUNDRED)
    total = _whole_cents(min(spare, cap))
    if not takers or total < max(minimum_micros, 1):
        return []
    excess = {name: max(0, channels[name]["projected"] - channels[name]["budget"]) for name in takers}
    weights = excess if sum(excess.values()) > 0 else dict.fromkeys(takers, 1)
    shares = _split(total, weights)
    moves: list[Move] = []
    # Givers fund receivers in order: the biggest spare first, each receiver's share filled in turn.
    remaining = {name: amount for amount, name in givers if amount > 0}
    for taker in takers:
        need = shares.get(taker, 0)
        for giver, left in remaining.items():
            if need <= 0:
                break
            take = min(need, left)
            if take > 0:
                moves.append(Move(giver, taker, take))
                remaining[giver] = left - take
                need -= take
    return moves


def _whole_cents(micros: int) -> int:
    return micros - micros % 10_000


def _split(total: int, weights: dict[str, int]) -> dict[str, int]:
    """``total`` (whole cents) in proportion to ``weights``, whole cents each, adding up exactly."""
    names = [name for name, weight in weights.items() if weight > 0]
    weight_sum = sum(weights[name] for name in names)
    shares = {name: _whole_cents(total * weights[name] // weight_sum) for name in names}
    shares[names[0]] += total - sum(shares.values())
    return shares
