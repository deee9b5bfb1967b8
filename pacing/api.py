"""``/pacing/…``: campaign pacing with its snapshot series, alerts, reallocation proposals and the delivery
report (JSON or CSV). Reads need the ``read`` scope; refreshing and deciding on proposals need ``write``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Status
from ninja.errors import HttpError

from buyer.apikeys.auth import write_auth
from campaigns.models import BookingJob
from pacing import presenters, reallocation, selectors, services
from pacing.models import ReallocationProposal
from pacing.schemas import (
    AlertFilters,
    AlertList,
    CampaignPacingList,
    CampaignPacingOut,
    DecisionIn,
    DeliveryFilters,
    DeliveryReport,
    OverviewFilters,
    ProposalFilters,
    ProposalList,
    ProposalOut,
    RunOut,
    SeriesFilters,
)

router = Router(tags=["pacing"])

CAMPAIGN_NOT_FOUND = "Campaign not found"


def _root(campaign_id: str) -> BookingJob:
    root = selectors.campaign_root_get(campaign_id)
    if root is None:
        raise HttpError(404, CAMPAIGN_NOT_FOUND)
    return root


def _actor(request: HttpRequest) -> str:
    return getattr(getattr(request, "auth", None), "name", "") or "api"


@router.get("/pacing/campaigns", response=CampaignPacingList, summary="Campaigns by pacing, worst first")
def list_campaign_pacing(request: HttpRequest, filters: Query[OverviewFilters]):
    rows = selectors.pacing_overview(include_finished=filters.include_finished)
    page = rows[filters.offset : filters.offset + filters.limit]
    return {"campaigns": [presenters.overview_row(row) for row in page], "total": rows.count()}


@router.get(
    "/pacing/campaigns/{campaign_id}",
    response=CampaignPacingOut,
    summary="A campaign's pacing: latest figures, channels, deals, the snapshot series, alerts, proposals",
)
def get_campaign_pacing(request: HttpRequest, campaign_id: str, filters: Query[SeriesFilters]):
    """Any job id of the campaign answers (a top-up job's answers its campaign). ``pacing`` is null until the
    first snapshot; ``series`` is the campaign's (or with ``?channel=`` that channel's) expected against actual
    spend over time, oldest first; a channel the campaign does not have is refused (422)."""
    root = _root(campaign_id)
    if filters.channel:
        known = selectors.campaign_channel_names(root)
        if filters.channel not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise HttpError(422, f"This campaign has no channel {filters.channel!r} (its channels: {listed})")
    return presenters.campaign(root, channel=filters.channel)


@router.post(
    "/pacing/campaigns/{campaign_id}/refresh",
    auth=write_auth,
    response={202: RunOut},
    summary="Read delivery and take a snapshot of one campaign now",
)
def refresh_campaign_pacing(request: HttpRequest, campaign_id: str):
    """A worker reads the campaign's delivery from its sellers and snapshots it; poll ``GET /pacing/runs/{run_id}``.
    A refresh already waiting is answered instead of starting another."""
    root = _root(campaign_id)
    run = services.campaign_refresh_request(job_id=str(root.pk), actor=_actor(request))
    return Status(202, presenters.run(run))


@router.get("/pacing/runs/{run_id}", response=RunOut, summary="One pacing run (scheduled or a refresh)")
def get_pacing_run(request: HttpRequest, run_id: int):
    run = selectors.run_get(run_id)
    if run is None:
        raise HttpError(404, "Run not found")
    return presenters.run(run)


@router.get("/pacing/alerts", response=AlertList, summary="Pacing alerts, newest first")
def list_pacing_alerts(request: HttpRequest, filters: Query[AlertFilters]):
    """Filter by ``level`` (warning, critical), ``direction`` (under, over), ``status`` (open, resolved),
    ``scope`` (campaign, channel, deal) and ``campaign_id``."""
    if filters.campaign_id is not None:
        _root(filters.campaign_id)
    alerts = selectors.alert_list(
        level=filters.level,
        direction=filters.direction,
        state=filters.status,
        scope=filters.scope,
        job_id=filters.campaign_id,
    )
    page = alerts[filters.offset : filters.offset + filters.limit]
    return {"alerts": [presenters.alert(a) for a in page], "total": alerts.count()}


@router.get("/pacing/proposals", response=ProposalList, summary="Reallocation proposals, newest first")
def list_proposals(request: HttpRequest, filters: Query[ProposalFilters]):
    if filters.campaign_id is not None:
        _root(filters.campaign_id)
    proposals = selectors.proposal_list(status=filters.status, job_id=filters.campaign_id)
    page = proposals[filters.offset : filters.offset + filters.limit]
    return {"proposals": [presenters.proposal(p) for p in page], "total": proposals.count()}


def _proposal_or_404(proposal_id: int) -> ReallocationProposal:
    proposal = selectors.proposal_get(proposal_id)
    if proposal is None:
        raise HttpError(404, "Proposal not found")
    return proposal


@router.get("/pacing/proposals/{proposal_id}", response=ProposalOut, summary="One reallocation proposal")
def get_proposal(request: HttpRequest, proposal_id: int):
    return presenters.proposal(_proposal_or_404(proposal_id))


def _decide(proposal_id: int, action: Callable[[], object]) -> dict[str, Any]:
    _proposal_or_404(proposal_id)
    try:
        action()
    except reallocation.ProposalStateError as exc:
        raise HttpError(409, str(exc)) from exc
    return presenters.proposal(_proposal_or_404(proposal_id))


@router.post(
    "/pacing/proposals/{proposal_id}/approve",
    auth=write_auth,
    response=ProposalOut,
    summary="Approve a reallocation: new channel budgets, and a top-up booking per receiving channel",
)
def approve_proposal(request: HttpRequest, proposal_id: int, payload: DecisionIn | None = None):
    """Nothing is booked here: each receiving channel gets a top-up booking job (``moves[].top_up_job_id``) for
    exactly the moved amount, whose lines wait for approval like any booking. 409 if already decided."""
    actor = _actor(request)
    return _decide(proposal_id, lambda: reallocation.proposal_approve(proposal_id=proposal_id, actor=actor))


@router.post(
    "/pacing/proposals/{proposal_id}/reject",
    auth=write_auth,
    response=ProposalOut,
    summary="Reject a reallocation; nothing changes",
)
def reject_proposal(request: HttpRequest, proposal_id: int, payload: DecisionIn | None = None):
    actor, note = _actor(request), payload.note if payload else ""
    return _decide(proposal_id, lambda: reallocation.proposal_reject(proposal_id=proposal_id, actor=actor, note=note))


@router.get(
    "/pacing/campaigns/{campaign_id}/delivery",
    response={200: DeliveryReport},
    summary="Delivery report: per deal, booked against delivered impressions, spend and delivered CPM",
    openapi_extra={"responses": {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}},
)
def campaign_delivery_report(request: HttpRequest, campaign_id: str, filters: Query[DeliveryFilters]):
    """``?format=csv`` answers the same rows as a CSV download."""
    root = _root(campaign_id)
    if filters.format == "csv":
        response = HttpResponse(presenters.delivery_csv(root), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="delivery-{root.pk}.csv"'
        return response
    return presenters.delivery_report(root)
