"""The booking flow's steps before booking: plan, research (quotes) and negotiation. Each claims its job, does
slow seller I/O outside any transaction, then saves its output and advances the job in one short atomic block.
The booking step itself is ``campaigns.booking``."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from buyer.events.models import EventType
from buyer.events.services import event_emit, event_emit_many
from buyer.logs import carrying_log_context
from buyer.sellers.client import fetch_catalogs
from buyer.sellers.errors import SellerError
from buyer.sellers.guard import GuardedSellerClient
from buyer.sellers.models import Seller, TrustLevel
from buyer.sellers.money import cost_for, decimal_to_micros, micros_to_decimal
from buyer.sellers.registry import client_for, identity_for
from buyer.sellers.selectors import seller_list_enabled
from buyer.sellers.services import seller_seed_from_settings
from buyer.sellers.types import NegotiationRound as SellerRound
from buyer.sellers.types import Quote, QuoteRequest
from buyer.words import count, verb
from campaigns import agents, ledger, policies
from campaigns.models import (
    BookingJob,
    Campaign,
    JobStage,
    JobStatus,
    NegotiationRound,
    NegotiationStatus,
    Recommendation,
    RecommendationStatus,
)
from campaigns.negotiation import Action, Round, Strategy, Terms, next_move, terms_for, worth_negotiating
from campaigns.negotiation import Move as NegotiationMove
from campaigns.services import (
    AUTO_APPROVER,
    job_add_errors,
    job_advance,
    job_agents_set,
    job_fail,
    job_progress,
)
from campaigns.steps import allocations_of, audience_segments, brief_terms, flow_ids

logger = logging.getLogger(__name__)


# --- plan ---------------------------------------------------------------------------------------------------


def step_plan(job: BookingJob) -> None:
    terms = brief_terms(job.campaign)
    baseline = policies.allocate_budget(terms.budget, list(terms.channels), terms.objectives)
    decision = agents.plan_channels(job, terms, baseline)
    allocations = decision.value
    serialised = {
        a.channel: {
            "channel": a.channel,
            "budget": str(a.amount),
            "percentage": str(a.percentage),
            "rationale": a.rationale,
        }
        for a in allocations
    }
    review = bool((job.campaign.brief or {}).get("plan_review"))
    then: dict[str, Any] = (
        {
            "stage": JobStage.PLAN_REVIEW,
            "status": JobStatus.AWAITING_PLAN_REVIEW,
            "approval_expires_at": timezone.now() + timedelta(hours=settings.APPROVAL_TTL_HOURS),
        }
        if review
        else {"stage": JobStage.RESEARCH, "status": JobStatus.RUNNING}
    )
    job_agents_set(job, {"portfolio_manager": decision.record()})
    with transaction.atomic():
        if job_advance(
            job,
            progress=0.2,
            budget_allocations=serialised,
            **then,
        ):
            event_emit(
                EventType.BUDGET_ALLOCATED,
                **flow_ids(job),
                payload={
                    "allocations": serialised,
                    "decided_by": decision.record()["decided_by"],
                    "note": decision.note,
                },
            )
            if review:
                event_emit(
                    EventType.PLAN_REVIEW_REQUESTED,
                    **flow_ids(job),
                    payload={"allocations": serialised, "expires_at": then["approval_expires_at"].isoformat()},
                )


# --- research and quotes ------------------------------------------------------------------------------------


def step_research(job: BookingJob) -> None:
    terms = brief_terms(job.campaign, segments=audience_segments(job))
    allocations = allocations_of(job)
    seller_seed_from_settings()
    sellers = {str(s.pk): s for s in seller_list_enabled()}
    if not sellers:
        job_fail(job, "No sellers are configured: set SELLER_ENDPOINTS or add a seller in the admin.")
        return
    event_emit(EventType.RESEARCH_STARTED, **flow_ids(job), payload={"sellers": [s.name for s in sellers.values()]})
    clients = {key: client_for(seller) for key, seller in sellers.items()}
    try:
        errors, lines, skips = _research(job, terms, allocations, sellers, clients)
    finally:
        for client in clients.values():
            client.close()

    lines, left_out, decisions = _specialists(job, terms, allocations, lines, sellers)
    selection = policies.select_within_budget(
        lines,
        allocations,
        terms.budget,
        max_line=settings.MAX_LINE_USD,
        max_seller_share_pct=settings.SELLER_MAX_SHARE_PCT,
    )
    skipped = [
        {
            "seller": sellers[s.seller_key].name,
            "product_id": s.product_id,
            "product": s.product_name,
            "channel": s.channel,
            "reason": s.reason,
        }
        for s in skips
    ] + [
        {
            "seller": sellers[line.candidate.seller_key].name,
            "product_id": line.candidate.product.product_id,
            "product": line.candidate.product.name,
            "channel": line.candidate.channel,
            "reason": reason,
        }
        for line, reason in [*left_out, *selection.dropped]
    ]
    if selection.chosen:
        review = agents.review_plan(job, terms, selection.chosen)
        if review is not None:
            decisions["execution_check"] = review.record() | {"concerns": review.value}
    with transaction.atomic():
        job_add_errors(job, errors)
        if decisions:
            job_agents_set(job, decisions)
        event_emit(
            EventType.RESEARCH_COMPLETED,
            **flow_ids(job),
            payload={
                "quoted": len(lines),
                "selected": len(selection.chosen),
                "total_cost": selection.total,
                "skipped": skipped[:200],
            },
        )
        if not selection.chosen:
            why = "No seller returned a usable quote for the requested channels"
            if skipped:
                why += f" ({len(skipped)} products skipped; see the research.completed event)"
            job_fail(job, why + ".")
            return
        _save_recommendations(job, selection, sellers, lines, terms, clients)


def _specialists(
    job: BookingJob,
    terms: policies.BriefTerms,
    allocations: list[policies.Allocation],
    lines: list[policies.QuotedLine],
    sellers: dict[str, Seller],
) -> tuple[list[policies.QuotedLine], list[tuple[policies.QuotedLine, str]], dict[str, Any]]:
    """Each funded channel's specialist chooses and orders its quoted lines (the policy's ranking when it does
    not): the lines to fit to the budgets, the ones left out with why, and who decided each channel."""
    names = {key: seller.name for key, seller in sellers.items()}
    kept: list[policies.QuotedLine] = []
    left_out: list[tuple[policies.QuotedLine, str]] = []
    decisions: dict[str, Any] = {}
    for allocation in allocations:
        channel_lines = [line for line in lines if line.candidate.channel == allocation.channel]
        if not channel_lines:
            continue
        decision = agents.choose_lines(job, terms, allocation, channel_lines, names)
        chosen, dropped = decision.value
        kept += chosen
        left_out += [(line, f"left out by the {allocation.channel} specialist") for line in dropped]
        decisions[f"specialist:{allocation.channel}"] = decision.record()
    kept += [line for line in lines if line.candidate.channel not in {a.channel for a in allocations}]
    return kept, left_out, decisions


def brief_text(campaign: Campaign) -> str:
    """The campaign in a seller's words, for sellers that search by brief: what, for whom, where, when, how much."""
    audience = campaign.target_audience or {}
    parts = [
        campaign.name,
        "Objectives: " + ", ".join(str(o) for o in campaign.objectives or []),
        "Channels: " + ", ".join(str(c) for c in campaign.channels or []) if campaign.channels else "",
        "Audience: " + "; ".join(f"{k}: {v}" for k, v in audience.items()) if audience else "",
        f"Flight {campaign.start_date:%Y-%m-%d} to {campaign.end_date:%Y-%m-%d}, budget ${campaign.budget:,.0f}.",
    ]
    return ". ".join(p for p in parts if p)[:2000]


