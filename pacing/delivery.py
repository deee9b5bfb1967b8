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

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from buyer.events.models import EventType
from buyer.events.services import event_emit
from buyer.sellers.errors import SellerError
from buyer.sellers.models import Seller
from buyer.sellers.money import decimal_to_micros, micros_to_decimal
from buyer.sellers.registry import client_for, record_health
from buyer.sellers.rest import excerpt
from buyer.sellers.types import DealPerformance
from campaigns.models import BookedDeal, DealStatus
from campaigns.services import DealTransitionError, deal_transition
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
IMPLAUSIBLE_FACTOR = 10
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
    for deal, reading in readings.items():
        outcome = delivery_record(deal=deal, reading=reading, fetched_at=fetched_at or timezone.now())
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
    for job_id, failures in newly_failing.items():
        # Once per deal that starts failing, not once per attempt: a seller down for a day is one event.
        event_emit(
            EventType.PACING_DELIVERY_FAILED,
            flow_id=job_id,
            flow_type="pacing",
            payload={
                "seller": seller_name,
                "deals": [deal.deal_id for deal, _ in failures][:50],
                "error": failures[0][1],
            },
        )
    return result


@dataclass(frozen=True)
class Outcome:
    stored: bool = False
    error: str = ""
    first_error: bool = False
    transitions: int = 0


def delivery_record(*, deal: BookedDeal, reading: DealPerformance | SellerError, fetched_at: datetime) -> Outcome:
    """Check one reading against what is stored and keep it, or record why not. Serialised per deal."""
    with transaction.atomic():
        DealDelivery.objects.get_or_create(deal=deal)
        state = DealDelivery.objects.select_for_update().get(pk=deal.pk)
        try:
            if isinstance(reading, SellerError):
                raise ReadingRefused(excerpt(str(reading), MAX_ERROR_TEXT))
            figures = _checked(deal, state, reading, fetched_at)
        except ReadingRefused as exc:
            first = state.consecutive_errors == 0
            state.error, state.error_at, state.checked_at = str(exc)[:MAX_ERROR_TEXT], fetched_at, fetched_at
            state.consecutive_errors += 1
            state.save(update_fields=["error", "error_at", "checked_at", "consecutive_errors"])
            return Outcome(error=state.error, first_error=first)
        state.checked_at, state.error, state.consecutive_errors = fetched_at, "", 0
        fields = ["checked_at", "error", "consecutive_errors"]
        if figures is None:  # no newer than what we hold: a replay or a late thread
            state.save(update_fields=fields)
            return Outcome()
        as_of, impressions, spend_micros = figures
        changed = state.as_of is None or (impressions, spend_micros) != (state.impressions, state.spend_micros)
        if changed:
            DeliveryReading.objects.get_or_create(
                deal=deal,
                as_of=as_of,
                defaults={
                    "impressions": impressions,
                    "spend_micros": spend_micros,
                    "seller_status": reading.status,
                    "fetched_at": fetched_at,
                },
            )
        state.impressions, state.spend_micros, state.as_of = impressions, spend_micros, as_of
        state.seller_status, state.seller_pacing = reading.status, reading.delivery_pacing
        state.save(update_fields=[*fields, "impressions", "spend_micros", "as_of", "seller_status", "seller_pacing"])
        moved = _follow_state(deal, impressions=impressions, as_of=as_of, seller_status=reading.status)
    return Outcome(stored=changed, transitions=moved)


def _checked(
    deal: BookedDeal, state: DealDelivery, reading: DealPerformance, fetched_at: datetime
) -> tuple[datetime, int, int] | None:
    """``(as_of, impressions, spend micros)`` to store, None when it is not newer, or ``ReadingRefused``."""
    as_of = reading.as_of or fetched_at
    if as_of > fetched_at + FUTURE_SLACK:
        raise ReadingRefused(f"the seller dated its reading {as_of:%Y-%m-%d %H:%M} UTC, in the future")
    impressions, spend_micros = reading.impressions_delivered, decimal_to_micros(reading.spend)
    if impressions < 0 or spend_micros < 0:  # the clients refuse these already; a guard for any other client
        raise ReadingRefused("the seller reported a negative delivery")
    if deal.impressions > 0 and impressions > deal.impressions * IMPLAUSIBLE_FACTOR:
        raise ReadingRefused(
            f"the seller reported {impressions:,} impressions for a deal of {deal.impressions:,}: not plausible"
        )
    if state.as_of is not None and as_of <= state.as_of:
        return None
    if impressions < state.impressions or spend_micros < state.spend_micros:
        raise ReadingRefused(
            f"delivery went backwards: {impressions:,} impressions and ${micros_to_decimal(spend_micros):,.2f} "
            f"reported after {state.impressions:,} and ${micros_to_decimal(state.spend_micros):,.2f}"
        )
    return as_of, impressions, spend_micros


def _follow_state(deal: BookedDeal, *, impressions: int, as_of: datetime, seller_status: str) -> int:
    """Move the deal where its delivery says it is; returns how many transitions were made."""
    current = DealStatus(BookedDeal.objects.values_list("status", flat=True).get(pk=deal.pk))
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
        return 0
    if target == current:
        return 0
    try:
        deal_transition(deal=deal, to_status=target, reason=reason, seller_status=seller_status or None)
    except DealTransitionError:
        logger.info("deal %s: %s cannot become %s (%s)", deal.deal_id, current, target, reason)
        return 0
    event_emit(
        EventType.DEAL_STATUS_CHANGED,
        flow_id=str(deal.job_id),
        flow_type="pacing",
        deal_id=deal.deal_id,
        payload={"from": current, "to": target, "reason": reason, "actor": "system"},
    )
    return 1


def delivery_pull_all(*, job_ids: list | None = None, as_of: datetime | None = None) -> PullResult:
    """Read every due deal now (or as of an earlier moment), seller by seller, in this process: "refresh now"
    and the demo use it."""
    result = PullResult()
    for seller_id, pks in delivery_chunks(now=as_of, job_ids=job_ids):
        result.add(delivery_pull(seller_id=seller_id, deal_pks=pks, as_of=as_of))
    return result
