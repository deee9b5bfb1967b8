"""How the sandbox seller's deals deliver: profiles a test or a demo chooses, and the simulation they drive.

Delivery is a pure function of the deal, its profile and the moment asked about, so the same question always
gets the same answer (deterministic, seeded), except for the fault profiles that exist to be inconsistent.

A profile names a pace relative to straight-line delivery over the flight and a cap on the share of the booked
impressions that can ever be delivered (an ad server stops a deal at its goal):

==============  ==========================================================================================
``scatter``     the default: each deal its own steady pace in [0.7, 1.3], from the seed and the deal id; cap 1.3
``on_pace``     exactly on plan (pace 1.0)
``under[:F]``   steady under-delivery, pace F (default 0.7: 30 % under)
``over[:F]``    steady over-delivery, pace F (default 1.15: 15 % over), stopping at the booked impressions
``stalled``     nothing ever delivers
``makegood``    half pace, and the seller reports ``makegood_pending``
``partial_cancel``  on pace until half the impressions, then stops; the seller reports ``partially_canceled``
``backwards``   a cumulative count that shrinks between calls (a broken seller: the buyer must refuse it)
``negative``    a negative delivered count (garbage)
==============  ==========================================================================================

Profiles apply per deal, else per product, else the seller's default (``--delivery-profile``, or the
``/_sandbox/delivery`` control routes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation

SCATTER_LOW = Decimal("0.7")
SCATTER_SPAN = Decimal("0.6")
SCATTER_CAP = Decimal("1.3")
MAX_FACTOR = Decimal(10)

# name → (default pace, cap, reported status)
_PROFILES: dict[str, tuple[Decimal | None, Decimal, str]] = {
    "scatter": (None, SCATTER_CAP, ""),
    "on_pace": (Decimal(1), Decimal(1), ""),
    "under": (Decimal("0.7"), Decimal(1), ""),
    "over": (Decimal("1.15"), Decimal(1), ""),
    "stalled": (Decimal(0), Decimal(1), ""),
    "makegood": (Decimal("0.5"), Decimal(1), "makegood_pending"),
    "partial_cancel": (Decimal(1), Decimal("0.5"), "partially_canceled"),
    "backwards": (Decimal(1), Decimal(1), ""),
    "negative": (Decimal(1), Decimal(1), ""),
}
PROFILE_NAMES = tuple(_PROFILES)
# Only these take a pace of the caller's choosing.
TUNABLE = frozenset({"under", "over", "on_pace"})


@dataclass(frozen=True)
class DeliveryProfile:
    name: str
    factor: Decimal | None  # None: scatter, drawn per deal
    cap: Decimal
    status: str = ""

    @property
    def label(self) -> str:
        return self.name if self.factor is None or self.name not in TUNABLE else f"{self.name}:{self.factor}"


DEFAULT_PROFILE = DeliveryProfile("scatter", None, SCATTER_CAP)


def parse_profile(text: str) -> DeliveryProfile:
    """``under``, ``over:1.2``, ``on_pace``… → a profile; ``ValueError`` naming what is wrong."""
    name, _, factor_text = str(text).strip().partition(":")
    name = name.strip().lower().replace("-", "_")
    if name not in _PROFILES:
        raise ValueError(f"unknown delivery profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    pace, cap, status = _PROFILES[name]
    if factor_text.strip():
        if name not in TUNABLE:
            raise ValueError(f"profile {name!r} takes no pace; only {', '.join(sorted(TUNABLE))} do")
        try:
            pace = Decimal(factor_text.strip())
        except InvalidOperation:
            raise ValueError(f"pace {factor_text!r} is not a number") from None
        if not pace.is_finite() or not 0 <= pace <= MAX_FACTOR:
            raise ValueError(f"pace must be between 0 and {MAX_FACTOR}")
    return DeliveryProfile(name, pace, cap, status)


def delivery_factor(deal_id: str, seed: int = 0) -> Decimal:
    """The scatter pace of one deal, in [0.7, 1.3]: stable for a deal id and a seed."""
    key = deal_id if seed == 0 else f"{seed}:{deal_id}"
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 10_001
    return SCATTER_LOW + SCATTER_SPAN * Decimal(bucket) / Decimal(10_000)


def flight_window(flight_start: date, flight_end: date) -> tuple[datetime, datetime]:
    """A flight runs from 00:00 UTC on its first day to 24:00 UTC on its last day."""
    start = datetime.combine(flight_start, time(0), tzinfo=UTC)
    end = datetime.combine(flight_end, time(0), tzinfo=UTC) + timedelta(days=1)
    return start, end


def elapsed_fraction(flight_start: date, flight_end: date, now: datetime) -> Decimal:
    """Share of the flight elapsed at ``now``: 0 before the start, 1 after the end."""
    start, end = flight_window(flight_start, flight_end)
    if now <= start:
        return Decimal(0)
    if now >= end:
        return Decimal(1)
    # Integer microseconds keep the ratio exact enough and free of float rounding.
    elapsed = (now - start) // timedelta(microseconds=1)
    total = (end - start) // timedelta(microseconds=1)
    return Decimal(elapsed) / Decimal(total)


@dataclass(frozen=True)
class Delivery:
    impressions: int
    spend_micros: int
    pacing_pct: float
    status: str  # not_started | delivering | completed, or the profile's own (makegood_pending…)
    delivery_pacing: str  # not_started | on_track | behind | ahead | completed


def simulate_delivery(
    *,
    deal_id: str,
    booked: int,
    cpm_micros: int,
    flight_start: date,
    flight_end: date,
    now: datetime,
    profile: DeliveryProfile = DEFAULT_PROFILE,
    seed: int = 0,
) -> Delivery:
    """Delivered = booked x elapsed share x the pace (floored), capped at ``booked x cap``.

    Spend is delivered x CPM / 1000 in integer micros (half-up). ``pacing_pct`` compares delivery with the
    straight-line expectation to date (100.0 = on pace); it is 0.0 before the flight starts.
    """
    fraction = elapsed_fraction(flight_start, flight_end, now)
    pace = profile.factor if profile.factor is not None else delivery_factor(deal_id, seed)
    delivered = int((Decimal(booked) * fraction * pace).to_integral_value(rounding=ROUND_FLOOR))
    ceiling = int((Decimal(booked) * profile.cap).to_integral_value(rounding=ROUND_FLOOR))
    delivered = min(delivered, ceiling)
    spend_micros = (delivered * cpm_micros + 500) // 1000
    expected = Decimal(booked) * fraction
    pacing = (Decimal(delivered) / expected * 100).quantize(Decimal("0.1"), ROUND_HALF_UP) if expected else 0
    if fraction == 0:
        status, verdict = "not_started", "not_started"
    elif fraction == 1 or delivered >= ceiling:
        status, verdict = "completed", "completed"
    else:
        status = "delivering"
        verdict = "behind" if pacing < 90 else "ahead" if pacing > 110 else "on_track"
    if profile.status and fraction > 0:
        status = profile.status
    return Delivery(
        impressions=delivered,
        spend_micros=spend_micros,
        pacing_pct=float(pacing),
        status=status,
        delivery_pacing=verdict,
    )