def _research(
    job: BookingJob,
    terms: policies.BriefTerms,
    allocations: list[policies.Allocation],
    sellers: dict[str, Seller],
    clients: dict[str, GuardedSellerClient],
) -> tuple[list[str], list[policies.QuotedLine], list[policies.Skip]]:
    errors: list[str] = []
    catalogs = fetch_catalogs(clients, max_workers=settings.SELLER_MAX_PARALLEL, brief=brief_text(job.campaign))
    products = {}
    for key, catalog in catalogs.items():
        if isinstance(catalog, SellerError):
            message = f"Seller {sellers[key].name}: catalog unavailable: {catalog}"
            errors.append(message)
            event_emit(
                EventType.SELLER_FAILED,
                **flow_ids(job),
                payload={"seller": sellers[key].name, "error": str(catalog), "step": "catalog"},
            )
        else:
            products[key] = catalog
    job_progress(job, 0.35)

    candidates: list[policies.Candidate] = []
    skips: list[policies.Skip] = []
    taken: set[tuple[str, str]] = set()
    for allocation in allocations:
        found, skipped = policies.rank_candidates(
            products,
            allocation,
            terms,
            max_candidates=settings.MAX_CANDIDATES_PER_CHANNEL,
            taken=frozenset(taken),
        )
        candidates += found
        skips += skipped
        taken |= {(c.seller_key, c.product.product_id) for c in found}

    # Each seller sees only the identity configured for it (its key travels inside its own client).
    identities = {key: identity_for(seller) for key, seller in sellers.items()}

    def quote(candidate: policies.Candidate) -> Quote | SellerError:
        request = QuoteRequest(
            idempotency_key=f"{job.pk}:quote:{candidate.seller_key}:{candidate.product.product_id}",
            product_id=candidate.product.product_id,
            deal_type=candidate.deal_type,
            impressions=candidate.impressions,
            flight_start=terms.start_date,
            flight_end=terms.end_date,
            target_cpm=candidate.target_cpm,
            buyer_identity=identities[candidate.seller_key],
            media_type="ctv" if candidate.product.inventory_type == "ctv" else "digital",
        )
        try:
            return clients[candidate.seller_key].request_quote(request)
        except SellerError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=settings.SELLER_MAX_PARALLEL) as pool:
        results = list(pool.map(carrying_log_context(quote), candidates))

    lines: list[policies.QuotedLine] = []
    events: list[dict[str, Any]] = []  # one INSERT for every quote's event
    for candidate, result in zip(candidates, results, strict=True):
        seller = sellers[candidate.seller_key]
        about = {"seller": seller.name, "product_id": candidate.product.product_id, "product": candidate.product.name}
        if isinstance(result, SellerError):
            errors.append(f"Seller {seller.name}: quote for {candidate.product.product_id} failed: {result}")
            payload: dict[str, Any] = {**about, "error": str(result)}
            events.append(dict(event_type=EventType.QUOTE_FAILED, **flow_ids(job), payload=payload))
            continue
        payload = {
            **about,
            "quote_id": result.quote_id,
            "final_cpm": result.final_cpm,
            "impressions": result.impressions,
            "buyer_tier": result.buyer_tier,
        }
        events.append(dict(event_type=EventType.QUOTE_RECEIVED, **flow_ids(job), payload=payload))
        line = policies.QuotedLine(candidate, result)
        problem = policies.quote_problem(line, terms)
        if problem:
            skips.append(
                policies.Skip(
                    candidate.seller_key,
                    candidate.product.product_id,
                    candidate.product.name,
                    candidate.channel,
                    problem,
                )
            )
        else:
            lines.append(line)
    event_emit_many(events)
    job_progress(job, 0.8)
    return errors, lines, skips


