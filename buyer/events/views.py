"""The events feed page, and the readable names of events that job timelines share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from buyer.accounts.roles import media_buyer_required
from buyer.events import selectors
from buyer.events.models import Event, EventType
from buyer.htmx import HtmxHttpRequest
from buyer.words import count as counted
from campaigns.models import channel_label
from campaigns.selectors import job_names_known

EVENTS_PER_PAGE = 50

EVENT_LABELS: dict[str, str] = {
    EventType.CAMPAIGN_CREATED: "Brief received",
    EventType.BUDGET_ALLOCATED: "Budget allocated",
    EventType.RESEARCH_STARTED: "Sellers searched",
    EventType.RESEARCH_COMPLETED: "Research finished",
    EventType.SELLER_FAILED: "Seller unavailable",
    EventType.PRODUCT_SKIPPED: "Product skipped",
    EventType.QUOTE_REQUESTED: "Quote requested",
    EventType.QUOTE_RECEIVED: "Quote received",
    EventType.QUOTE_FAILED: "Quote failed",
    EventType.RECOMMENDATIONS_READY: "Recommendations ready",
    EventType.PLAN_REVIEW_REQUESTED: "Awaiting plan review",
    EventType.PLAN_REVIEWED: "Plan reviewed",
    EventType.APPROVAL_REQUESTED: "Awaiting approval",
    EventType.APPROVAL_GRANTED: "Approved",
    EventType.APPROVAL_REJECTED: "Rejected",
    EventType.APPROVAL_EXPIRED: "Approval expired",
    EventType.NEGOTIATION_STARTED: "Negotiation started",
    EventType.NEGOTIATION_ROUND: "Negotiation round",
    EventType.NEGOTIATION_CONCLUDED: "Negotiation concluded",
    EventType.NEGOTIATION_COMPLETED: "Negotiation completed",
    EventType.BOOKING_STARTED: "Booking started",
    EventType.DEAL_BOOKED: "Deal booked",
    EventType.DEAL_PRICE_MISMATCH: "Deal held: booked other terms than approved",
    EventType.BOOKING_FAILED: "Booking failed",
    EventType.BOOKING_PENDING: "Order under review at the seller",
    EventType.JOB_COMPLETED: "Job completed",
    EventType.JOB_FAILED: "Job failed",
    EventType.JOB_CANCELLED: "Job cancelled",
    EventType.JOB_RESUMED: "Job resumed",
    EventType.DEAL_STATUS_CHANGED: "Deal status changed",
    EventType.DEAL_BUDGET_CHANGED: "Deal budget cut at the seller",
    EventType.DEAL_BUDGET_CHANGE_FAILED: "Deal budget cut failed",
    EventType.PACING_DELIVERY_FAILED: "Delivery unreadable",
    EventType.PACING_SNAPSHOT_TAKEN: "Pacing snapshot",
    EventType.PACING_DEVIATION_DETECTED: "Pacing deviation",
    EventType.PACING_ALERT_RESOLVED: "Pacing alert resolved",
    EventType.PACING_REALLOCATION_RECOMMENDED: "Reallocation proposed",
    EventType.PACING_REALLOCATION_APPLIED: "Reallocation applied",
    EventType.PACING_REALLOCATION_REJECTED: "Reallocation rejected",
    EventType.PACING_REALLOCATION_EXPIRED: "Reallocation lapsed",
}


def event_label(event_type: str) -> str:
    return EVENT_LABELS.get(event_type, event_type)


def _usd(value: Any) -> str:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ""
    return f"${amount:,.2f}"


def _product(payload: dict[str, Any]) -> str:
    """A product by its name where the event carries it (older events carry only the seller's id)."""
    return str(payload.get("product") or payload.get("product_id") or "")


def event_summary(event: Event) -> str:
    """One short line of the payload's gist. Plain text: seller-provided parts are escaped by the template."""
    payload: dict[str, Any] = event.payload if isinstance(event.payload, dict) else {}

    def count(key: str) -> int:
        value = payload.get(key)
        return len(value) if isinstance(value, list | dict) else 0

    match event.event_type:
        case EventType.CAMPAIGN_CREATED:
            return str(payload.get("name", ""))
        case EventType.BUDGET_ALLOCATED:
            return counted(count("allocations"), "channel")
        case EventType.RESEARCH_STARTED:
            return counted(count("sellers"), "seller")
        case EventType.RESEARCH_COMPLETED:
            return f"{counted(payload.get('quoted', 0), 'quote')}, {payload.get('selected', 0)} selected"
        case EventType.SELLER_FAILED | EventType.QUOTE_FAILED:
            about = f" · {_product(payload)}" if payload.get("product") or payload.get("product_id") else ""
            return f"{payload.get('seller', '')}{about}: {payload.get('error', '')}"
        case EventType.QUOTE_RECEIVED:
            return f"{payload.get('seller', '')} · {_product(payload)} at {_usd(payload.get('final_cpm'))} CPM"
        case EventType.RECOMMENDATIONS_READY:
            return (
                f"{counted(payload.get('count', 0), 'line')}, {_usd(payload.get('total_cost'))} of "
                f"{_usd(payload.get('budget'))}"
            )
        case EventType.APPROVAL_GRANTED:
            text = f"{counted(count('product_ids'), 'line')}, {_usd(payload.get('total_cost'))}"
            if payload.get("actor"):
                return f"{text} by {payload['actor']}"
            return f"{text}, automatically" if payload.get("auto_approve") else text
        case EventType.APPROVAL_REJECTED:
            return counted(count("product_ids"), "line") + (f" by {payload['actor']}" if payload.get("actor") else "")
        case EventType.BOOKING_STARTED:
            text = counted(payload.get("lines", 0), "line")
            return f"{text}, reading back what the seller booked" if payload.get("recovery") else text
        case EventType.DEAL_BOOKED:
            return f"{event.deal_id} · {payload.get('seller', '')} · {_usd(payload.get('cost'))}"
        case EventType.NEGOTIATION_STARTED:
            return (
                f"{payload.get('seller', '')} · {_product(payload)}: quoted {_usd(payload.get('quoted'))}, "
                f"target {_usd(payload.get('target'))}, {payload.get('strategy', '')}"
            )
        case EventType.NEGOTIATION_ROUND:
            return (
                f"{payload.get('seller', '')} · {payload.get('product') or payload.get('product_id', '')} · round "
                f"{payload.get('round', '?')}: we {payload.get('action', '')} "
                f"{_usd(payload.get('buyer_price')) if payload.get('buyer_price') else ''}, the seller asks "
                f"{_usd(payload.get('seller_price'))} ({payload.get('status', '')})"
            ).replace("  ", " ")
        case EventType.NEGOTIATION_CONCLUDED:
            product = payload.get("product") or payload.get("product_id", "")
            return (
                f"{payload.get('seller', '')} · {product} · {payload.get('outcome', '')}: {payload.get('reason', '')}"
            )
        case EventType.DEAL_PRICE_MISMATCH:
            return f"{event.deal_id} · {payload.get('seller', '')}: {payload.get('reason', '')}"
        case EventType.BOOKING_FAILED:
            return f"{payload.get('seller', '')} · {_product(payload)}: {payload.get('reason', '')}"
        case EventType.BOOKING_PENDING:
            said = f": {payload['message']}" if payload.get("message") else ""
            status = str(payload.get("status", "")).replace("_", " ")
            return f"{payload.get('seller', '')} · {_product(payload)}: {status}{said}"
        case EventType.JOB_COMPLETED:
            return f"{counted(payload.get('booked', 0), 'deal')}, {_usd(payload.get('total_cost'))}"
        case EventType.JOB_FAILED | EventType.JOB_CANCELLED:
            return str(payload.get("reason", ""))
        case EventType.DEAL_STATUS_CHANGED:
            text = f"{event.deal_id}: {payload.get('from', '?')} → {payload.get('to', '?')}"
            return f"{text} ({payload['reason']})" if payload.get("reason") else text
        case EventType.DEAL_BUDGET_CHANGED:
            return (
                f"{event.deal_id} · {payload.get('seller', '')}: {_usd(payload.get('from'))} → "
                f"{_usd(payload.get('to'))} (reallocation {payload.get('proposal_id', '?')})"
            )
        case EventType.DEAL_BUDGET_CHANGE_FAILED:
            return f"{event.deal_id} · {payload.get('seller', '')}: {payload.get('reason', '')}"
        case EventType.PACING_DELIVERY_FAILED:
            return f"{payload.get('seller', '')}: {counted(count('deals'), 'deal')}, {payload.get('error', '')}"
        case EventType.PACING_SNAPSHOT_TAKEN:
            campaigns, alerts = payload.get("campaigns", 0), payload.get("alerts_opened", 0)
            return f"{counted(campaigns, 'campaign')}, {counted(alerts, 'alert')} opened"
        case EventType.PACING_DEVIATION_DETECTED | EventType.PACING_ALERT_RESOLVED:
            return _pacing_alert_summary(payload)
        case EventType.PACING_REALLOCATION_RECOMMENDED | EventType.PACING_REALLOCATION_APPLIED:
            moves = payload.get("moves")
            if not isinstance(moves, list):
                moves = []
            legs = ", ".join(
                f"{_usd(m.get('amount'))} {channel_label(m.get('from_channel', '?'))} → "
                f"{channel_label(m.get('to_channel', '?'))}"
                for m in moves
                if isinstance(m, dict)
            )
            who = f" by {payload['actor']}" if payload.get("actor") else ""
            return f"{legs}{who}"
        case EventType.PACING_REALLOCATION_REJECTED:
            return f"{_usd(payload.get('amount'))}" + (f" by {payload['actor']}" if payload.get("actor") else "")
        case EventType.PACING_REALLOCATION_EXPIRED:
            return str(payload.get("reason", ""))
    return ""


def _pacing_alert_summary(payload: dict[str, Any]) -> str:
    """``deal DEAL-1 · critical, under 32.5 %`` or ``channel ctv · resolved (now on_track)``."""
    scope = payload.get("scope", "")
    where = {"deal": payload.get("deal_id"), "channel": channel_label(payload.get("channel"))}.get(scope) or ""
    subject = f"{scope} {where}".strip()
    if payload.get("change") == "resolved":
        return f"{subject} · resolved (now {str(payload.get('now', '?')).replace('_', ' ')})"
    deviation = payload.get("deviation_pct")
    try:
        amount = f" {abs(float(deviation)):.1f} %" if deviation is not None else ""
    except (TypeError, ValueError):
        amount = ""
    level, direction = payload.get("alert_level", ""), payload.get("direction", "")
    return f"{subject} · {level}, {direction}{amount} ({payload.get('change', '')})"


@dataclass(frozen=True)
class FeedEntry:
    event: Event
    label: str
    summary: str
    payload_json: str
    is_job: bool
    flow_name: str = ""


def timeline_entries(events: list[Event]) -> list[FeedEntry]:
    return [_entry(event, is_job=True) for event in events]


def _entry(event: Event, *, is_job: bool, flow_name: str = "") -> FeedEntry:
    return FeedEntry(
        event=event,
        label=event_label(event.event_type),
        summary=event_summary(event),
        payload_json=json.dumps(event.payload, indent=2, sort_keys=True, ensure_ascii=False),
        is_job=is_job,
        flow_name=flow_name,
    )


class EventFilterForm(forms.Form):
    event_type = forms.ChoiceField(
        label="Event type",
        required=False,
        choices=[("", "Any"), *((t.value, f"{event_label(t.value)} ({t.value})") for t in EventType)],
    )
    flow_id = forms.CharField(label="Flow or job id", required=False, max_length=64)


@media_buyer_required
def feed(request: HtmxHttpRequest) -> HttpResponse:
    filters = EventFilterForm(request.GET)
    values = filters.cleaned_data if filters.is_valid() else {}
    events = selectors.event_list(event_type=values.get("event_type"), flow_id=(values.get("flow_id") or "").strip())
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    jobs = job_names_known({e.flow_id for e in rows if e.flow_id})
    entries = [_entry(e, is_job=e.flow_id in jobs, flow_name=jobs.get(e.flow_id, "")) for e in rows]
    partial = request.htmx and not request.htmx.history_restore_request
    template = "events/feed.html#results" if partial else "events/feed.html"
    return render(request, template, {"filters": filters, "page": page, "entries": entries})
