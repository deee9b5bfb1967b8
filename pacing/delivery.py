"""Delivery: read what each seller says its deals delivered and store it, checked, as cumulative readings.

Each seller is read through its guarded client (timeout, breaker, per-process concurrency cap), its deals in
parallel, in chunks that separate Celery tasks carry; a seller that is down costs its own chunk and nothing
else. A reading is stored only when it is plausible:

- garbage (not the protocol's shape, a negative count or spend) is refused by the seller client as an invalid
  response, which the breaker counts;
- a reading dated more than ``FUTURE_SLACK`` ahead of our clock, or more than ``IMPLAUSIBLE_FACTOR`` times the
  booked impressions, is refused here;
- cumulative figures never fall: a reading lower than the last one stored is the seller's error;
- a reading no newer than the stored one (a redelivered task, a slow thread) changes nothing, and the same
  figures at a newer moment only move ``as_of`` forward: the time series keeps one row per change.

Refused readings are recorded on the deal (``DealDelivery.error``), never stored as delivery. Deals move
``booked → delivering → completed`` (flight over, or fully delivered) through the deal state machine, audited
as ``system``; a seller's own ``makegood_pending`` / ``partially_canceled`` is followed too.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from buyer.events.models import EventType
from buyer.events.services import event_emit_many
from buyer.sellers.errors import SellerError
from buyer.sellers.models import Seller
from buyer.sellers.money import decimal_to_micros, micros_to_decimal
from buyer.sellers.registry import client_for, record_health
from buyer.sellers.rest import excerpt
from buyer.sellers.types import DealPerformance
from campaigns.models import BookedDeal, DealStatus
from campaigns.services import DealMove, deal_transition_many
from pacing.maths import flight_bounds
from pacing.models import DealDelivery, DeliveryReading

logger = logging.getLogger(__name__)

# Deals the seller holds for delivery: the ones whose delivery is read.
PACED_STATUSES = (
    DealStatus.BOOKED,
    DealStatus.DELIVERING,
    DealStatus.MAKEGOOD_PENDING,
    DealStatus.PARTIALLY_CANCELED,
)
# What sellers call the special states our state machine has too.
SELLER_STATES = {"makegood_pending": DealStatus.MAKEGOOD_PENDING, "partially_canceled": DealStatus.PARTIALLY_CANCELED}
FUTURE_SLACK = timedelta(minutes=10)
# More than ten times what was booked (impressions or money) is not delivery but a broken seller.
IMPLAUSIBLE_FACTOR = 10
MIN_PLAUSIBLE_IMPRESSIONS = 1_000_000  # the bound for a deal booked without an impression count
MAX_ERROR_TEXT = 300


class ReadingRefused(Exception):
    """A reading that must not be stored as delivery; the message says why, for the deal's record."""


@dataclass
class PullResult:
    """What one pull did: counts by outcome, and the deals whose delivery could not be read."""

    stored: int = 0
    unchanged: int = 0
    failed: int = 0
    transitions: int = 0
    errors: dict[int, str] = field(default_factory=dict)

    def add(self, other: PullResult) -> None:
        self.stored += other.stored
        self.unchanged += other.unchanged
        self.failed += other.failed
        self.transitions += other.transitions
        self.errors.update(other.errors)

    def as_dict(self) -> dict[str, int]:
        return {"stored": self.stored, "unchanged": self.unchanged, "failed": self.failed, "moved": self.transitions}


# --- which deals, in which chunks ---------------------------------------------------------------------------


def deals_to_read(*, now: datetime | None = None, job_ids: list | None = None):
    """Deals in a paced state whose flight has started (nothing can have delivered before)."""
    today = (now or timezone.now()).date()
    deals = BookedDeal.objects.filter(status__in=PACED_STATUSES, flight_start__lte=today)
    if job_ids is not None:
        deals = deals.filter(job_id__in=job_ids)
    return deals