def _save_recommendations(
    job: BookingJob,
    selection: policies.Selection,
    sellers: dict[str, Seller],
    quoted: list[policies.QuotedLine],
    terms: policies.BriefTerms,
    clients: dict[str, GuardedSellerClient],
) -> None:
    restricted = _restricted({sellers[line.candidate.seller_key].name for line in selection.chosen}, sellers)
    # Lines from restricted sellers always wait for a human, so such a job is not auto-approved.
    auto_approve = job.auto_approve and not restricted
    status = RecommendationStatus.APPROVED if auto_approve else RecommendationStatus.PENDING_APPROVAL
    approved_by = AUTO_APPROVER if auto_approve else ""
    strategy = Strategy(job.campaign.negotiation_strategy or settings.NEGOTIATION_STRATEGY)
    recommendations = []
    for priority, line in enumerate(selection.chosen, start=1):
        quote, candidate, seller = line.quote, line.candidate, sellers[line.candidate.seller_key]
        pricing = quote.raw.get("pricing", {})
        if pricing.get("price_type") == "floor_only":
            # An auction price: the seller named only its floor; the CPM is our bid, never a price it quoted.
            price_note = (
                f" The seller's price is a floor only (${quote.base_cpm:,.2f} CPM); the buyer bids "
                f"${quote.final_cpm:,.2f} CPM, at most its ceiling, for {quote.impressions:,} impressions "
                f"= ${line.cost:,.2f} at most."
            )
        else:
            price_note = f" Seller quoted ${quote.final_cpm:,.2f} CPM (list ${quote.base_cpm:,.2f}"
            if quote.tier_discount_pct:
                price_note += f", {quote.buyer_tier} tier -{quote.tier_discount_pct}%"
            if quote.volume_discount_pct:
                price_note += f", volume -{quote.volume_discount_pct}%"
            price_note += f") for {quote.impressions:,} impressions = ${line.cost:,.2f}."
        fmt = (candidate.product.ad_formats or ("",))[0]
        recommendation = Recommendation(
            job=job,
            seller=seller,
            seller_name=seller.name,
            seller_url=seller.base_url,
            product_id=candidate.product.product_id,
            product_name=candidate.product.name,
            publisher=candidate.product.seller_organization_id,
            publisher_domain=candidate.product.publisher_domain,
            channel=candidate.channel,
            inventory_type=candidate.product.inventory_type,
            format=fmt,
            deal_type=quote.deal_type or candidate.deal_type,
            impressions=quote.impressions,
            base_cpm_micros=decimal_to_micros(quote.base_cpm),
            cpm_micros=decimal_to_micros(quote.final_cpm),
            quoted_cpm_micros=decimal_to_micros(quote.final_cpm),
            cost_micros=decimal_to_micros(line.cost),
            buyer_tier=quote.buyer_tier,
            pricing=pricing,
            quote_id=quote.quote_id,
            quote_expires_at=quote.expires_at,
            targeting=job.campaign.target_audience or {},
            priority=priority,
            rationale=candidate.rationale + price_note,
            model_rationale=candidate.model_note,
            status=status,
            approved_by=approved_by,
        )
        competing = tuple(
            other.quote.final_cpm
            for other in quoted
            if other.candidate.seller_key != candidate.seller_key
            and other.candidate.channel == candidate.channel
            and (other.candidate.product.ad_formats or ("",))[0] == fmt
        )
        if quote.raw.get("protocol") != "adcp":  # AdCP sells at its pricing options: there is nothing to negotiate
            _plan_negotiation(recommendation, strategy, terms, competing)
        recommendations.append(recommendation)
    Recommendation.objects.bulk_create(recommendations)
    negotiating = [r for r in recommendations if r.negotiation_status == NegotiationStatus.ACTIVE]
    if negotiating:
        if job_advance(job, stage=JobStage.NEGOTIATE, status=JobStatus.RUNNING, progress=0.82):
            for r in negotiating:
                event_emit(
                    EventType.NEGOTIATION_STARTED,
                    **flow_ids(job),
                    payload={
                        "recommendation_id": r.pk,
                        "seller": r.seller_name,
                        "product_id": r.product_id,
                        "product": r.product_name,
                        "quote_id": r.quote_id,
                        **r.negotiation_terms,
                    },
                )
        else:
            transaction.set_rollback(True)
        return
    _hand_over(job)


