"""The booking step: each approved line is booked at its seller with an idempotency key from our records, read
back, and recorded (or held when the seller booked other terms). Money moves here, so nothing here, nor anything
it imports, calls a model (a test checks it)."""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from buyer.events.models import EventType
from buyer.events.services import event_emit
from buyer.logs import carrying_log_context
from buyer.sellers.errors import SellerError, SellerTaskPending
from buyer.sellers.guard import GuardedSellerClient
from buyer.sellers.models import Protocol
from buyer.sellers.money import cost_for, decimal_to_micros, micros_to_decimal
from buyer.sellers.registry import client_for, identity_for
from buyer.sellers.types import Deal, Quote, QuoteRequest
from buyer.words import count, verb
from campaigns import ledger
from campaigns.models import (
    BookingJob,
    DealStatus,
    JobStage,
    JobStatus,
    NegotiationStatus,
    Recommendation,
    RecommendationStatus,
)
from campaigns.services import (
    AUTO_APPROVER,
    DuplicateDealId,
    deal_record,
    job_add_errors,
    job_advance,
    job_in_recovery,
    job_progress,
)
from campaigns.steps import flow_ids, job_retry_later

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5
"""How often a booking step writes its progress while deals come in (and once all are in)."""


# --- booking ------------------------------------------------------------------------------------------------


class LineNeedsApproval(Exception):
    """A line whose re-quote changed beyond the tolerance: it goes back to a person at the new price."""

    def __init__(self, reason: str, quote: Quote):
        super().__init__(reason)
        self.quote = quote


def _line_requoted(job: BookingJob, line: Recommendation, needs: LineNeedsApproval) -> None:
    quote = needs.quote
    with transaction.atomic():
        Recommendation.objects.filter(pk=line.pk, status=RecommendationStatus.APPROVED).update(
            status=RecommendationStatus.PENDING_APPROVAL,
            status_reason=str(needs)[:500],
            quote_id=quote.quote_id,
            quote_expires_at=quote.expires_at,
            impressions=quote.impressions,
            cpm_micros=decimal_to_micros(quote.final_cpm),
            quoted_cpm_micros=decimal_to_micros(quote.final_cpm),
            cost_micros=decimal_to_micros(cost_for(quote.impressions, quote.final_cpm)),
        )
        Recommendation.objects.filter(pk=line.pk, negotiation_status=NegotiationStatus.AGREED).update(
            negotiation_status=NegotiationStatus.ENDED,
            negotiation_outcome=f"the negotiated quote expired; the seller re-quoted at ${quote.final_cpm:,.2f}",
        )
        ledger.release(line, reason="re-quoted at another price: back to a person")
        job_add_errors(job, [f"{line.product_name} at {line.seller_name}: {needs}"])


@dataclass
class _Call:
    """One line's seller I/O, run in a thread that touches no database: a read-back deal, a re-quote (the
    line's quote had expired: the step records it, then books the new quote), or the seller's error."""

    line: Recommendation
    deal: Deal | None = None
    requote: Quote | None = None
    error: SellerError | None = None
    pending: SellerTaskPending | None = None  # the seller took the order for review (AdCP): followed later


def _book_call(job: BookingJob, client: GuardedSellerClient, line: Recommendation, *, requoted: bool) -> _Call:
    """Book one approved line with a key derived from our records, so a replay returns the same deal, and read
    back what the seller holds. Seller I/O only: every value it reads was loaded before (``job.campaign``
    included)."""
    assert line.seller is not None  # start_due starts only lines whose seller still exists
    identity = identity_for(line.seller)
    adcp = client.protocol == Protocol.ADCP
    try:
        try:
            deal = client.book_deal(
                idempotency_key=booking_key(job, line),
                quote_id=line.quote_id,
                buyer_identity=identity,
                **({"pacing": job.campaign.pacing_curve} if adcp else {}),
            )
        except SellerTaskPending as pending:
            return _Call(line, pending=pending)
        except SellerError as exc:
            if exc.code == "quote_already_booked":
                # Our quote, booked by an earlier attempt under another key: read back that deal.
                deal_id = client.get_quote(line.quote_id).raw.get("deal_id")
                if not deal_id:
                    raise
                deal = client.get_deal(deal_id)
            elif exc.code in {"quote_expired", "quote_not_found"} and not requoted:
                campaign = job.campaign
                quote = client.request_quote(
                    QuoteRequest(
                        idempotency_key=f"{job.pk}:requote:{line.pk}:{line.quote_id}",
                        product_id=line.product_id,
                        deal_type=line.deal_type,
                        impressions=line.impressions,
                        flight_start=campaign.start_date,
                        flight_end=campaign.end_date,
                        buyer_identity=identity,
                        media_type="ctv" if line.inventory_type == "ctv" else "digital",
                    )
                )
                return _Call(line, requote=quote)
            else:
                raise
        # Read back what the seller holds before reporting success.
        if adcp:
            return _Call(line, deal=with_line_pricing(line, client.get_deal(deal.deal_id, quote_id=line.quote_id)))
        return _Call(line, deal=client.get_deal(deal.deal_id))
    except SellerError as exc:
        return _Call(line, error=exc)


