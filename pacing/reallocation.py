"""Reallocation: when a campaign's channels diverge, propose moving the budget that under-pacing channels will
not spend to the channels that over-pace; a media buyer approves or rejects.

Nothing is booked by a proposal. Approving records the new channel budgets (their sum is the campaign budget,
before and after) and starts, for each channel that receives money, a top-up booking job for exactly the moved
amount through the normal flow: research at the sellers, real quotes, and a person's approval of its lines. The
giving channels' deals at AdCP sellers are cut to what they are projected to spend (``budget_cuts``), after the
approval commits.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from buyer.errors import Conflict, NotFound
from buyer.events.models import EventType
from buyer.events.services import event_emit, event_emit_many
from buyer.sellers.money import decimal_to_micros, micros_to_decimal
from campaigns import ledger
from campaigns.models import BookingJob, Campaign
from campaigns.services import JobStateError, job_create_top_up
from pacing.budget_cuts import budget_cuts_plan
from pacing.maths import Move, plan_reallocation
from pacing.models import (
    ChannelBudget,
    PacingSnapshot,
    ProposalStatus,
    ReallocationMove,
    ReallocationProposal,
    Scope,
    SnapshotRun,
)
from pacing.selectors import channel_budgets, planned_budgets

logger = logging.getLogger(__name__)


class ProposalNotFound(NotFound):
    """No such reallocation proposal (API: 404)."""


class ProposalStateError(Conflict):
    """The proposal was already decided, has lapsed, or no longer fits the budgets (API: 409)."""


def _money(micros: int) -> str:
    return f"${micros_to_decimal(micros):,.2f}"


def _rationale(moves: list[Move], channels: dict[str, dict[str, Any]]) -> str:
    def describe(name: str) -> str:
        info = channels[name]
        pct = info.get("deviation_pct")
        behind = info["status"] == "behind"
        pace = f"{abs(float(pct)):.1f} % {'behind' if behind else 'ahead'}" if pct else "off pace"
        if behind:
            spends = f"{_money(info['projected'])} of its {_money(info['budget'])} budget"
            return f"{name} is {pace}: at this pace it spends {spends}"
        booked = info.get("booked", info["projected"])
        return (
            f"{name} is {pace}: at this pace its {_money(booked)} booked is delivered before the flight ends "
            f"(budget {_money(info['budget'])})"
        )

    names = list(dict.fromkeys([m.from_channel for m in moves] + [m.to_channel for m in moves]))
    legs = "; ".join(f"{_money(m.amount_micros)} from {m.from_channel} to {m.to_channel}" for m in moves)
    return (
        f"{'; '.join(describe(n) for n in names)}. Move {legs}. Approving records the new channel budgets and "
        "starts a top-up booking for each receiving channel; its lines are quoted by the sellers and wait for "
        "your approval, as any booking does."
    )


def proposals_update(*, run: SnapshotRun, as_of: datetime) -> int:
    """Lapse proposals that no longer apply and propose for campaigns whose channels diverge; returns how
    many were proposed. Runs inside the snapshot run's transaction."""
    rows = PacingSnapshot.objects.filter(run=run, scope=Scope.CHANNEL).values(
        "job_id", "channel", "status", "in_grace", "projected_micros", "booked_micros", "deviation_pct"
    )
    by_job: dict[Any, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows.iterator(chunk_size=2000):
        by_job[row["job_id"]][row["channel"]] = row
    # A channel still in its grace period (every deal just started) is neither a donor nor a receiver yet.
    diverging = {
        job_id
        for job_id, channels in by_job.items()
        if any(c["status"] == "behind" and not c["in_grace"] for c in channels.values())
        and any(c["status"] == "ahead" and not c["in_grace"] for c in channels.values())
    }
    roots = PacingSnapshot.objects.filter(run=run, scope=Scope.CAMPAIGN).values("job_id")
    pending = ReallocationProposal.objects.filter(status=ProposalStatus.PENDING, job_id__in=roots)
    lapsed = list(pending.filter(expires_at__lte=as_of).values_list("pk", "job_id"))
    settled = list(pending.filter(expires_at__gt=as_of).exclude(job_id__in=diverging).values_list("pk", "job_id"))
    _expire_many(lapsed, reason="lapsed undecided", at=as_of)
    _expire_many(settled, reason="the channels are no longer diverging", at=as_of)
    busy = set(pending.values_list("job_id", flat=True))
    cooldown = as_of - timedelta(hours=settings.PACING_REALLOCATION_COOLDOWN_HOURS)
    cooling = set(
        ReallocationProposal.objects.filter(job_id__in=diverging, decided_at__gt=cooldown).values_list(
            "job_id", flat=True
        )
    )
    candidates = diverging - busy - cooling
    if not candidates:
        return 0
    jobs = BookingJob.objects.filter(pk__in=candidates).only("id", "campaign_id", "budget_allocations")
    budgets_of = dict(Campaign.objects.filter(jobs__in=candidates).values_list("pk", "budget_micros"))
    stored: dict[Any, dict[str, int]] = defaultdict(dict)
    for job_id, channel, micros in ChannelBudget.objects.filter(job_id__in=candidates).values_list(
        "job_id", "channel", "budget_micros"
    ):
        stored[job_id][channel] = micros
    minimum = decimal_to_micros(settings.PACING_REALLOCATION_MIN_USD)
    planned: list[tuple[BookingJob, list[Move], dict[str, dict[str, Any]], dict[str, int]]] = []
    for job in jobs.iterator(chunk_size=1000):
        budgets = stored.get(job.pk) or planned_budgets(job)
        channels = {
            name: {
                "status": "in_grace" if row["in_grace"] else row["status"],
                "budget": budgets.get(name, row["booked_micros"]),
                "projected": row["projected_micros"],
                "booked": row["booked_micros"],
                "deviation_pct": row["deviation_pct"],
            }
            for name, row in by_job[job.pk].items()
        }
        moves = plan_reallocation(
            channels=channels,
            campaign_budget_micros=budgets_of[job.campaign_id],
            minimum_micros=minimum,
            max_share_pct=settings.PACING_REALLOCATION_MAX_SHARE_PCT,
        )
        if moves:
            planned.append((job, moves, channels, budgets))
    _propose_many(planned, run=run, at=as_of)
    return len(planned)


def _propose_many(
    planned: list[tuple[BookingJob, list[Move], dict[str, dict[str, Any]], dict[str, int]]],
    *,
    run: SnapshotRun,
    at: datetime,
) -> None:
    """Store the proposals, their moves and one ``pacing.reallocation_recommended`` each, in three INSERTs."""
    expires = at + timedelta(hours=settings.PACING_PROPOSAL_TTL_HOURS)
    proposals = ReallocationProposal.objects.bulk_create(
        [
            ReallocationProposal(
                job=job,
                amount_micros=sum(m.amount_micros for m in moves),
                rationale=_rationale(moves, channels),
                budgets_before=budgets,
                run=run,
                expires_at=expires,
            )
            for job, moves, channels, budgets in planned
        ],
        batch_size=1000,
    )
    ReallocationMove.objects.bulk_create(
        [
            ReallocationMove(
                proposal=proposal, from_channel=m.from_channel, to_channel=m.to_channel, amount_micros=m.amount_micros
            )
            for proposal, (_, moves, _, _) in zip(proposals, planned, strict=True)
            for m in moves
        ],
        batch_size=1000,
    )
    event_emit_many(
        [
            {
                "event_type": EventType.PACING_REALLOCATION_RECOMMENDED,
                "flow_id": str(job.pk),
                "flow_type": "pacing",
                "campaign_id": str(job.campaign_id),
                "payload": {
                    "proposal_id": proposal.pk,
                    "amount": micros_to_decimal(proposal.amount_micros),
                    "moves": [_move_payload(m.from_channel, m.to_channel, m.amount_micros) for m in moves],
                    "rationale": proposal.rationale,
                    "expires_at": proposal.expires_at,
                },
            }
            for proposal, (job, moves, _, _) in zip(proposals, planned, strict=True)
        ]
    )


def _expire_many(proposals: list[tuple[int, Any]], *, reason: str, at: datetime) -> None:
    """Lapse these pending proposals, with a ``pacing.reallocation_expired`` each."""
    if not proposals:
        return
    keys = [pk for pk, _ in proposals]
    ReallocationProposal.objects.filter(pk__in=keys, status=ProposalStatus.PENDING).update(
        status=ProposalStatus.EXPIRED, decided_at=at, decision_note=reason
    )
    # Only those this call lapsed (one decided meanwhile keeps its decision, and gets no event).
    lapsed = set(
        ReallocationProposal.objects.filter(pk__in=keys, status=ProposalStatus.EXPIRED, decided_at=at).values_list(
            "pk", flat=True
        )
    )
    event_emit_many(
        [
            {
                "event_type": EventType.PACING_REALLOCATION_EXPIRED,
                "flow_id": str(job_id),
                "flow_type": "pacing",
                "payload": {"proposal_id": pk, "reason": reason},
            }
            for pk, job_id in proposals
            if pk in lapsed
        ]
    )


def _move_payload(source: str, target: str, micros: int) -> dict[str, Any]:
    return {"from_channel": source, "to_channel": target, "amount": micros_to_decimal(micros)}


def _proposal_key(proposal_id: int | str) -> int:
    try:
        return int(proposal_id)
    except (TypeError, ValueError):
        raise ProposalNotFound(f"No reallocation proposal {proposal_id}") from None


def _lapse_if_due(key: int) -> None:
    """Lapse an undecided proposal past its time, in its own transaction, so the refusal that follows keeps it."""
    now = timezone.now()
    due = ReallocationProposal.objects.filter(pk=key, status=ProposalStatus.PENDING, expires_at__lte=now)
    _expire_many(list(due.values_list("pk", "job_id")), reason="lapsed undecided", at=now)


def _lock_pending(key: int) -> ReallocationProposal:
    # Lock the proposal only: its job and campaign rows are shared with snapshot runs (they reference them).
    proposal = (
        ReallocationProposal.objects.select_for_update(of=("self",))
        .select_related("job__campaign")
        .filter(pk=key)
        .first()
    )
    if proposal is None:
        raise ProposalNotFound(f"No reallocation proposal {key}")
    if proposal.status == ProposalStatus.EXPIRED:
        raise ProposalStateError(
            f"This proposal lapsed ({proposal.decision_note or 'undecided'}); "
            "a new one follows the next snapshot if the channels still diverge"
        )
    if proposal.status != ProposalStatus.PENDING:
        raise ProposalStateError(f"This proposal is already {proposal.status}")
    return proposal


def proposal_approve(*, proposal_id: int | str, actor: str) -> ReallocationProposal:
    """Record the new channel budgets and start a top-up booking job per receiving channel."""
    key = _proposal_key(proposal_id)
    _lapse_if_due(key)
    with transaction.atomic():
        return _approve(_lock_pending(key), actor=actor)


def _approve(proposal: ReallocationProposal, *, actor: str) -> ReallocationProposal:
    job = proposal.job
    moves = list(proposal.moves.all())
    before = channel_budgets(job)
    after = dict(before)
    for move in moves:
        if after.get(move.from_channel, 0) < move.amount_micros:
            raise ProposalStateError(
                f"{move.from_channel} no longer has {_money(move.amount_micros)} to give; reject this proposal"
            )
        after[move.from_channel] -= move.amount_micros
        after[move.to_channel] = after.get(move.to_channel, 0) + move.amount_micros
    _still_unspent(job, moves, before)
    for channel, micros in after.items():
        ChannelBudget.objects.update_or_create(job=job, channel=channel, defaults={"budget_micros": micros})
    received: dict[str, int] = defaultdict(int)
    for move in moves:
        received[move.to_channel] += move.amount_micros
    top_ups: dict[str, BookingJob] = {}
    reason = f"reallocation proposal {proposal.pk} approved by {actor or 'a media buyer'}"
    try:
        for channel, micros in received.items():
            top_ups[channel] = job_create_top_up(
                parent=job, channel=channel, amount=micros_to_decimal(micros), reason=reason
            )
    except JobStateError as exc:
        raise ProposalStateError(str(exc)) from exc
    # The money moved is what the giving channels will not spend: what of it they committed is released for the
    # top-up that spends it, so it fits the campaign's budget (and goes back if the top-up does not spend it).
    projected = _projected(job, [m.from_channel for m in moves])
    released: dict[str, int] = defaultdict(int)
    for move in moves:
        move.top_up_job = top_ups[move.to_channel]
        released[move.from_channel] += ledger.release_for_reallocation(
            job,
            channel=move.from_channel,
            amount_micros=move.amount_micros,
            projected_micros=projected.get(move.from_channel, 0),
            reason=f"reallocation proposal {proposal.pk} approved: {move.from_channel} is projected not to spend it",
            top_up=move.top_up_job,
        )
    ReallocationMove.objects.bulk_update(moves, ["top_up_job"])
    # What the giving channels' AdCP deals can no longer spend is cut at their sellers once this commits.
    cuts = budget_cuts_plan(proposal, released=dict(released))
    if cuts:
        transaction.on_commit(lambda: _send_cuts(proposal.pk))
    proposal.status, proposal.decided_at, proposal.decided_by = ProposalStatus.APPROVED, timezone.now(), actor
    proposal.save(update_fields=["status", "decided_at", "decided_by"])
    event_emit(
        EventType.PACING_REALLOCATION_APPLIED,
        flow_id=str(job.pk),
        flow_type="pacing",
        campaign_id=str(job.campaign_id),
        payload={
            "proposal_id": proposal.pk,
            "actor": actor,
            "amount": proposal.amount,
            "moves": [_move_payload(m.from_channel, m.to_channel, m.amount_micros) for m in moves],
            "budgets_before": {k: micros_to_decimal(v) for k, v in before.items()},
            "budgets_after": {k: micros_to_decimal(v) for k, v in after.items()},
            "top_up_jobs": {channel: str(j.pk) for channel, j in top_ups.items()},
            "seller_budget_cuts": [{"deal_id": c.deal.deal_id, "from": c.from_budget, "to": c.to_budget} for c in cuts],
        },
    )
    return proposal


def _send_cuts(proposal_pk: int) -> None:
    from pacing.tasks import apply_budget_cuts

    try:
        apply_budget_cuts.delay(proposal_pk)
    except Exception:
        # The broker is away: beat sends every cut still due.
        logger.warning("could not queue the budget cuts of proposal %s; beat sends them", proposal_pk, exc_info=True)


def _still_unspent(job: BookingJob, moves: list[ReallocationMove], budgets: dict[str, int]) -> None:
    """Each giving channel must still be projected to leave what it gives unspent (its budget minus its projected
    spend in the latest snapshot): the money moved is money the campaign would not spend otherwise."""
    given: dict[str, int] = defaultdict(int)
    for move in moves:
        given[move.from_channel] += move.amount_micros
    projected = _projected(job, list(given))
    for channel, amount in given.items():
        spare = budgets.get(channel, 0) - projected.get(channel, budgets.get(channel, 0))
        if spare < amount:
            raise ProposalStateError(
                f"{channel} is now projected to leave {_money(max(spare, 0))} unspent, less than the "
                f"{_money(amount)} this proposal moves; reject it and wait for the next one"
            )


def _projected(job: BookingJob, channels: list[str]) -> dict[str, int]:
    """The channels' projected spend in the campaign's latest snapshot."""
    return dict(
        PacingSnapshot.objects.current()
        .filter(job=job, scope=Scope.CHANNEL, channel__in=channels)
        .values_list("channel", "projected_micros")
    )


def proposal_reject(*, proposal_id: int | str, actor: str, note: str = "") -> ReallocationProposal:
    """Decline: nothing changes but the proposal's status; the next proposal waits for the cool-down."""
    key = _proposal_key(proposal_id)
    _lapse_if_due(key)
    with transaction.atomic():
        return _reject(_lock_pending(key), actor=actor, note=note)


def _reject(proposal: ReallocationProposal, *, actor: str, note: str) -> ReallocationProposal:
    proposal.status, proposal.decided_at, proposal.decided_by = ProposalStatus.REJECTED, timezone.now(), actor
    proposal.decision_note = note[:500]
    proposal.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])
    event_emit(
        EventType.PACING_REALLOCATION_REJECTED,
        flow_id=str(proposal.job_id),
        flow_type="pacing",
        campaign_id=str(proposal.job.campaign_id),
        payload={"proposal_id": proposal.pk, "actor": actor, "amount": proposal.amount, "note": proposal.decision_note},
    )
    return proposal