def _above_auto_approval_limits(lines: list[Recommendation]) -> str:
    """Why these lines may not be approved automatically by amount ("" when they may): a line above
    ``AUTO_APPROVE_MAX_LINE_USD`` or a job above ``AUTO_APPROVE_MAX_JOB_USD`` waits for a person."""
    line_cap = decimal_to_micros(settings.AUTO_APPROVE_MAX_LINE_USD)
    job_cap = decimal_to_micros(settings.AUTO_APPROVE_MAX_JOB_USD)
    big = [r for r in lines if r.cost_micros > line_cap]
    if big:
        return (
            f"{count(len(big), 'line')} above the auto-approval limit of ${settings.AUTO_APPROVE_MAX_LINE_USD:,.2f} "
            f"a line (largest ${max(r.cost for r in big):,.2f}) {verb(len(big), 'needs', 'need')} a human"
        )
    total = sum(r.cost_micros for r in lines)
    if total > job_cap:
        return (
            f"${micros_to_decimal(total):,.2f} is above the auto-approval limit of "
            f"${settings.AUTO_APPROVE_MAX_JOB_USD:,.2f} a job; a human approves it"
        )
    return ""


def _restricted(names: set[str], sellers: dict[str, Seller] | None = None) -> list[str]:
    if sellers is None:
        sellers = {str(s.pk): s for s in Seller.objects.filter(name__in=names)}
    return sorted(names & {s.name for s in sellers.values() if s.trust_level == TrustLevel.RESTRICTED})