def _take_requote(job: BookingJob, line: Recommendation, quote: Quote) -> None:
    """Record the seller's new quote for a line whose quote expired; ``LineNeedsApproval`` when it differs from
    what a person approved beyond the tolerance. Written before the new quote is booked, so a step interrupted
    after booking it reads back the deal that quote names (``step_book_recover``)."""
    event_emit(
        EventType.QUOTE_RECEIVED,
        **flow_ids(job),
        payload={
            "seller": line.seller_name,
            "product_id": line.product_id,
            "quote_id": quote.quote_id,
            "final_cpm": quote.final_cpm,
            "requote_of": line.quote_id,
        },
    )
    if quote.impressions != line.impressions or quote.final_cpm > line.cpm * (1 + settings.BOOKING_TOLERANCE_PCT / 100):
        raise LineNeedsApproval(
            f"the approved quote expired and the seller now asks ${quote.final_cpm:,.2f} CPM for "
            f"{quote.impressions:,} impressions (approved ${line.cpm:,.2f} for {line.impressions:,}): approve "
            "the new price or reject it",
            quote,
        )
    # The line keeps the price a person approved: the read-back is judged against it, never against a re-quote
    # (so the tolerance cannot compound over several expiries).
    Recommendation.objects.filter(pk=line.pk).update(quote_id=quote.quote_id, quote_expires_at=quote.expires_at)
    line.quote_id, line.quote_expires_at = quote.quote_id, quote.expires_at