def delivery_chunks(*, now: datetime | None = None, job_ids: list | None = None) -> list[tuple[int | None, list[int]]]:
    """``(seller id, deal pks)`` chunks of at most ``PACING_DELIVERY_CHUNK`` deals, one seller each."""
    by_seller: dict[int | None, list[int]] = defaultdict(list)
    for pk, seller_id in (
        deals_to_read(now=now, job_ids=job_ids).order_by("seller_id", "pk").values_list("pk", "seller_id")
    ):
        by_seller[seller_id].append(pk)
    size = settings.PACING_DELIVERY_CHUNK
    return [(seller, pks[i : i + size]) for seller, pks in by_seller.items() for i in range(0, len(pks), size)]


# --- reading a seller ---------------------------------------------------------------------------------------


def delivery_pull(*, seller_id: int | None, deal_pks: list[int], as_of: datetime | None = None) -> PullResult:
    """Read and record the delivery of these deals, all booked at one seller. Safe to run twice.

    ``as_of`` (the demo's history) asks the seller for an earlier moment and records the reading then."""
    deals = list(
        deals_to_read(now=as_of).filter(pk__in=deal_pks).select_related("job").order_by("pk")
        if seller_id is not None
        else BookedDeal.objects.none()
    )
    seller = Seller.objects.filter(pk=seller_id).first() if seller_id is not None else None
    fetched_at = as_of or timezone.now()
    if seller is None:
        orphans = list(deals_to_read().filter(pk__in=deal_pks, seller__isnull=True))
        return _record_all({deal: SellerError("the seller was deleted", code="seller_deleted") for deal in orphans})
    deals = [deal for deal in deals if deal.seller_id == seller.pk]
    if not deals:
        return PullResult()
    # One guarded client for every thread: its breaker and slot are thread-safe, and so is httpx's Client
    # ("It can be shared between threads", its docstring); MCP calls open a session each.
    client = client_for(seller)

    def read(deal: BookedDeal) -> DealPerformance | SellerError:
        try:
            if as_of is not None:
                return client.deal_performance(deal.deal_id, as_of=as_of)
            return client.deal_performance(deal.deal_id)
        except SellerError as exc:
            return exc
        except Exception as exc:
            logger.warning("delivery of deal %s at %s failed unexpectedly", deal.deal_id, seller.name, exc_info=True)
            return SellerError(f"unexpected {type(exc).__name__}", code="unexpected_error")

    try:
        workers = max(1, min(settings.PACING_DELIVERY_PARALLEL, seller.max_concurrency, len(deals)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seller-delivery") as pool:
            readings = dict(zip(deals, pool.map(read, deals), strict=True))
    finally:
        client.close()
        record_health([client])
    return _record_all(readings, fetched_at=fetched_at, seller_name=seller.name)


def _record_all(
    readings: dict[BookedDeal, DealPerformance | SellerError],
    *,
    fetched_at: datetime | None = None,
    seller_name: str = "",
) -> PullResult:
    result = PullResult()
    newly_failing: dict[str, list[tuple[BookedDeal, str]]] = defaultdict(list)
    outcomes = delivery_record_many(readings, fetched_at=fetched_at or timezone.now())
    for deal in readings:
        outcome = outcomes[deal.pk]
        if outcome.error:
            result.failed += 1
            result.errors[deal.pk] = outcome.error
            if outcome.first_error:
                newly_failing[str(deal.job_id)].append((deal, outcome.error))
        elif outcome.stored:
            result.stored += 1
        else:
            result.unchanged += 1
        result.transitions += outcome.transitions
    # Once per deal that starts failing, not once per attempt: a seller down for a day is one event per campaign.
    event_emit_many(
        [
            {
                "event_type": EventType.PACING_DELIVERY_FAILED,
                "flow_id": job_id,
                "flow_type": "pacing",
                "payload": {
                    "seller": seller_name,
                    "deals": [deal.deal_id for deal, _ in failures][:50],
                    "error": failures[0][1],
                },
            }
            for job_id, failures in newly_failing.items()
        ]
    )
    return result


@dataclass(frozen=True)
class Outcome:
    stored: bool = False
    error: str = ""
    first_error: bool = False
    transitions: int = 0


STATE_FIELDS = (
    "impressions",
    "spend_micros",
    "as_of",
    "seller_status",
    "seller_pacing",
    "checked_at",
    "error",
    "error_at",
    "consecutive_errors",
)


def delivery_record(*, deal: BookedDeal, reading: DealPerformance | SellerError, fetched_at: datetime) -> Outcome:
    """Check one reading against what is stored and keep it, or record why not."""
    return delivery_record_many({deal: reading}, fetched_at=fetched_at)[deal.pk]


def delivery_record_many(
    readings: dict[BookedDeal, DealPerformance | SellerError], *, fetched_at: datetime
) -> dict[int, Outcome]:
    """Check each reading against what is stored for its deal and keep it, or record why not; then move the deals
    their delivery says have moved. One transaction and a handful of statements for the whole chunk; the deals'
    delivery rows are locked (in key order), so two pulls of the same deals take turns."""
    pks = sorted(deal.pk for deal in readings)
    outcomes: dict[int, Outcome] = {}
    with transaction.atomic():
        DealDelivery.objects.bulk_create([DealDelivery(deal_id=pk) for pk in pks], ignore_conflicts=True)
        states = {s.pk: s for s in DealDelivery.objects.select_for_update().filter(pk__in=pks).order_by("pk")}
        statuses = dict(BookedDeal.objects.filter(pk__in=pks).values_list("pk", "status"))
        new_readings: list[DeliveryReading] = []
        moves: list[DealMove] = []
        for deal, reading in readings.items():
            state = states[deal.pk]
            try:
                if isinstance(reading, SellerError):
                    raise ReadingRefused(excerpt(str(reading), MAX_ERROR_TEXT))
                figures = _checked(deal, state, reading, fetched_at)
            except ReadingRefused as exc:
                first = state.consecutive_errors == 0
                state.error, state.error_at, state.checked_at = str(exc)[:MAX_ERROR_TEXT], fetched_at, fetched_at
                state.consecutive_errors += 1
                outcomes[deal.pk] = Outcome(error=state.error, first_error=first)
                continue
            state.checked_at, state.error, state.consecutive_errors = fetched_at, "", 0
            if figures is None:  # no newer than what we hold: a replay or a late thread
                outcomes[deal.pk] = Outcome()
                continue
            as_of, impressions, spend_micros = figures
            changed = state.as_of is None or (impressions, spend_micros) != (state.impressions, state.spend_micros)
            if changed:
                new_readings.append(
                    DeliveryReading(
                        deal_id=deal.pk,
                        as_of=as_of,
                        impressions=impressions,
                        spend_micros=spend_micros,
                        seller_status=reading.status,
                        fetched_at=fetched_at,
                    )
                )
            state.impressions, state.spend_micros, state.as_of = impressions, spend_micros, as_of
            state.seller_status, state.seller_pacing = reading.status, reading.delivery_pacing
            move = _next_state(deal, DealStatus(statuses[deal.pk]), impressions, as_of, reading.status)
            if move is not None:
                moves.append(move)
            outcomes[deal.pk] = Outcome(stored=changed)
        DealDelivery.objects.bulk_update(list(states.values()), STATE_FIELDS, batch_size=500)
        DeliveryReading.objects.bulk_create(new_readings, ignore_conflicts=True, batch_size=1000)
        made = deal_transition_many(moves)
        event_emit_many(
            [
                {
                    "event_type": EventType.DEAL_STATUS_CHANGED,
                    "flow_id": str(m.deal.job_id),
                    "flow_type": "pacing",
                    "deal_id": m.deal.deal_id,
                    "payload": {"from": m.from_status, "to": m.to_status, "reason": m.reason, "actor": "system"},
                }
                for m in made
            ]
        )
    for move in made:
        outcomes[move.deal.pk] = Outcome(stored=outcomes[move.deal.pk].stored, transitions=1)
    return outcomes


def _checked(
    deal: BookedDeal, state: DealDelivery, reading: DealPerformance, fetched_at: datetime
) -> tuple[datetime, int, int] | None:
    """``(as_of, impressions, spend micros)`` to store, None when it is not newer, or ``ReadingRefused``."""
    as_of = reading.as_of or fetched_at
    if as_of > fetched_at + FUTURE_SLACK:
        raise ReadingRefused(f"the seller dated its reading {as_of:%Y-%m-%d %H:%M} UTC, in the future")
    impressions = reading.impressions_delivered
    if impressions < 0 or reading.spend < 0:  # the clients refuse these already; a guard for any other client
        raise ReadingRefused("the seller reported a negative delivery")
    if impressions > max(deal.impressions, MIN_PLAUSIBLE_IMPRESSIONS) * IMPLAUSIBLE_FACTOR:
        raise ReadingRefused(
            f"not plausible: the seller reported {_amount(impressions)} impressions for a deal of {deal.impressions:,}"
        )
    if reading.spend > micros_to_decimal(max(deal.cost_micros, 1) * IMPLAUSIBLE_FACTOR):
        raise ReadingRefused(
            f"not plausible: the seller reported ${_amount(reading.spend)} spent on a deal of ${deal.cost:,.2f}"
        )
    spend_micros = decimal_to_micros(reading.spend)
    if state.as_of is not None and as_of <= state.as_of:
        return None
    if reading.spend_derived and impressions >= state.impressions:
        # Spend worked out from an average CPM that fell (a cheaper auction, a discount) is not money refunded.
        spend_micros = max(spend_micros, state.spend_micros)
    if impressions < state.impressions or spend_micros < state.spend_micros:
        raise ReadingRefused(
            f"delivery went backwards: {impressions:,} impressions and ${micros_to_decimal(spend_micros):,.2f} "
            f"reported after {state.impressions:,} and ${micros_to_decimal(state.spend_micros):,.2f}"
        )
    return as_of, impressions, spend_micros


def _amount(value: int | Decimal) -> str:
    """A figure a person can read, however large the seller made it."""
    return f"{value:,.2f}" if -(10**15) < value < 10**15 else f"{value:.3e}"


def _next_state(
    deal: BookedDeal, current: DealStatus, impressions: int, as_of: datetime, seller_status: str
) -> DealMove | None:
    """Where the deal's delivery says it is now, if that is somewhere else."""
    _, flight_over_at = flight_bounds(deal.flight_start, deal.flight_end)
    if as_of >= flight_over_at or seller_status == "completed":
        target, reason = DealStatus.COMPLETED, "the flight is over"
    elif deal.impressions > 0 and impressions >= deal.impressions:
        target, reason = DealStatus.COMPLETED, f"fully delivered ({impressions:,} of {deal.impressions:,} impressions)"
    elif seller_status in SELLER_STATES:
        target, reason = SELLER_STATES[seller_status], f"the seller reports {seller_status}"
    elif current == DealStatus.BOOKED and impressions > 0:
        target, reason = DealStatus.DELIVERING, f"the seller reports {impressions:,} impressions delivered"
    elif current in SELLER_STATES.values() and seller_status and seller_status not in SELLER_STATES:
        target, reason = DealStatus.DELIVERING, f"the seller reports {seller_status} again"
    else:
        return None
    if target == current:
        return None
    return DealMove(deal, current, target, reason, seller_status or None)


def delivery_pull_all(*, job_ids: list | None = None, as_of: datetime | None = None) -> PullResult:
    """Read every due deal now (or as of an earlier moment), seller by seller, in this process: "refresh now"
    and the demo use it."""
    result = PullResult()
    for seller_id, pks in delivery_chunks(now=as_of, job_ids=job_ids):
        result.add(delivery_pull(seller_id=seller_id, deal_pks=pks, as_of=as_of))
    return result