def _plan_negotiation(
    line: Recommendation,
    strategy: Strategy,
    brief: policies.BriefTerms,
    competing: tuple[Decimal, ...],
) -> None:
    """Mark ``line`` for negotiation, with its terms frozen, when it is worth it. Over MCP the seller's
    ``negotiate`` tool is used when it has one, its REST negotiation otherwise."""
    if strategy == Strategy.NONE or brief.target_cpm is None:
        return
    terms = terms_for(
        strategy,
        quoted=line.cpm,
        target=brief.target_cpm,
        ceiling=brief.max_cpm,
        competing=competing,
        max_rounds=settings.NEGOTIATION_MAX_ROUNDS,
        step_pct=settings.NEGOTIATION_STEP_PCT,
    )
    if worth_negotiating(terms):
        return
    line.negotiation_status = NegotiationStatus.ACTIVE
    line.negotiation_terms = {
        "strategy": str(strategy),
        "quoted": str(terms.quoted),
        "target": str(terms.target),
        "walk_away": str(terms.walk_away),
        "max_rounds": terms.max_rounds,
        "step_pct": str(terms.step_pct),
        "competing": [str(p) for p in terms.competing],
    }


def _hand_over(job: BookingJob) -> None:
    """Research (and negotiation) done: the lines go to a person for approval, or straight to booking."""
    lines = list(job.recommendations.all())
    restricted = _restricted({r.seller_name for r in lines})
    over_limit = _above_auto_approval_limits(lines)
    terms = brief_terms(job.campaign)
    findings = policies.plan_findings(lines, terms, {a.channel: a.amount for a in allocations_of(job)})
    recorded = BookingJob.objects.filter(pk=job.pk).values_list("agents", flat=True).first() or {}
    earlier = recorded.get("execution_check") or {}
    concerns = earlier.get("concerns") or []
    # With the review asked for, a review that did not happen (no model, a cap, an outage) is no pass.
    unreviewed = settings.LLM_EXECUTION_REVIEW and earlier.get("decided_by") != "model"
    if unreviewed:
        concerns = [
            *concerns,
            f"the execution check agent did not review the plan ({earlier.get('note') or 'not run'})",
        ]
    check = {"findings": findings, "concerns": concerns, "passed": not findings and not concerns}
    job_agents_set(job, {"execution_check": {**earlier, **check}})
    auto_approve = job.auto_approve and not restricted and not over_limit and check["passed"]
    total = micros_to_decimal(sum(r.cost_micros for r in lines))
    payload: dict[str, Any] = {"count": len(lines), "total_cost": total, "budget": job.campaign.budget}
    negotiated = [r for r in lines if r.negotiation_status == NegotiationStatus.AGREED]
    if negotiated:
        saved = sum((r.quoted_cpm_micros or r.cpm_micros) - r.cpm_micros for r in negotiated) / 1_000_000
        payload["negotiated"] = {"lines": len(negotiated), "cpm_saved": round(saved, 2)}
    if restricted and job.auto_approve:
        payload["auto_approve_withheld"] = f"lines from restricted sellers need a human: {', '.join(restricted)}"
    elif over_limit and job.auto_approve:
        payload["auto_approve_withheld"] = over_limit
    elif not check["passed"] and job.auto_approve:
        payload["auto_approve_withheld"] = "the execution check found: " + "; ".join([*findings, *concerns])[:400]
    if auto_approve:
        try:
            ledger.reserve(job, lines, reason="auto-approved")
        except ledger.BudgetExceeded as exc:
            auto_approve = False
            payload["auto_approve_withheld"] = str(exc)
    if auto_approve:
        if job_advance(job, stage=JobStage.BOOK, status=JobStatus.RUNNING, progress=0.9):
            job.recommendations.filter(status=RecommendationStatus.APPROVED).update(approved_at=timezone.now())
            event_emit(EventType.RECOMMENDATIONS_READY, **flow_ids(job), payload=payload)
            event_emit(
                EventType.APPROVAL_GRANTED,
                **flow_ids(job),
                payload={"product_ids": [r.product_id for r in lines], "total_cost": total, "auto_approve": True},
            )
        else:
            transaction.set_rollback(True)
        return
    if job.auto_approve:  # restricted or over the limits: every line waits for a person after all
        Recommendation.objects.filter(job=job, status=RecommendationStatus.APPROVED).update(
            status=RecommendationStatus.PENDING_APPROVAL, approved_by=""
        )
    expires = timezone.now() + timedelta(hours=settings.APPROVAL_TTL_HOURS)
    if job_advance(
        job,
        stage=JobStage.APPROVAL,
        status=JobStatus.AWAITING_APPROVAL,
        progress=0.85,
        approval_expires_at=expires,
    ):
        event_emit(EventType.RECOMMENDATIONS_READY, **flow_ids(job), payload=payload)
        event_emit(EventType.APPROVAL_REQUESTED, **flow_ids(job), payload={**payload, "expires_at": expires})
    else:
        transaction.set_rollback(True)


