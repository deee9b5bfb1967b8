"""A campaign's budget ledger: money is reserved when lines are approved, committed when the seller books them,
and released when a line will not be booked (or a reallocation moves money a channel will not spend). A
campaign and its top-up jobs share one ledger, kept under the campaign's first job; every write locks that
job's row, so concurrent approvals, top-ups and re-quotes of one campaign are serialised and the ledger's sum
(what is reserved or committed) never exceeds the campaign's budget: an approval that would is refused.

Each line's entries sum to what it holds: its approved cost while it waits to be booked, its deal's cost once
booked (a seller that books for less frees the difference), nothing once released.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, Sum

from buyer.errors import Conflict
from buyer.sellers.money import micros_to_decimal
from campaigns.models import BookingJob, BudgetEntry, LedgerKind, Recommendation


class BudgetExceeded(Conflict):
    """Reserving these lines would commit more than the campaign's budget (API: 409)."""


def _root_locked(job: BookingJob) -> BookingJob:
    """The campaign's first job, locked for the ledger write: the job row only, and NO KEY UPDATE, so the
    snapshot runs that reference it (FOR KEY SHARE) never wait for an approval, nor an approval for them."""
    root_id = job.parent_id or job.pk
    return BookingJob.objects.select_for_update(no_key=True, of=("self",)).select_related("campaign").get(pk=root_id)


def committed_micros(root: BookingJob) -> int:
    """What the campaign has reserved or committed, in micros."""
    return BudgetEntry.objects.filter(root=root).aggregate(total=Sum("amount_micros"))["total"] or 0


def held_micros(line: Recommendation) -> int:
    return BudgetEntry.objects.filter(recommendation=line).aggregate(total=Sum("amount_micros"))["total"] or 0


def _money(micros: int) -> str:
    return f"${micros_to_decimal(micros):,.2f}"


def reserve(job: BookingJob, lines: Iterable[Recommendation], *, reason: str = "approved") -> None:
    """Reserve the lines' cost against the campaign budget, or refuse (``BudgetExceeded``) and reserve nothing."""
    lines = [line for line in lines if line.cost_micros > 0]
    with transaction.atomic():
        root = _root_locked(job)
        wanted = sum(line.cost_micros for line in lines) - sum(held_micros(line) for line in lines)
        already = committed_micros(root)
        if already + wanted > root.campaign.budget_micros:
            raise BudgetExceeded(
                f"Approving {_money(wanted)} would commit {_money(already + wanted)} of the campaign's "
                f"{_money(root.campaign.budget_micros)} budget ({_money(already)} already reserved or committed); "
                "nothing was approved"
            )
        BudgetEntry.objects.bulk_create(
            [
                BudgetEntry(
                    root=root,
                    job_id=line.job_id,
                    recommendation=line,
                    kind=LedgerKind.RESERVE,
                    amount_micros=line.cost_micros - held_micros(line),
                    reason=reason[:300],
                )
                for line in lines
                if line.cost_micros != held_micros(line)
            ]
        )


def commit(line: Recommendation, *, cost_micros: int, reason: str) -> None:
    """The seller booked ``line`` for ``cost_micros``: what the line holds becomes exactly that. A deal dearer
    than its reservation takes the difference only if the budget has room (else ``BudgetExceeded``, and the
    line keeps its reservation)."""
    _settle(line, cost_micros, LedgerKind.COMMIT, reason)


def release(line: Recommendation, *, reason: str) -> None:
    """``line`` will not be booked (failed, refused, left over when its job ended): it holds nothing more."""
    _settle(line, 0, LedgerKind.RELEASE, reason)


def _settle(line: Recommendation, target: int, kind: str, reason: str) -> None:
    with transaction.atomic():
        job = BookingJob.objects.only("pk", "parent_id").get(pk=line.job_id)
        root = _root_locked(job)
        difference = target - held_micros(line)
        if difference > 0 and committed_micros(root) + difference > root.campaign.budget_micros:
            raise BudgetExceeded(
                f"{_money(target)} is {_money(difference)} more than was reserved, and the campaign's "
                f"{_money(root.campaign.budget_micros)} budget has no room for it"
            )
        first_commit = (
            kind == LedgerKind.COMMIT
            and not BudgetEntry.objects.filter(recommendation=line, kind=LedgerKind.COMMIT).exists()
        )
        if difference or first_commit:  # a booking is written down once, even at the reserved cost
            BudgetEntry.objects.create(
                root=root,
                job_id=line.job_id,
                recommendation=line,
                kind=kind,
                amount_micros=difference,
                reason=reason[:300],
            )


def release_for_reallocation(
    root: BookingJob, *, channel: str, amount_micros: int, projected_micros: int, reason: str
) -> int:
    """Money ``channel`` is projected not to spend, moved to another channel by an approved reallocation: what
    of it the channel has *committed* (its deals' cost above its projected spend, less what earlier
    reallocations released) is released, so the top-up that spends it fits the budget. Money the channel never
    committed is free already and is not released twice. Returns the micros released."""
    with transaction.atomic():
        locked = _root_locked(root)
        on_channel = (
            BudgetEntry.objects.filter(root=locked)
            .filter(Q(recommendation__channel=channel) | Q(recommendation__isnull=True, channel=channel))
            .aggregate(total=Sum("amount_micros"))["total"]
            or 0
        )
        amount = max(0, min(amount_micros, on_channel - projected_micros))
        if amount:
            BudgetEntry.objects.create(
                root=locked,
                job=locked,
                kind=LedgerKind.RELEASE,
                channel=channel,
                amount_micros=-amount,
                reason=reason[:300],
            )
        return amount


def release_job(job: BookingJob, *, reason: str) -> None:
    """Release every line of ``job`` that holds money but has no deal (its job ended before booking them)."""
    holding = (
        Recommendation.objects.filter(job=job, deal__isnull=True, budget_entries__isnull=False).distinct().only("pk")
    )
    for line in holding:
        line.job_id = job.pk
        release(line, reason=reason)
