"""REST routes for the deals sellers issued: list, one deal, its history, price reconciliation, a refresh from
the seller, and a person's decision on a held deal. Reads need ``read``; refresh and decide need ``write``."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any, Literal

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema
from pydantic import ConfigDict

from buyer.apikeys.auth import write_auth
from campaigns import deal_refresh, selectors, services
from campaigns.models import BookedDeal, Channel, DealStatus
from campaigns.reconciliation import reconcile

router = Router(tags=["deals"])


class DealFilters(Schema):
    status: DealStatus | None = None
    needs: Literal["decision", "cancellation"] | None = Field(
        default=None,
        description="decision: deals held for a person to accept or refuse; cancellation: refused deals the "
        "seller has not yet reported cancelled (their money stays held)",
    )
    channel: Channel | None = None
    campaign_id: str | None = Field(default=None, max_length=64, description="Any job id of the campaign")
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10_000_000)


class ReconciliationOut(Schema):
    quoted_cpm: float
    negotiated_cpm: float | None
    booked_cpm: float
    delivered_cpm: float | None
    flags: list[str]


class DealOut(Schema):
    id: int = Field(description="This buyer's id of the deal (the path of /deals/{id})")
    deal_id: str = Field(description="The seller's Deal ID")
    job_id: str
    campaign_name: str
    seller_name: str
    product_id: str
    product_name: str
    channel: str
    deal_type: str
    impressions: int
    cpm: float
    cost: float
    status: str
    seller_status: str
    held_because: str
    refused_by: str = Field(description="Who refused the held deal; empty unless refused")
    awaiting_cancellation: bool = Field(
        description="Refused, and not yet reported cancelled by the seller: have the seller cancel it"
    )
    flight_start: date
    flight_end: date
    booked_at: datetime
    delivered_impressions: int | None
    spent: float | None
    reconciliation: ReconciliationOut


class DealDetailOut(DealOut):
    quote_id: str
    buyer_tier: str
    activation_instructions: dict[str, Any]
    openrtb_params: dict[str, Any]
    expires_at: datetime | None


class DealListOut(Schema):
    deals: list[DealOut]
    total: int


class TransitionOut(Schema):
    from_status: str
    to_status: str
    reason: str
    actor: str
    at: datetime


class DealHistoryOut(Schema):
    id: int
    deal_id: str
    status: str
    transitions: list[TransitionOut]


class DecideIn(Schema):
    model_config = ConfigDict(extra="forbid")  # a money decision: nothing unexpected is ignored

    decision: Literal["accept", "refuse", "cancelled"] = Field(
        description="accept or refuse a held deal; cancelled: a refused deal was cancelled at the seller (its "
        "money is released)"
    )
    note: str = Field(default="", max_length=300)


class ReconciliationFilters(Schema):
    campaign_id: str | None = Field(default=None, max_length=64)
    flagged: bool = False
    format: Literal["json", "csv"] = "json"
    limit: int = Field(default=1000, ge=1, le=10_000, description="Deals read, newest first")
    offset: int = Field(default=0, ge=0, le=10_000_000)


class ReconciliationRowOut(ReconciliationOut):
    id: int
    deal_id: str
    job_id: str
    seller_name: str
    product_name: str
    impressions: int
    status: str
    cost: float


class ReconciliationReportOut(Schema):
    deals: list[ReconciliationRowOut]
    flagged: int


def _money(micros: int | None) -> float | None:
    return None if micros is None else micros / 1_000_000


def _price(deal: BookedDeal) -> dict[str, Any]:
    r = reconcile(deal)
    return {
        "quoted_cpm": float(r.quoted_cpm),
        "negotiated_cpm": float(r.negotiated_cpm) if r.negotiated_cpm is not None else None,
        "booked_cpm": float(r.booked_cpm),
        "delivered_cpm": float(r.delivered_cpm) if r.delivered_cpm is not None else None,
        "flags": r.flags,
    }


def _row(deal: BookedDeal) -> dict[str, Any]:
    delivery = getattr(deal, "delivery", None)
    return {
        "id": deal.pk,
        "deal_id": deal.deal_id,
        "job_id": str(deal.job_id),
        "campaign_name": deal.job.campaign.name,
        "seller_name": deal.recommendation.seller_name,
        "product_id": deal.product_id,
        "product_name": deal.product_name,
        "channel": deal.channel,
        "deal_type": deal.deal_type,
        "impressions": deal.impressions,
        "cpm": float(deal.cpm),
        "cost": float(deal.cost),
        "status": "held" if deal.held else deal.status,
        "seller_status": deal.seller_status,
        "held_because": deal.flag if deal.status == DealStatus.BOOKING else "",
        "refused_by": deal.refused_by,
        "awaiting_cancellation": deal.awaiting_cancellation,
        "flight_start": deal.flight_start,
        "flight_end": deal.flight_end,
        "booked_at": deal.booked_at,
        "delivered_impressions": delivery.impressions if delivery is not None and delivery.as_of else None,
        "spent": _money(delivery.spend_micros) if delivery is not None and delivery.as_of else None,
        "reconciliation": _price(deal),
    }


def _deals(campaign_id: str | None) -> QuerySet[BookedDeal]:
    deals = BookedDeal.objects.select_related("recommendation", "job__campaign", "delivery")
    if campaign_id is not None:
        root = selectors.campaign_root_of(campaign_id)
        if root is None:
            raise services.JobNotFound(campaign_id)
        deals = deals.filter(job__in=[root.pk, *root.top_ups.values_list("pk", flat=True)])
    return deals.order_by("-booked_at", "-pk")


def _deal(deal_pk: int) -> BookedDeal:
    deal = selectors.deal_get(deal_pk)
    if deal is None:
        raise services.DealNotFound(deal_pk)
    return deal


@router.get("/deals", response=DealListOut, summary="Deals the sellers issued, newest first")
def list_deals(request: HttpRequest, filters: Query[DealFilters]):
    deals = _deals(filters.campaign_id)
    if filters.status:
        deals = deals.filter(status=filters.status)
    if filters.needs:
        deals = deals.filter(**selectors.DEALS_NEEDING[filters.needs])
    if filters.channel:
        deals = deals.filter(channel=filters.channel)
    page = deals[filters.offset : filters.offset + filters.limit]
    return {"deals": [_row(d) for d in page], "total": deals.count()}


@router.get(
    "/deals/reconciliation",
    response=ReconciliationReportOut,
    summary="Quoted, negotiated, booked and delivered CPM per deal, with what diverges",
    openapi_extra={"responses": {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}},
)
def reconciliation_report(request: HttpRequest, filters: Query[ReconciliationFilters]):
    """``?flagged=true`` keeps the deals whose prices diverge; ``?format=csv`` answers a CSV download."""
    rows = []
    window = _deals(filters.campaign_id)[filters.offset : filters.offset + filters.limit]
    for deal in window.iterator(chunk_size=500):
        price = _price(deal)
        if filters.flagged and not price["flags"]:
            continue
        rows.append(
            {
                "id": deal.pk,
                "deal_id": deal.deal_id,
                "job_id": str(deal.job_id),
                "seller_name": deal.recommendation.seller_name,
                "product_name": deal.product_name,
                "impressions": deal.impressions,
                "status": "held" if deal.held else deal.status,
                "cost": float(deal.cost),
                **price,
            }
        )
    if filters.format == "csv":
        out = io.StringIO()
        columns = ["id", "deal_id", "job_id", "seller_name", "product_name", "status", "impressions", "cost"]
        columns += ["quoted_cpm"]
        columns += ["negotiated_cpm", "booked_cpm", "delivered_cpm", "flags"]
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "flags": "; ".join(row["flags"])})
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="price-reconciliation.csv"'
        return response
    return {"deals": rows, "flagged": sum(1 for row in rows if row["flags"])}


@router.get("/deals/{deal_pk}", response=DealDetailOut, summary="One deal, with its price reconciliation")
def get_deal(request: HttpRequest, deal_pk: int):
    deal = _deal(deal_pk)
    return {
        **_row(deal),
        "quote_id": deal.quote_id,
        "buyer_tier": deal.buyer_tier,
        "activation_instructions": deal.activation_instructions,
        "openrtb_params": deal.openrtb_params,
        "expires_at": deal.expires_at,
    }


@router.get("/deals/{deal_pk}/history", response=DealHistoryOut, summary="Every state change of a deal, and why")
def deal_history(request: HttpRequest, deal_pk: int):
    deal = _deal(deal_pk)
    transitions = [
        {"from_status": t.from_status, "to_status": t.to_status, "reason": t.reason, "actor": t.actor, "at": t.at}
        for t in deal.transitions.all()
    ]
    return {"id": deal.pk, "deal_id": deal.deal_id, "status": deal.status, "transitions": transitions}


@router.post(
    "/deals/{deal_pk}/refresh",
    auth=write_auth,
    response=DealDetailOut,
    summary="Read the deal from its seller now and follow its status",
    openapi_extra={"responses": {"502": {"description": "The seller could not be asked; nothing changed"}}},
)
def refresh_deal(request: HttpRequest, deal_pk: int):
    """A seller that is down answers 502 with its error; nothing changes then."""
    deal_refresh.deal_refresh(_deal(deal_pk), actor=_actor(request))
    return get_deal(request, deal_pk)


@router.post(
    "/deals/{deal_pk}/decide",
    auth=write_auth,
    response=DealDetailOut,
    summary="Accept or refuse a held deal, or confirm a refused one cancelled at the seller",
)
def decide_deal(request: HttpRequest, deal_pk: int, payload: DecideIn):
    services.deal_decide(deal_pk, payload.decision, actor=_actor(request), note=payload.note)
    return get_deal(request, deal_pk)


def _actor(request: HttpRequest) -> str:
    return getattr(getattr(request, "auth", None), "name", "") or "api"