# --- negotiation --------------------------------------------------------------------------------------------


def _terms_of(line: Recommendation) -> Terms:
    t = line.negotiation_terms
    return Terms(
        quoted=Decimal(t["quoted"]),
        target=Decimal(t["target"]),
        walk_away=Decimal(t["walk_away"]),
        max_rounds=int(t["max_rounds"]),
        step_pct=Decimal(t["step_pct"]),
        competing=tuple(Decimal(p) for p in t.get("competing", [])),
    )


@dataclass
class _Exchange:
    """One line's message this step: what we send, and what came back (or the error)."""

    line: Recommendation
    number: int
    move: NegotiationMove
    answer: SellerRound | None = None
    error: SellerError | None = None


def step_negotiate(job: BookingJob) -> None:
    """One round of every open negotiation of the job, in parallel across lines: each line's next move comes
    from its stored rounds (a pure function), its message key from our records, so a replayed step sends the
    same message and the seller answers it again instead of counting a new round. The step then ends; the
    next round is a new step (no lease is held across rounds). When none is open, the lines are handed over."""
    lines = list(
        job.recommendations.filter(negotiation_status=NegotiationStatus.ACTIVE)
        .select_related("seller")
        .prefetch_related("negotiation_rounds")
    )
    started = min((r.created_at for r in lines), default=timezone.now())
    out_of_time = timezone.now() - started > timedelta(seconds=settings.NEGOTIATION_MAX_SECONDS)
    exchanges: list[_Exchange] = []
    for line in lines:
        if line.seller is None:
            _conclude(job, line, NegotiationStatus.ENDED, "seller_deleted: the quote stands")
            continue
        if out_of_time:
            _conclude(job, line, NegotiationStatus.ENDED, f"time_limit: {settings.NEGOTIATION_MAX_SECONDS} s")
            continue
        stored = list(line.negotiation_rounds.all())
        if len(stored) > _terms_of(line).max_rounds + 1:  # every move counts, priced or not
            _conclude(job, line, NegotiationStatus.ENDED, f"protocol_error: {len(stored)} messages; the quote stands")
            continue
        priced = tuple(
            Round(r.buyer_price, r.seller_price, r.rounds_remaining)
            for r in stored
            if r.action == "counter" and r.buyer_price is not None and r.seller_price is not None
        )
        move = next_move(Strategy(line.negotiation_terms["strategy"]), _terms_of(line), priced)
        if move.action == Action.WALK_AWAY and not stored:
            _conclude(job, line, NegotiationStatus.WALKED_AWAY, f"walked_away: {move.reason}")
            continue
        exchanges.append(_Exchange(line, len(stored) + 1, move))

    clients: dict[str, GuardedSellerClient] = {}
    for exchange in exchanges:
        if exchange.line.seller_url not in clients:
            assert exchange.line.seller is not None  # a line without its seller was concluded above
            clients[exchange.line.seller_url] = client_for(exchange.line.seller)

    def send(exchange: _Exchange) -> None:
        line, move = exchange.line, exchange.move
        action = {Action.COUNTER: "counter", Action.ACCEPT: "accept", Action.WALK_AWAY: "reject"}[move.action]
        try:
            exchange.answer = clients[line.seller_url].negotiate(
                idempotency_key=f"{job.pk}:negotiate:{line.pk}:{exchange.number}",
                action=action,
                quote_id=line.quote_id,
                buyer_price=move.price if move.action == Action.COUNTER else None,
                round_number=exchange.number,
                rationale=move.reason[:300],
            )
        except SellerError as exc:
            exchange.error = exc

    try:
        with ThreadPoolExecutor(max_workers=settings.SELLER_MAX_PARALLEL) as pool:
            list(pool.map(carrying_log_context(send), exchanges))
    finally:
        for client in clients.values():
            client.close()
    for exchange in exchanges:
        _record_exchange(job, exchange)
    with transaction.atomic():
        if job.recommendations.filter(negotiation_status=NegotiationStatus.ACTIVE).exists():
            # The next round is the next step: release the claim and send it.
            job_advance(job, stage=JobStage.NEGOTIATE, status=JobStatus.RUNNING, progress=0.83, attempts=0)
        else:
            _hand_over(job)


