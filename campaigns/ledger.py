"""A campaign's budget ledger: money is reserved when lines are approved, committed when the seller books them,
and released when a line will not be booked (or a reallocation moves money a channel will not spend). A
campaign and its top-up jobs share one ledger, kept under the campaign's first job; every write locks that
job's row, so concurrent approvals, top-ups and re-quotes of one campaign are serialised and the ledger's sum
(what is reserved or committed) never exceeds the campaign's budget: an approval that would is refused.
Money a reallocation releases is set aside for the top-up job it funds while that job runs, and what the top-up
does not spend goes back to the giving channel when it ends, so the two together never exceed it either.

Each line's entries sum to what it holds: its approved cost while it waits to be booked, its deal's cost once
booked (a seller that books for less frees the difference), nothing once released.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum

from buyer.errors import Conflict
from buyer.sellers.money import decimal_to_micros, micros_to_decimal
from campaigns.models import BookingJob, BudgetEntry, LedgerKind, Recommendation


class BudgetExceeded(Conflict):
    """Reserving these lines would commit more than the campaign's budget, or break a platform limit (API: 409)."""


class LimitExceeded(BudgetExceeded):
    """A line above ``MAX_LINE_USD``, or a seller above ``SELLER_MAX_SHARE_PCT`` of the campaign's budget: planning
    leaves such lines out, and the ledger refuses them whatever path they come by (a re-quoted line approved
    again, a held deal accepted, a seller that booked for more)."""


def _root_locked(job: BookingJob) -> BookingJob:
    """The campaign's first job, locked for the ledger write: the job row only, and NO KEY UPDATE, so the
    snapshot runs that reference it (FOR KEY SHARE) never wait for an approval, nor an approval for them."""
    root_id = job.parent_id or job.pk
    return BookingJob.objects.select_for_update(no_key=True, of=("self",)).select_related("campaign").get(pk=root_id)


def committed_micros(root: BookingJob) -> int:
    """What the campaign has reserved or committed, in micros."""
    return BudgetEntry.objects.filter(root=root).aggregate(total=Sum("amount_micros"))["total"] or 0


def earmarked_micros(root: BookingJob, *, besides: uuid.UUID | None = None) -> int:
    """Money a reallocation released for a top-up job still running and not yet held by its lines: set aside for
    that top-up (it goes back to the giving channel if the top-up does not spend it), so no other job may
    reserve it meanwhile. ``besides``: the job asking, whose own earmark is its to spend."""
    released: dict[uuid.UUID, int] = dict(
        BudgetEntry.objects.filter(
            root=root, recommendation__isnull=True, kind=LedgerKind.RELEASE, job__finished_at__isnull=True
        )
        .exclude(job_id=root.pk)
        .exclude(job_id=besides)
        .values_list("job_id")
        .annotate(total=-Sum("amount_micros"))
    )
    if not released:
        return 0
    used: dict[uuid.UUID, int] = dict(
        BudgetEntry.objects.filter(root=root, recommendation__job_id__in=list(released))
        .values_list("recommendation__job_id")
        .annotate(total=Sum("amount_micros"))
    )
    return sum(max(0, amount - max(0, used.get(job, 0))) for job, amount in released.items())


def held_micros(line: Recommendation) -> int:
    return held_by_line([line])[line.pk]


def held_by_line(lines: Iterable[Recommendation]) -> dict[int, int]:
    """What each line holds, in micros, in one query (a line without entries holds 0)."""
    pks = [line.pk for line in lines]
    held = dict(
        BudgetEntry.objects.filter(recommendation_id__in=pks)
        .order_by()
        .values_list("recommendation_id")
        .annotate(total=Sum("amount_micros"))
    )
    return {pk: held.get(pk) or 0 for pk in pks}


def _money(micros: int) -> str:
    return f"${micros_to_decimal(micros):,.2f}"


def _check_limits(
    root: BookingJob, holdings: list[tuple[Recommendation, int]], *, now_held: dict[int, int] | None = None
) -> None:
    """Refuse (``LimitExceeded``) if a line would hold more than ``MAX_LINE_USD``, or a seller more than
    ``SELLER_MAX_SHARE_PCT`` of the campaign's budget, once each line holds its new amount. ``now_held``: what
    the lines hold now, if the caller has read it (``held_by_line``)."""
    max_line = decimal_to_micros(settings.MAX_LINE_USD)
    for line, target in holdings:
        if target > max_line:
            raise LimitExceeded(
                f"{line.product_name or 'A line'} would cost {_money(target)}, above the per-line maximum of "
                f"{_money(max_line)} (MAX_LINE_USD)"
            )
    share = settings.SELLER_MAX_SHARE_PCT
    if share >= 100:
        return
    cap = int(root.campaign.budget_micros * share / 100)
    now_held = now_held if now_held is not None else held_by_line(line for line, _ in holdings)
    changes = {line.pk: target - now_held[line.pk] for line, target in holdings}
    sellers = {line.seller_url for line, _ in holdings}
    held = dict(
        BudgetEntry.objects.filter(root=root, recommendation__seller_url__in=sellers)
        .values_list("recommendation__seller_url")
        .annotate(total=Sum("amount_micros"))
    )
    for seller in sellers:
        after = (held.get(seller) or 0) + sum(changes[line.pk] for line, _ in holdings if line.seller_url == seller)
        if after > cap and any(changes[line.pk] > 0 for line, _ in holdings if line.seller_url == seller):
            raise LimitExceeded(
                f"{_money(after)} at seller {seller} would be more than {share:g} % of the campaign's "
                f"{_money(root.campaign.budget_micros)} budget (SELLER_MAX_SHARE_PCT)"
            )