def step_book(job: BookingJob) -> None:
    """Book the approved lines: different sellers at once (up to ``SELLER_MAX_PARALLEL``), each seller's lines one
    after another in priority order, the seller I/O in threads and the database work in this one. One line at a
    time per seller keeps what a sequential step promised: a seller that booked a line differently gets no
    further automatic booking, a cancel stops every seller before its next line, and a worker killed mid-step
    leaves at most one deal per seller to read back."""
    if job_in_recovery(job) or job.cancel_requested:
        step_book_recover(job)
        return
    lines = list(
        # Orders a seller already took for review are followed by the poller (``seller_tasks``), not re-sent.
        Recommendation.objects.filter(
            job=job, status=RecommendationStatus.APPROVED, deal__isnull=True, seller_task_id=""
        )
        .select_related("seller")
        .order_by("priority")
    )
    event_emit(EventType.BOOKING_STARTED, **flow_ids(job), payload={"lines": len(lines), "attempt": job.attempts})
    job.campaign  # noqa: B018 - loaded here: the seller threads touch no database
    clients: dict[str, GuardedSellerClient] = {}
    errors: list[str] = []
    transient = False
    # Sellers whose read-back differed from an approved line: auto-approval of their other lines stops (this
    # attempt's, and any earlier attempt's).
    held: dict[str, str] = {
        url: f"{name} booked another line differently ({reason})"
        for url, name, reason in Recommendation.objects.filter(
            job=job, status=RecommendationStatus.FLAGGED
        ).values_list("seller_url", "seller_name", "status_reason")
    }
    waiting: dict[str, deque[Recommendation]] = {}
    for line in lines:
        waiting.setdefault(line.seller_url, deque()).append(line)
    running: dict[Future[_Call], Recommendation] = {}
    limit = settings.SELLER_MAX_PARALLEL
    done = 0
    progress_at = time.monotonic()

    def busy(url: str) -> bool:
        return any(line.seller_url == url for line in running.values())

    def start(pool: ThreadPoolExecutor, line: Recommendation, *, requoted: bool = False) -> None:
        assert line.seller is not None  # start_due starts only lines whose seller still exists
        client = clients.get(line.seller_url) or clients.setdefault(line.seller_url, client_for(line.seller))
        if client.protocol == Protocol.ADCP and line.seller_order_sent_at is None:
            # Noted before the order goes: a recovery re-sends (under the same key) only orders that may exist.
            line.seller_order_sent_at = timezone.now()
            Recommendation.objects.filter(pk=line.pk).update(seller_order_sent_at=line.seller_order_sent_at)
        running[pool.submit(carrying_log_context(_book_call), job, client, line, requoted=requoted)] = line

    def start_due(pool: ThreadPoolExecutor) -> bool:
        """Start what may go now; False once the job is cancelled (nothing new starts)."""
        if BookingJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
            return False
        for url, queue in waiting.items():
            while queue and len(running) < limit:
                if busy(url):
                    break  # one line at a time per seller
                line = queue.popleft()
                # Only what auto_approve approved waits for a person again: a person's own approval is booked.
                if line.approved_by == AUTO_APPROVER and url in held:
                    _line_back_to_approval(line, held[url])
                elif line.seller is None:
                    _line_failed(job, line, "seller was deleted")
                else:
                    start(pool, line)
        return True

    try:
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="seller-book") as pool:
            going = start_due(pool)
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    line = running.pop(future)
                    call = future.result()
                    if call.error is not None:
                        exc = call.error
                        # An open breaker follows timeouts: a booking that timed out may exist: wait, read back.
                        if exc.retryable or exc.code == "circuit_open":
                            transient = True
                            errors.append(
                                f"Seller {line.seller_name}: booking {line.product_id} will be retried: {exc}"
                            )
                        else:
                            _line_failed(job, line, str(exc))
                    elif call.pending is not None:
                        _line_pending(job, line, call.pending)
                    elif call.requote is not None:
                        try:
                            _take_requote(job, line, call.requote)
                        except LineNeedsApproval as needs:
                            _line_requoted(job, line, needs)
                        else:
                            start(pool, line, requoted=True)
                    else:
                        assert call.deal is not None
                        try:
                            recorded = deal_record(
                                recommendation=line, deal=call.deal, flag=read_back_mismatch(line, call.deal)
                            )
                        except DuplicateDealId as exc:
                            _line_failed(job, line, str(exc))
                            continue
                        if recorded.held:  # other terms than approved, or more than the budget holds
                            why = f"{line.seller_name} booked another line differently ({recorded.flag})"
                            held.setdefault(line.seller_url, why)
                        done += 1
                        # Written at most every PROGRESS_EVERY_S (a statement, and a version row, per write).
                        if done == len(lines) or time.monotonic() - progress_at >= PROGRESS_EVERY_S:
                            job_progress(job, 0.9 + 0.1 * done / max(1, len(lines)))
                            progress_at = time.monotonic()
                if going:
                    going = start_due(pool)
    finally:
        for client in clients.values():
            client.close()
    job_add_errors(job, errors)
    if transient:
        # Retried; past the attempts, the next claim only reads back what a timed-out booking may have made.
        job_retry_later(job, seconds=min(300, 10 * 2**job.attempts))
        return
    _finish_booking(job)


def step_book_recover(job: BookingJob) -> None:
    """The booking step after it was interrupted ``JOB_MAX_ATTEMPTS`` times (a worker killed mid-booking, say):
    book nothing new, read back from each seller the deal it made for every approved line without one (the
    quote names its deal once booked), record those, release the rest, and finish the job on what was booked."""
    lines = list(
        Recommendation.objects.filter(job=job, status=RecommendationStatus.APPROVED, deal__isnull=True)
        .select_related("seller")
        .order_by("priority")
    )
    payload = {"lines": len(lines), "attempt": job.attempts, "recovery": True}
    event_emit(EventType.BOOKING_STARTED, **flow_ids(job), payload=payload)
    clients: dict[str, GuardedSellerClient] = {}
    interrupted = (
        "the job was cancelled during booking"
        if job.cancel_requested
        else f"the booking step was interrupted {job.attempts - 1} times"
    )
    try:
        for line in lines:
            if line.seller is None:
                _line_failed(job, line, f"{interrupted} and the seller was deleted; check with the seller")
                continue
            client = clients.get(line.seller_url) or clients.setdefault(line.seller_url, client_for(line.seller))
            if client.protocol == Protocol.ADCP:
                _recover_adcp(job, client, line, interrupted)
                continue
            try:
                deal_id = client.get_quote(line.quote_id).raw.get("deal_id")
                deal = client.get_deal(deal_id) if deal_id else None
            except SellerError as exc:
                _line_failed(job, line, f"{interrupted}; reading back its deal failed ({exc}): check with the seller")
                continue
            if deal is None:
                _line_failed(job, line, f"{interrupted}; the seller holds no deal for quote {line.quote_id}")
                continue
            try:
                deal_record(recommendation=line, deal=deal, flag=read_back_mismatch(line, deal))
            except DuplicateDealId as exc:
                _line_failed(job, line, f"{interrupted}; {exc}")
    finally:
        for client in clients.values():
            client.close()
    _finish_booking(job)