def _record_exchange(job: BookingJob, exchange: _Exchange) -> None:
    line, move, answer = exchange.line, exchange.move, exchange.answer
    sent = {Action.COUNTER: "counter", Action.ACCEPT: "accept", Action.WALK_AWAY: "reject"}[move.action]
    with transaction.atomic():
        if exchange.error is not None:
            error = exchange.error
            closed = error.status == 400
            reason = ("negotiation_closed" if closed else "seller_error") + f": {error}"
            _conclude(job, line, NegotiationStatus.ENDED, reason[:300])
            return
        assert answer is not None
        NegotiationRound.objects.get_or_create(
            recommendation=line,
            round_number=exchange.number,
            defaults={
                "action": sent,
                "buyer_price_micros": decimal_to_micros(move.price) if move.price is not None else None,
                "seller_price_micros": (
                    decimal_to_micros(answer.seller_price) if answer.seller_price is not None else None
                ),
                "seller_action": answer.action[:24],
                "status": answer.status[:16],
                "rounds_remaining": answer.rounds_remaining,
                "rationale": move.reason,
                "seller_rationale": answer.rationale[:2000],
            },
        )
        if answer.negotiation_id and not line.negotiation_id:
            Recommendation.objects.filter(pk=line.pk).update(negotiation_id=answer.negotiation_id[:200])
        event_emit(
            EventType.NEGOTIATION_ROUND,
            **flow_ids(job),
            payload={
                "recommendation_id": line.pk,
                "seller": line.seller_name,
                "product_id": line.product_id,
                "product": line.product_name,
                "round": exchange.number,
                "action": sent,
                "buyer_price": move.price,
                "seller_price": answer.seller_price,
                "status": answer.status,
                "reason": move.reason,
            },
        )
        terms = _terms_of(line)
        previous = [r.seller_price for r in line.negotiation_rounds.all() if r.seller_price is not None]
        price = answer.seller_price
        broken = _protocol_break(sent, answer)
        if broken:
            _conclude(job, line, NegotiationStatus.ENDED, f"protocol_error: {broken}; the quote stands")
        elif price is not None and price > terms.quoted:
            _conclude(job, line, NegotiationStatus.ENDED, f"counter_above_quote: the seller asked ${price:,.2f}")
        elif price is not None and previous and price > min(previous) and answer.status == "active":
            _conclude(job, line, NegotiationStatus.ENDED, f"counter_rose: the seller went back up to ${price:,.2f}")
        elif answer.status == "accepted":
            agreed = price if price is not None else move.price
            if agreed is None or agreed > terms.walk_away:
                _conclude(job, line, NegotiationStatus.ENDED, f"agreed_above_walk_away: ${agreed}")
            else:
                _conclude(job, line, NegotiationStatus.AGREED, f"at ${agreed:,.2f} CPM", agreed=agreed)
        elif answer.status in {"rejected", "expired"} or sent == "reject":
            outcome = NegotiationStatus.WALKED_AWAY if sent == "reject" else NegotiationStatus.ENDED
            why = f"walked_away: {move.reason}" if sent == "reject" else f"seller_{answer.status}: the quote stands"
            _conclude(job, line, outcome, why)


