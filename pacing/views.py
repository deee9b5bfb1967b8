"""Pacing pages: every active campaign worst first, and one campaign's expected against actual spend, its
channels, deals, alerts and reallocation proposals. Deciding on a proposal goes through a confirmation that
states the amounts; "refresh now" reads delivery on a worker while the page polls until it is done."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from buyer.accounts.roles import media_buyer_required
from buyer.htmx import HtmxHttpRequest
from buyer.sellers.money import micros_to_decimal
from campaigns.charts import money
from campaigns.models import BookedDeal, BookingJob
from pacing import charts, presenters, reallocation, selectors, services
from pacing.models import PacingSnapshot, ProposalStatus, ReallocationProposal, Scope

PAGE_SIZE = 50
DECISIONS = ("approve", "reject")


def _root_or_404(job_id: uuid.UUID) -> BookingJob:
    root = selectors.campaign_root_get(job_id)
    if root is None:
        raise Http404("No such campaign")
    return root


@media_buyer_required
def overview(request: HttpRequest) -> HttpResponse:
    finished = request.GET.get("finished") == "1"
    search = (request.GET.get("q") or "").strip()[:100]
    page = Paginator(selectors.pacing_overview(include_finished=finished, search=search), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    waiting = selectors.deals_not_paced_yet()
    context = {
        "page": page,
        "finished": finished,
        "search": search,
        "proposals": list(selectors.proposal_list(status=ProposalStatus.PENDING)[:20]),
        "unpaced": list(waiting[:20]),
        "unpaced_count": waiting.count(),
        "alerts": selectors.open_alert_counts(),
        "delivery_every": _every(settings.PACING_DELIVERY_INTERVAL_SECONDS),
        "snapshot_every": _every(settings.PACING_SNAPSHOT_INTERVAL_SECONDS),
    }
    return render(request, "pacing/overview.html", context)


def _every(seconds: int) -> str:
    """``15 minutes``, ``hour``, ``2 hours``, ``90 seconds``: how often, for a sentence."""
    if seconds % 3600 == 0:
        return "hour" if seconds == 3600 else f"{seconds // 3600} hours"
    if seconds % 60 == 0:
        return "minute" if seconds == 60 else f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def _series(root: BookingJob, channel: str) -> list[PacingSnapshot]:
    scope, key = (Scope.CHANNEL, channel) if channel else (Scope.CAMPAIGN, "")
    return selectors.campaign_series(root.pk, scope=scope, key=key)


@media_buyer_required
def campaign(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    root = _root_or_404(job_id)
    if root.pk != job_id:
        return redirect("pacing:campaign", job_id=root.pk)
    latest = selectors.campaign_latest_rows(root)
    channels = [row.channel for row in latest[Scope.CHANNEL]]
    channel = request.GET.get("channel", "")
    if channel and channel not in channels:
        messages.warning(request, f"This campaign has no paced channel {channel[:40]!r}; showing the whole campaign.")
        channel = ""
    series = _series(root, channel)
    points = [charts.Point(row.as_of, row.expected, row.actual) for row in series]
    budgets = selectors.channel_budgets(root)
    label = f"{channel} channel" if channel else "campaign"
    proposals = list(selectors.proposal_list(job_id=root.pk)[:10])
    context = {
        "root": root,
        "campaign": root.campaign,
        "head": latest[Scope.CAMPAIGN][0] if latest[Scope.CAMPAIGN] else None,
        "channels": [
            (row, micros_to_decimal(budgets.get(row.channel, row.booked_micros))) for row in latest[Scope.CHANNEL]
        ],
        "deals": latest[Scope.DEAL],
        "channel": channel,
        "channel_names": channels,
        "series": series,
        "chart": charts.pacing_chart_svg(
            points, title=f"Expected and actual spend of the {label}", chart_id="pacing-chart"
        ),
        "open_alerts": list(selectors.alert_list(job_id=root.pk, state="open")),
        "alert_history": list(selectors.alert_list(job_id=root.pk, state="resolved")[:50]),
        "proposals": proposals,
        "decided": [p for p in proposals if p.status != ProposalStatus.PENDING],
        "refresh": selectors.refresh_in_progress(root),
        "top_ups": list(root.top_ups.select_related("campaign").order_by("created_at")),
        "delivery_errors": [row for row in latest[Scope.DEAL] if row.deal and _delivery_error(row.deal)],
    }
    return render(request, "pacing/campaign.html", context)


def _delivery_error(deal: BookedDeal) -> str:
    state = getattr(deal, "delivery", None)
    return state.error if state else ""


@media_buyer_required
@require_POST
def campaign_refresh(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    root = _root_or_404(job_id)
    # The page itself says a refresh is running (and reloads when it is done): no second message.
    services.campaign_refresh_request(job_id=str(root.pk), actor=request.user.get_username())
    return redirect("pacing:campaign", job_id=root.pk)


@media_buyer_required
def campaign_refresh_status(request: HtmxHttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """The polled "refreshing" notice: once the run is over, stop polling and reload the page."""
    root = _root_or_404(job_id)
    if not request.htmx:
        return redirect("pacing:campaign", job_id=root.pk)
    refresh = selectors.refresh_in_progress(root)
    response = render(request, "pacing/campaign.html#refresh", {"root": root, "refresh": refresh})
    if refresh is None:
        response.status_code = HttpResponseStopPolling.status_code
        response.reason_phrase = "Stop Polling"
        response["HX-Refresh"] = "true"
    return response


@media_buyer_required
def delivery_csv(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    root = _root_or_404(job_id)
    response = HttpResponse(presenters.delivery_csv(root), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="delivery-{root.pk}.csv"'
    return response


def _proposal_or_404(proposal_id: int) -> ReallocationProposal:
    proposal = selectors.proposal_get(proposal_id)
    if proposal is None:
        raise Http404("No such proposal")
    return proposal


@media_buyer_required
def proposal_confirm(request: HttpRequest, proposal_id: int) -> HttpResponse:
    """What approving (or rejecting) will do, with the amounts. Nothing changes here."""
    proposal = _proposal_or_404(proposal_id)
    action = request.GET.get("action", "")
    if action not in DECISIONS:
        messages.error(request, "Choose Approve or Reject.")
        return redirect("pacing:campaign", job_id=proposal.job_id)
    if proposal.status != ProposalStatus.PENDING:
        messages.error(request, f"This proposal is already {proposal.get_status_display().lower()}.")
        return redirect("pacing:campaign", job_id=proposal.job_id)
    before = selectors.channel_budgets(proposal.job)
    after = dict(before)
    for move in proposal.moves.all():
        after[move.from_channel] = after.get(move.from_channel, 0) - move.amount_micros
        after[move.to_channel] = after.get(move.to_channel, 0) + move.amount_micros
    rows = [
        {
            "channel": name,
            "before": micros_to_decimal(before.get(name, 0)),
            "after": micros_to_decimal(after.get(name, 0)),
        }
        for name in sorted(set(before) | set(after))
    ]
    context = {
        "proposal": proposal,
        "action": action,
        "budgets": rows,
        "total_before": micros_to_decimal(sum(before.values())),
        "total_after": micros_to_decimal(sum(after.values())),
    }
    return render(request, "pacing/proposal_confirm.html", context)


@media_buyer_required
@require_POST
def proposal_decide(request: HttpRequest, proposal_id: int) -> HttpResponse:
    proposal = _proposal_or_404(proposal_id)
    action, actor = request.POST.get("action", ""), request.user.get_username()
    try:
        if action == "approve":
            reallocation.proposal_approve(proposal_id=proposal.pk, actor=actor)
            messages.success(
                request,
                f"Moved {money(proposal.amount)}; a top-up booking was started for each receiving channel: "
                "review its lines when the sellers have quoted them.",
            )
        elif action == "reject":
            note = (request.POST.get("note") or "").strip()[:500]
            reallocation.proposal_reject(proposal_id=proposal.pk, actor=actor, note=note)
            messages.success(request, "Proposal rejected; the channel budgets are unchanged.")
        else:
            messages.error(request, "Nothing was decided: choose Approve or Reject.")
    except reallocation.ProposalStateError as exc:
        messages.error(request, f"Nothing was changed. {str(exc).rstrip('.')}.")
    return redirect("pacing:campaign", job_id=proposal.job_id)