def reserve(job: BookingJob, lines: Iterable[Recommendation], *, reason: str = "approved") -> None:
    """Reserve the lines' cost against the campaign budget, or refuse (``BudgetExceeded``, or ``LimitExceeded``
    for a platform limit) and reserve nothing."""
    lines = [line for line in lines if line.cost_micros > 0]
    with transaction.atomic():
        root = _root_locked(job)
        now_held = held_by_line(lines)
        wanted = sum(line.cost_micros - now_held[line.pk] for line in lines)
        already = committed_micros(root)
        aside = earmarked_micros(root, besides=job.pk)
        if already + aside + wanted > root.campaign.budget_micros:
            set_aside = f", {_money(aside)} set aside for top-up jobs" if aside else ""
            raise BudgetExceeded(
                f"Approving {_money(wanted)} would commit {_money(already + aside + wanted)} of the campaign's "
                f"{_money(root.campaign.budget_micros)} budget ({_money(already)} already reserved or committed"
                f"{set_aside}); nothing was approved"
            )
        _check_limits(root, [(line, line.cost_micros) for line in lines], now_held=now_held)
        BudgetEntry.objects.bulk_create(
            [
                BudgetEntry(
                    root=root,
                    job_id=line.job_id,
                    recommendation=line,
                    kind=LedgerKind.RESERVE,
                    amount_micros=line.cost_micros - now_held[line.pk],
                    reason=reason[:300],
                )
                for line in lines
                if line.cost_micros != now_held[line.pk]
            ]
        )


def commit(line: Recommendation, *, cost_micros: int, reason: str) -> None:
    """The seller booked ``line`` for ``cost_micros``: what the line holds becomes exactly that. A deal dearer
    than its reservation takes the difference only if the budget has room and the platform limits hold (else
    ``BudgetExceeded`` or ``LimitExceeded``, and the line keeps its reservation)."""
    _settle(line, cost_micros, LedgerKind.COMMIT, reason)


def release(line: Recommendation, *, reason: str) -> None:
    """``line`` will not be booked (failed, refused, left over when its job ended): it holds nothing more."""
    _settle(line, 0, LedgerKind.RELEASE, reason)


def _settle(line: Recommendation, target: int, kind: str, reason: str) -> None:
    with transaction.atomic():
        job = BookingJob.objects.only("pk", "parent_id").get(pk=line.job_id)
        root = _root_locked(job)
        held = held_micros(line)
        difference = target - held
        if difference > 0 and (
            committed_micros(root) + earmarked_micros(root, besides=job.pk) + difference > root.campaign.budget_micros
        ):
            raise BudgetExceeded(
                f"{_money(target)} is {_money(difference)} more than was reserved, and the campaign's "
                f"{_money(root.campaign.budget_micros)} budget has no room for it"
            )
        if difference > 0:
            _check_limits(root, [(line, target)], now_held={line.pk: held})
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
        if difference < 0 and job.parent_id is not None:
            give_back_unspent(job)


def release_for_reallocation(
    root: BookingJob,
    *,
    channel: str,
    amount_micros: int,
    projected_micros: int,
    reason: str,
    top_up: BookingJob | None = None,
) -> int:
    """Money ``channel`` is projected not to spend, moved to another channel by an approved reallocation: what
    of it the channel has *committed* (its deals' cost above its projected spend, less what earlier
    reallocations released) is released, so the ``top_up`` job that spends it fits the budget. Money the
    channel never committed is free already and is not released twice. What the top-up does not commit goes
    back to the channel when the top-up ends (``give_back_unspent``). Returns the micros released."""
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
                job=top_up or locked,
                kind=LedgerKind.RELEASE,
                channel=channel,
                amount_micros=-amount,
                reason=reason[:300],
            )
        return amount


def give_back_unspent(top_up: BookingJob) -> int:
    """A finished top-up job gives back to the channels that funded it what of their released money its lines do
    not hold (it booked less, or nothing): the giving channels' deals may still deliver it, so it counts again.
    Idempotent: called whenever a finished top-up's lines change; returns the micros given back now."""
    if top_up.parent_id is None:
        return 0
    with transaction.atomic():
        root = _root_locked(top_up)
        if not BookingJob.objects.filter(pk=top_up.pk, finished_at__isnull=False).exists():
            return 0
        unlinked = BudgetEntry.objects.filter(root=root, job=top_up, recommendation__isnull=True)
        released = dict(
            unlinked.filter(kind=LedgerKind.RELEASE).values_list("channel").annotate(total=-Sum("amount_micros"))
        )
        if not released:
            return 0
        given = dict(
            unlinked.filter(kind=LedgerKind.RESERVE).values_list("channel").annotate(total=Sum("amount_micros"))
        )
        used = (
            BudgetEntry.objects.filter(root=root, recommendation__job=top_up).aggregate(total=Sum("amount_micros"))[
                "total"
            ]
            or 0
        )
        owed = max(0, sum(released.values()) - max(0, used)) - sum(given.values())
        back = 0
        for channel, amount in sorted(released.items()):
            take = min(owed - back, amount - given.get(channel, 0))
            if take <= 0:
                continue
            BudgetEntry.objects.create(
                root=root,
                job=top_up,
                kind=LedgerKind.RESERVE,
                channel=channel,
                amount_micros=take,
                reason=(
                    f"given back to {channel}: its top-up job holds {_money(max(0, used))} of the "
                    f"{_money(sum(released.values()))} released for it"
                )[:300],
            )
            back += take
        return back


def release_job(job: BookingJob, *, reason: str) -> None:
    """Release every line of ``job`` that holds money but has no deal (its job ended before booking them)."""
    holding = (
        Recommendation.objects.filter(job=job, deal__isnull=True, budget_entries__isnull=False).distinct().only("pk")
    )
    for line in holding:
        line.job_id = job.pk
        release(line, reason=reason)