def _protocol_break(sent: str, answer: SellerRound) -> str:
    """How the seller's answer to our message breaks the negotiation protocol ("" when it does not)."""
    if sent == "reject" and answer.status == "accepted":
        return "the seller answered our walk-away with an agreement"
    if answer.status == "active" and sent == "accept":
        return "the seller kept negotiating after we accepted its price"
    if answer.status == "active" and answer.seller_price is None:
        return "the seller countered without a price"
    if answer.status not in {"active", "accepted", "rejected", "expired"}:
        return f"unknown negotiation status {answer.status!r}"
    return ""


def _conclude(
    job: BookingJob, line: Recommendation, status: NegotiationStatus, outcome: str, *, agreed: Decimal | None = None
) -> None:
    """End one line's negotiation: at the agreed price, or with the quote as it was."""
    values: dict[str, Any] = {"negotiation_status": status, "negotiation_outcome": outcome[:300]}
    if agreed is not None:
        values |= {
            "cpm_micros": decimal_to_micros(agreed),
            "cost_micros": decimal_to_micros(cost_for(line.impressions, agreed)),
            "rationale": f"{line.rationale} Negotiated to ${agreed:,.2f} CPM.",
        }
    with transaction.atomic():
        if not Recommendation.objects.filter(pk=line.pk, negotiation_status=NegotiationStatus.ACTIVE).update(**values):
            return
        event_emit(
            EventType.NEGOTIATION_CONCLUDED,
            **flow_ids(job),
            payload={
                "recommendation_id": line.pk,
                "seller": line.seller_name,
                "product_id": line.product_id,
                "product": line.product_name,
                "outcome": str(status),
                "reason": outcome,
                "quoted_cpm": line.negotiation_terms.get("quoted"),
                "agreed_cpm": agreed,
            },
        )
