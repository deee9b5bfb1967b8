"""An approved reallocation applied at the sellers that can change a booked deal: AdCP media buys.

Approving a reallocation moves money a channel is projected not to spend to another channel (``reallocation``):
the ledger releases it and a top-up job books it. At an IAB seller the giving channel's deals keep their booked
budgets (the protocol cannot change them). An AdCP seller can: each of the giving channel's AdCP deals is cut,
by ``update_media_buy`` on its package, to what it is projected to spend (never below what it spent), largest
spare first, until the money the ledger released for that channel is covered. Once the seller confirms, the money
moved cannot be spent twice, once by the top-up and once by the deal that gave it.

The cuts are planned inside the approval's transaction (``budget_cuts_plan``, one ``SellerBudgetCut`` row per
deal) and sent after it commits (``budget_cuts_apply``, a Celery task, and again from beat for any left due), so
no seller call holds a row lock. Each send carries an idempotency key derived from the row: a redelivered task or
a killed worker re-sends the same change, which the seller answers once. A seller that takes the change for
review (``submitted``) is followed by task id; a transient failure is retried with backoff; a refusal (the
seller's ``BUDGET_TOO_LOW`` once the deal spent more) is recorded with the seller's words. Only the seller's
confirmation changes the deal's cost and impressions. A cut that fails leaves the deal as an IAB deal is: its
budget booked at the seller while the ledger counts the moved money as released (it is projected not to spend it).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from buyer.events.models import EventType
from buyer.events.services import event_emit
from buyer.sellers.errors import SellerError, SellerTaskPending
from buyer.sellers.money import decimal_to_micros, micros_to_decimal
from buyer.sellers.registry import client_for
from buyer.sellers.types import BudgetChange
from campaigns.models import COUNTED_DEALS, BookedDeal, BookingJob, DealStatus
from pacing.models import CutStatus, PacingSnapshot, ReallocationProposal, Scope, SellerBudgetCut

logger = logging.getLogger(__name__)

CENT_MICROS = 10_000
# Deals whose budget can still change at the seller.
CUTTABLE_STATUSES = (DealStatus.BOOKED, DealStatus.DELIVERING)
MAX_ATTEMPTS = 8  # transient failures before a cut is given up (about two hours of backoff)
MAX_BACKOFF_S = 1800
OPEN = (CutStatus.PENDING, CutStatus.SUBMITTED)
BATCH = 200


def budget_cuts_plan(proposal: ReallocationProposal, *, released: dict[str, int]) -> list[SellerBudgetCut]:
    """The cuts that apply ``released`` (micros per giving channel, as the ledger released them) to the
    campaign's AdCP deals on those channels. Call inside the approval's transaction; nothing is sent here."""
    root: BookingJob = proposal.job
    now = timezone.now()
    cuts: list[SellerBudgetCut] = []
    for channel, amount in sorted(released.items()):
        if amount < CENT_MICROS:
            continue
        deals = {
            d.pk: d
            for d in BookedDeal.objects.filter(COUNTED_DEALS, status__in=CUTTABLE_STATUSES, channel=channel)
            .filter(Q(job=root) | Q(job__parent=root))
            .filter(pricing__protocol="adcp", seller__isnull=False)
            .exclude(pricing__package_id=None)
            # A deal with a cut still open is left to it: a second cut from its old budget could raise it again.
            .exclude(budget_cuts__status__in=OPEN)
        }
        if not deals:
            continue
        projected = (
            PacingSnapshot.objects.current()
            .filter(job=root, scope=Scope.DEAL, deal_id__in=list(deals))
            .values_list("deal_id", "projected_micros", "actual_micros")
        )
        spare = []
        for deal_pk, projection, actual in projected:
            deal = deals[deal_pk]
            # What the deal will not spend at its pace, never below what it spent (nor a zero budget).
            floor = _cents_up(max(projection, actual, CENT_MICROS))
            if floor < deal.cost_micros:
                spare.append((deal.cost_micros - floor, deal))
        remaining = amount
        for room, deal in sorted(spare, key=lambda item: (-item[0], item[1].pk)):
            if remaining < CENT_MICROS:
                break
            target = _cents_up(deal.cost_micros - min(room, remaining))
            if target >= deal.cost_micros:
                continue
            cuts.append(
                SellerBudgetCut(
                    proposal=proposal,
                    deal=deal,
                    from_budget_micros=deal.cost_micros,
                    to_budget_micros=target,
                    to_impressions=min(deal.impressions, target * 1000 // max(deal.cpm_micros, 1)),
                    due_at=now,
                )
            )
            remaining -= deal.cost_micros - target
    return SellerBudgetCut.objects.bulk_create(cuts)


def budget_cuts_apply(*, proposal_id: int | None = None, now: datetime | None = None) -> dict[str, int]:
    """Send or follow every cut that is due (only ``proposal_id``'s when given); how many ended in each state.

    Safe to run in several workers at once: each cut is claimed just before it is worked on by moving its
    ``due_at`` past the longest its calls may take, and every outcome is written only while that claim is
    still the cut's (a claim that lapsed, taken over by another run, writes nothing)."""
    now = now or timezone.now()
    started = time.monotonic()
    open_due = Q(status__in=OPEN, due_at__lte=now)
    due = SellerBudgetCut.objects.filter(open_due)
    if proposal_id is not None:
        due = due.filter(proposal_id=proposal_id)
    counts: Counter[str] = Counter()
    for pk in list(due.order_by("due_at", "pk").values_list("pk", flat=True)[:BATCH]):
        moment = now + timedelta(seconds=time.monotonic() - started)
        cut = SellerBudgetCut.objects.select_related("deal__seller", "proposal").filter(pk=pk).first()
        if cut is None:
            continue
        hold = moment + _hold(cut)
        if not SellerBudgetCut.objects.filter(open_due, pk=pk).update(due_at=hold):
            continue  # another worker took it, or it was decided meanwhile
        cut.due_at = hold
        try:
            counts[_advance(cut, moment)] += 1
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: the cut is due again once its claim lapses
        except Exception as exc:
            # One cut's surprise must not stop the others; it counts as an attempt, so it cannot loop for ever.
            logger.exception("budget cut %s of deal %s failed unexpectedly", cut.pk, cut.deal.deal_id)
            counts[_retry(cut, f"unexpected {type(exc).__name__}", moment)] += 1
    return dict(counts)


def _hold(cut: SellerBudgetCut) -> timedelta:
    """Longer than the two calls one cut may make (a change and its read-back), at this seller's timeout."""
    timeout = cut.deal.seller.effective_timeout if cut.deal.seller is not None else 0
    per_call = max(settings.SELLER_CALL_WORST_SECONDS, 2 * timeout * (settings.SELLER_MAX_RETRIES + 1))
    return timedelta(seconds=3 * per_call)


def _claimed(cut: SellerBudgetCut) -> QuerySet[SellerBudgetCut]:
    """The cut, if this run's claim still holds it."""
    return SellerBudgetCut.objects.filter(pk=cut.pk, status__in=OPEN, due_at=cut.due_at)


def _advance(cut: SellerBudgetCut, now: datetime) -> str:
    deal = cut.deal
    if deal.seller is None:
        return _failed(cut, "its seller was deleted", now)
    if deal.status not in CUTTABLE_STATUSES or not deal.counted:
        return _failed(cut, f"the deal is {deal.state_label}: its budget is no longer changed", now)
    if cut.to_budget_micros >= deal.cost_micros:
        # Another cut lowered it further meanwhile: sending this one would raise the budget at the seller.
        return _failed(cut, f"the deal's budget is already ${deal.cost:,.2f}, at or below this cut's", now)
    package_id = str(deal.pricing.get("package_id") or "")
    client = client_for(deal.seller)
    try:
        if cut.status == CutStatus.SUBMITTED:
            state = client.task_status(cut.task_id)
            if state.status in {"failed", "rejected", "canceled"}:
                return _failed(cut, state.message or f"the seller {state.status} the change", now)
            if state.status != "completed":
                if now - cut.created_at > timedelta(hours=settings.ADCP_REVIEW_TIMEOUT_HOURS):
                    return _given_up(client, cut, f"the seller left the change {state.status} too long", now)
                return _still_reviewing(cut, state.status, state.message, now)
            change = client.budget_of(deal.deal_id, package_id=package_id)
        else:
            change = client.set_budget(
                deal.deal_id,
                package_id=package_id,
                budget=cut.to_budget,
                impressions=cut.to_impressions,
                idempotency_key=f"buyer-reallocation-{cut.proposal_id}-cut-{cut.pk}",
            )
    except SellerTaskPending as pending:
        return _still_reviewing(cut, pending.task_status, pending.seller_message, now, task_id=pending.task_id)
    except SellerError as exc:
        if exc.code == "circuit_open" and now - cut.created_at <= timedelta(hours=settings.ADCP_REVIEW_TIMEOUT_HOURS):
            return _later(cut, str(exc), now)  # the breaker says when to come back; no attempt spent
        if exc.retryable or exc.code == "circuit_open":
            return _retry(cut, str(exc), now, client=client)
        return _failed(cut, str(exc), now)
    finally:
        client.close()
    return _applied(cut, change, now)


def _applied(cut: SellerBudgetCut, change: BudgetChange, now: datetime) -> str:
    held = decimal_to_micros(change.budget)
    if held > cut.to_budget_micros + CENT_MICROS:
        # Confirmed, yet the seller still holds more: never recorded as cut.
        return _failed(cut, f"the seller reports the package's budget at ${change.budget:,.2f} after the change", now)
    with transaction.atomic():
        if not list(_claimed(cut).select_for_update().values_list("pk", flat=True)):
            return "lapsed"  # another run took over this cut: it decides
        deal = BookedDeal.objects.select_for_update().get(pk=cut.deal_id)
        before = deal.cost_micros
        deal.cost_micros = min(before, held)
        # The impressions the seller states, else what the new budget buys at the deal's price; never more.
        affordable = deal.cost_micros * 1000 // max(deal.cpm_micros, 1)
        deal.impressions = min(deal.impressions, change.impressions if change.impressions is not None else affordable)
        deal.pricing = {**deal.pricing, "budget": str(micros_to_decimal(deal.cost_micros))}
        deal.save(update_fields=["cost_micros", "impressions", "pricing"])
        _claimed(cut).update(status=CutStatus.APPLIED, message="", decided_at=now)
        event_emit(
            EventType.DEAL_BUDGET_CHANGED,
            flow_id=str(cut.proposal.job_id),
            flow_type="pacing",
            campaign_id=str(deal.job.campaign_id),
            deal_id=deal.deal_id,
            payload={
                "proposal_id": cut.proposal_id,
                "seller": deal.seller.name if deal.seller else "",
                "from": micros_to_decimal(before),
                "to": micros_to_decimal(deal.cost_micros),
                "impressions": deal.impressions,
            },
        )
    return CutStatus.APPLIED


def _still_reviewing(
    cut: SellerBudgetCut, status: str, message: str, now: datetime, *, task_id: str | None = None
) -> str:
    due = now + timedelta(seconds=settings.ADCP_TASK_POLL_SECONDS)
    _claimed(cut).update(status=CutStatus.SUBMITTED, task_id=task_id or cut.task_id, message=message[:500], due_at=due)
    return CutStatus.SUBMITTED


def _later(cut: SellerBudgetCut, why: str, now: datetime) -> str:
    _claimed(cut).update(message=why[:500], due_at=now + timedelta(seconds=settings.ADCP_TASK_POLL_SECONDS))
    return "retrying"


def _retry(cut: SellerBudgetCut, why: str, now: datetime, *, client: Any = None) -> str:
    attempts = cut.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        if client is not None:
            return _given_up(client, cut, f"gave up after {attempts} attempts: {why}", now)
        return _failed(cut, f"gave up after {attempts} attempts: {why}", now)
    due = now + timedelta(seconds=min(MAX_BACKOFF_S, 30 * 2**attempts))
    _claimed(cut).update(attempts=attempts, message=why[:500], due_at=due)
    return "retrying"


def _given_up(client: Any, cut: SellerBudgetCut, why: str, now: datetime) -> str:
    """Before recording a cut failed for want of an answer, ask what the seller holds: it may have applied it."""
    try:
        change = client.budget_of(cut.deal.deal_id, package_id=str(cut.deal.pricing.get("package_id") or ""))
    except SellerError:
        return _failed(cut, why, now)
    if decimal_to_micros(change.budget) <= cut.to_budget_micros + CENT_MICROS:
        return _applied(cut, change, now)
    return _failed(cut, why, now)


def _failed(cut: SellerBudgetCut, why: str, now: datetime) -> str:
    deal = cut.deal
    with transaction.atomic():
        if not _claimed(cut).update(status=CutStatus.FAILED, message=why[:500], decided_at=now):
            return "lapsed"
        event_emit(
            EventType.DEAL_BUDGET_CHANGE_FAILED,
            flow_id=str(cut.proposal.job_id),
            flow_type="pacing",
            deal_id=deal.deal_id,
            payload={
                "proposal_id": cut.proposal_id,
                "seller": deal.seller.name if deal.seller else "",
                "from": cut.from_budget,
                "to": cut.to_budget,
                "reason": why[:500],
            },
        )
    logger.warning("budget cut of deal %s failed: %s", deal.deal_id, why)
    return CutStatus.FAILED


def _cents_up(micros: int) -> int:
    return -(-micros // CENT_MICROS) * CENT_MICROS
