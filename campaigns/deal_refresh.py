"""Reading a booked deal back from its seller, on demand and on a schedule, and following what the seller says
became of it: a seller that reports a deal expired, rejected, cancelled or completed moves it there too (when
the state machine allows), with the seller's word recorded; a deal a person refused is followed until the
seller reports it cancelled, which releases the money it held. Never a price: reconciliation compares those."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from buyer.errors import DomainError
from buyer.sellers.errors import SellerError
from buyer.sellers.registry import client_for
from campaigns import ledger
from campaigns.models import BookedDeal, DealStatus
from campaigns.services import DEAL_TRANSITIONS, DealTransitionError, deal_cancelled, deal_transition

logger = logging.getLogger(__name__)

# The seller's words for the end states our state machine has too.
SELLER_TO_OURS = {
    "expired": DealStatus.EXPIRED,
    "rejected": DealStatus.CANCELLED,
    "cancelled": DealStatus.CANCELLED,
    "canceled": DealStatus.CANCELLED,
    "completed": DealStatus.COMPLETED,
}
# Deals the seller may still change: the ones read back on the schedule.
FOLLOWED_STATUSES = (
    DealStatus.BOOKED,
    DealStatus.DELIVERING,
    DealStatus.MAKEGOOD_PENDING,
    DealStatus.PARTIALLY_CANCELED,
)


class DealRefreshFailed(DomainError):
    """The seller could not be asked (API: 502, with its error)."""

    http_status = 502


def deal_refresh(deal: BookedDeal, *, actor: str = "system") -> BookedDeal:
    """Ask the seller for ``deal`` now; store its status and follow it. ``DealRefreshFailed`` when it fails."""
    if deal.seller is None:
        raise DealRefreshFailed(f"Deal {deal.deal_id}: its seller was deleted")
    client = client_for(deal.seller)
    try:
        seen = client.get_deal(deal.deal_id)
    except SellerError as exc:
        raise DealRefreshFailed(f"Seller {deal.seller.name}: reading deal {deal.deal_id} failed: {exc}") from None
    finally:
        client.close()
    word = (seen.status or "").lower()
    BookedDeal.objects.filter(pk=deal.pk).update(seller_status=word[:24], seller_checked_at=timezone.now())
    deal.seller_status = word[:24]
    ours = SELLER_TO_OURS.get(word)
    if deal.awaiting_cancellation:
        if ours in {DealStatus.CANCELLED, DealStatus.EXPIRED} and not _delivered(deal):
            return deal_cancelled(deal_pk=deal.pk, actor=actor, reason=f"the seller reports the refused deal {word}")
        if ours in {DealStatus.CANCELLED, DealStatus.EXPIRED}:
            logger.warning(
                "refused deal %s is %s at the seller but delivered: its money stays held", deal.deal_id, word
            )
        return deal
    if ours is not None and ours in DEAL_TRANSITIONS[DealStatus(deal.status)]:
        with transaction.atomic():
            deal_transition(
                deal=deal, to_status=ours, reason=f"the seller reports the deal {word}", actor=actor, seller_status=word
            )
            if ours in {DealStatus.CANCELLED, DealStatus.EXPIRED} and not _delivered(deal):
                # It will not deliver: the money it held is free again.
                ledger.release(deal.recommendation, reason=f"deal {deal.deal_id} {word} at the seller")
    return deal


def _delivered(deal: BookedDeal) -> bool:
    delivery = getattr(deal, "delivery", None)
    return delivery is not None and (delivery.impressions or delivery.spend_micros) > 0


def deals_refresh_due(*, limit: int = 200) -> dict[str, int]:
    """The scheduled pass: deals the seller may still change, not read back for ``DEAL_REFRESH_HOURS``."""
    cutoff = timezone.now() - timedelta(hours=settings.DEAL_REFRESH_HOURS)
    due = (
        BookedDeal.objects.filter(Q(status__in=FOLLOWED_STATUSES) | Q(status=DealStatus.FAILED, refused_by__gt=""))
        .exclude(seller_checked_at__gte=cutoff)
        .select_related("seller")
        .order_by("seller_checked_at", "pk")[:limit]
    )
    counts = {"read": 0, "moved": 0, "failed": 0}
    for deal in due:
        before = deal.status
        try:
            after = deal_refresh(deal)
        except DealTransitionError:  # something else (delivery, a person) moved it meanwhile: next pass
            continue
        except DealRefreshFailed as exc:
            logger.warning("%s", exc)
            BookedDeal.objects.filter(pk=deal.pk).update(seller_checked_at=timezone.now())
            counts["failed"] += 1
            continue
        counts["read"] += 1
        counts["moved"] += int(after.status != before)
    return counts