def booking_key(job: BookingJob, line: Recommendation) -> str:
    """The idempotency key of a line's booking, from our records: every attempt sends the same one."""
    return f"{job.pk}:deal:{line.pk}:{line.quote_id}"


def _recover_adcp(job: BookingJob, client: GuardedSellerClient, line: Recommendation, interrupted: str) -> None:
    """An AdCP line after interrupted attempts (or a cancel). A task the seller already took stays followed by the
    poller; an order never sent is not booked (recovery books nothing new); an order sent is sent again under its
    own idempotency key, so the seller answers with the buy (or task) the interrupted attempt made instead of
    booking twice (AdCP has no read-back by our key; sellers keep keys for a day or more)."""
    if line.seller_task_id:
        return
    if line.seller_order_sent_at is None:
        _line_failed(job, line, f"{interrupted} before its order was sent: nothing was booked")
        return
    call = _book_call(job, client, line, requoted=True)
    if call.pending is not None:
        _line_pending(job, line, call.pending)
    elif call.deal is not None:
        try:
            deal_record(recommendation=line, deal=call.deal, flag=read_back_mismatch(line, call.deal))
        except DuplicateDealId as exc:
            _line_failed(job, line, f"{interrupted}; {exc}")
    else:
        _line_failed(job, line, f"{interrupted}; the seller did not confirm the order ({call.error}): check with it")


def with_line_pricing(line: Recommendation, deal: Deal) -> Deal:
    """An AdCP deal carrying what the line recorded of its price (the seller's floor beside our bid): the seller's
    media buy states only the package's budget and bid, and the deal must show both as what they are."""
    pricing = {**line.pricing, **deal.raw.get("pricing", {})}
    return replace(deal, raw={**deal.raw, "pricing": pricing})


def _line_pending(job: BookingJob, line: Recommendation, pending: SellerTaskPending) -> None:
    """The seller took a line's order as a task: keep the line approved (its money reserved) and follow it."""
    now = timezone.now()
    with transaction.atomic():
        moved = Recommendation.objects.filter(pk=line.pk, status=RecommendationStatus.APPROVED).update(
            seller_task_id=pending.task_id[:200],
            seller_task_status=pending.task_status[:24],
            seller_task_message=pending.seller_message,
            seller_task_since=now,
            seller_task_checked_at=now,
            status_reason=pending_reason(pending.task_status, pending.seller_message)[:500],
        )
        if moved:
            event_emit(
                EventType.BOOKING_PENDING,
                **flow_ids(job),
                payload={
                    "product_id": line.product_id,
                    "seller": line.seller_name,
                    "task_id": pending.task_id,
                    "status": pending.task_status,
                    "message": pending.seller_message,
                },
            )
    line.seller_task_id, line.seller_task_status = pending.task_id, pending.task_status


def pending_reason(status: str, message: str) -> str:
    """How a line whose order the seller is reviewing reads on the pages and in the API."""
    said = f": {message}" if message else ""
    if status == "input-required":
        return f"the seller needs something before it books this order{said}"
    if status == "working":
        return f"the seller is processing the order{said}"
    return f"the seller is reviewing the order{said}"


def awaiting_sellers(job: BookingJob) -> bool:
    """Whether the job has approved lines whose orders a seller is still reviewing."""
    return Recommendation.objects.filter(
        job=job, status=RecommendationStatus.APPROVED, deal__isnull=True, seller_task_id__gt=""
    ).exists()


def read_back_mismatch(line: Recommendation, confirmed: Deal) -> str:
    """How the deal the seller holds exceeds the approved line, beyond ``BOOKING_TOLERANCE_PCT`` (more
    impressions, a higher CPM, a higher cost), or "" when it does not. Less than approved is never a problem."""
    allowed = 1 + settings.BOOKING_TOLERANCE_PCT / 100
    cost = cost_for(confirmed.impressions, confirmed.final_cpm)
    problems = []
    if confirmed.impressions > line.impressions * allowed:
        problems.append(f"{confirmed.impressions:,} impressions (approved {line.impressions:,})")
    if confirmed.final_cpm > line.cpm * allowed:
        problems.append(f"${confirmed.final_cpm:,.2f} CPM (approved ${line.cpm:,.2f})")
    if cost > line.cost * allowed:
        problems.append(f"${cost:,.2f} (approved ${line.cost:,.2f})")
    if not problems:
        return ""
    return f"the seller booked deal {confirmed.deal_id} at {', '.join(problems)}"


def _line_failed(job: BookingJob, line: Recommendation, reason: str) -> None:
    with transaction.atomic():
        Recommendation.objects.filter(pk=line.pk).update(
            status=RecommendationStatus.BOOKING_FAILED, status_reason=reason
        )
        ledger.release(line, reason=f"booking failed: {reason}")
        job_add_errors(job, [f"Booking {line.product_name} ({line.product_id}) at {line.seller_name} failed: {reason}"])
        event_emit(
            EventType.BOOKING_FAILED,
            **flow_ids(job),
            payload={
                "product_id": line.product_id,
                "product": line.product_name,
                "seller": line.seller_name,
                "reason": reason,
            },
        )


def _line_back_to_approval(line: Recommendation, why: str) -> None:
    with transaction.atomic():
        if Recommendation.objects.filter(pk=line.pk, status=RecommendationStatus.APPROVED).update(
            status=RecommendationStatus.PENDING_APPROVAL, status_reason=f"auto-approval stopped: {why}"[:500]
        ):
            ledger.release(line, reason="back to a person for approval")


def _finish_booking(job: BookingJob) -> None:
    if awaiting_sellers(job):
        # Orders under review at a seller: the job waits for them (``seller_tasks``), no worker does.
        if job.stage != JobStage.AWAIT_SELLER:
            job_advance(job, stage=JobStage.AWAIT_SELLER, status=JobStatus.RUNNING, progress=0.95)
        return
    deals = list(job.deals.all())
    # Held deals exist at the seller but are not counted as booked until a person accepts them.
    booked = [d for d in deals if d.counted]
    held = [d for d in deals if d.status == DealStatus.BOOKING]
    total = micros_to_decimal(sum(d.cost_micros for d in booked))
    cancelled = BookingJob.objects.filter(pk=job.pk, cancel_requested=True).exists()
    waiting = job.recommendations.filter(status=RecommendationStatus.PENDING_APPROVAL)
    with transaction.atomic():
        if waiting.exists() and not cancelled:
            # Lines a person left for later, or that auto-approval stopped for (a seller booked differently),
            # wait for a person: until the approval a person already had expires, else for a new window.
            now = timezone.now()
            kept = job.approval_expires_at if job.approval_expires_at and job.approval_expires_at > now else None
            expires = kept or now + timedelta(hours=settings.APPROVAL_TTL_HOURS)
            reason = waiting.values_list("status_reason", flat=True).first()
            payload = {"count": waiting.count(), "expires_at": expires, "auto_approve_withheld": reason}
            job_advance(
                job,
                stage=JobStage.APPROVAL,
                status=JobStatus.AWAITING_APPROVAL,
                progress=0.85,
                approval_expires_at=expires,
                event=EventType.APPROVAL_REQUESTED,
                payload=payload,
            )
        elif cancelled:
            asked = BookingJob.objects.filter(pk=job.pk).values_list("failure_reason", flat=True).first() or ""
            n = len(booked)
            reason = f"{asked} Cancelled during booking; {count(n, 'deal')} {verb(n, 'was', 'were')} already booked."
            reason = reason.strip()
            if job_advance(job, stage=JobStage.DONE, status=JobStatus.CANCELLED, progress=1.0, failure_reason=reason):
                event_emit(EventType.JOB_CANCELLED, **flow_ids(job), payload={"reason": reason, "booked": len(booked)})
        elif booked or held:
            if job_advance(job, stage=JobStage.DONE, status=JobStatus.COMPLETED, progress=1.0):
                event_emit(
                    EventType.JOB_COMPLETED,
                    **flow_ids(job),
                    payload={"booked": len(booked), "total_cost": total, "held": len(held)},
                )
        else:
            reason = "No approved line could be booked; see errors."
            if job_advance(job, stage=JobStage.DONE, status=JobStatus.FAILED, progress=1.0, failure_reason=reason):
                job_add_errors(job, [reason])
                event_emit(EventType.JOB_FAILED, **flow_ids(job), payload={"reason": reason})
