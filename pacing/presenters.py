"""Pacing rows as the REST API (and the CSV report) show them: money as dollar floats, ids as strings."""

from __future__ import annotations

import csv
import io
from typing import Any

from buyer.csvsafe import cell
from buyer.sellers.money import micros_to_decimal
from campaigns.models import BookingJob
from pacing import selectors
from pacing.models import PacingAlert, PacingSnapshot, ReallocationProposal, SnapshotRun


def _money(micros: int) -> float:
    return float(micros_to_decimal(micros))


def _pct(value: Any) -> float | None:
    return None if value is None else float(value)


def figures(row: PacingSnapshot) -> dict[str, Any]:
    status = "no_data" if row.status == "not_started" else row.status
    return {
        "status": status,
        "alert_level": row.alert_level or None,
        "in_grace": row.in_grace,
        "pacing_pct": _pct(row.pacing_pct),
        "deviation_pct": _pct(row.deviation_pct),
        "booked": _money(row.booked_micros),
        "expected": _money(row.expected_micros),
        "spent": _money(row.actual_micros),
        "projected": _money(row.projected_micros),
        "days_left": row.days_left,
        "as_of": row.as_of,
    }


def overview_row(row: PacingSnapshot) -> dict[str, Any]:
    campaign = row.job.campaign
    return figures(row) | {
        "campaign_id": str(row.job_id),
        "name": campaign.name,
        "budget": float(campaign.budget),
        "flight_start": row.flight_start,
        "flight_end": row.flight_end,
        "open_alerts": getattr(row, "open_alerts", 0),
        "critical_alerts": getattr(row, "critical_alerts", 0),
    }


def alert(item: PacingAlert) -> dict[str, Any]:
    return {
        "alert_id": item.pk,
        "campaign_id": str(item.job_id),
        "campaign_name": item.job.campaign.name,
        "scope": item.scope,
        "channel": item.channel or None,
        "deal_id": item.deal.deal_id if item.deal_id and item.deal else None,
        "direction": item.direction,
        "level": item.level,
        "peak_level": item.peak_level,
        "deviation_pct": _pct(item.deviation_pct),
        "expected": _money(item.expected_micros),
        "actual": _money(item.actual_micros),
        "opened_at": item.opened_at,
        "updated_at": item.updated_at,
        "resolved_at": item.resolved_at,
        "status": "open" if item.resolved_at is None else "resolved",
    }


def proposal(item: ReallocationProposal) -> dict[str, Any]:
    return {
        "proposal_id": item.pk,
        "campaign_id": str(item.job_id),
        "campaign_name": item.job.campaign.name,
        "status": item.status,
        "amount": _money(item.amount_micros),
        "moves": [
            {
                "from_channel": m.from_channel,
                "to_channel": m.to_channel,
                "amount": _money(m.amount_micros),
                "top_up_job_id": str(m.top_up_job_id) if m.top_up_job_id else None,
            }
            for m in item.moves.all()
        ],
        "budget_cuts": [
            {
                "deal_id": c.deal.deal_id,
                "seller": c.deal.seller.name if c.deal.seller else "",
                "channel": c.deal.channel,
                "from_budget": _money(c.from_budget_micros),
                "to_budget": _money(c.to_budget_micros),
                "status": c.status,
                "message": c.message,
                "decided_at": c.decided_at,
            }
            for c in item.budget_cuts.all()
        ],
        "rationale": item.rationale,
        "budgets_before": {k: _money(v) for k, v in (item.budgets_before or {}).items()},
        "created_at": item.created_at,
        "expires_at": item.expires_at,
        "decided_at": item.decided_at,
        "decided_by": item.decided_by,
        "decision_note": item.decision_note,
    }


def run(item: SnapshotRun) -> dict[str, Any]:
    return {
        "run_id": item.pk,
        "campaign_id": str(item.job_id) if item.job_id else None,
        "trigger": item.trigger,
        "status": item.status,
        "created_at": item.created_at,
        "finished_at": item.finished_at,
        "as_of": item.as_of,
        "campaigns": item.campaigns,
        "deals": item.deals,
        "alerts_opened": item.alerts_opened,
        "error": item.error,
    }


def campaign(root: BookingJob, *, channel: str | None = None) -> dict[str, Any]:
    """One campaign's pacing page as data: latest figures, channels, deals, the series, alerts, proposals."""
    latest = selectors.campaign_latest_rows(root)
    budgets = selectors.channel_budgets(root)
    head = latest["campaign"][0] if latest["campaign"] else None
    series_scope, key = ("channel", channel) if channel else ("campaign", "")
    refresh = selectors.refresh_in_progress(root)
    return {
        "campaign_id": str(root.pk),
        "name": root.campaign.name,
        "budget": float(root.campaign.budget),
        "flight_start": root.campaign.start_date,
        "flight_end": root.campaign.end_date,
        "pacing_curve": root.campaign.pacing_curve,
        "pacing": figures(head) if head else None,
        "channels": [
            figures(row) | {"channel": row.channel, "budget": _money(budgets.get(row.channel, row.booked_micros))}
            for row in latest["channel"]
        ],
        "deals": [deal_row(row) for row in latest["deal"]],
        "series": [
            {
                "as_of": row.as_of,
                "expected": _money(row.expected_micros),
                "spent": _money(row.actual_micros),
                "pacing_pct": _pct(row.pacing_pct),
                "status": "no_data" if row.status == "not_started" else row.status,
            }
            for row in selectors.campaign_series(root.pk, scope=series_scope, key=key)
        ],
        "open_alerts": [alert(a) for a in selectors.alert_list(job_id=root.pk, state="open")],
        "proposals": [proposal(p) for p in selectors.proposal_list(job_id=root.pk)[:20]],
        "refresh": run(refresh) if refresh else None,
    }


def deal_row(row: PacingSnapshot) -> dict[str, Any]:
    deal = row.deal
    state = getattr(deal, "delivery", None) if deal else None
    return figures(row) | {
        "deal_id": deal.deal_id if deal else "",
        "seller": (deal.seller.name if deal and deal.seller else deal.seller_url if deal else ""),
        "product_name": deal.product_name if deal else "",
        "channel": row.channel,
        "deal_status": deal.status if deal else "",
        "impressions_booked": row.impressions_booked,
        "impressions_delivered": row.impressions_delivered,
        "delivery_as_of": state.as_of if state else None,
        "delivery_error": state.error if state else "",
    }


def delivery_report(root: BookingJob) -> dict[str, Any]:
    lines = [line.as_dict() for line in selectors.campaign_delivery(root.pk)]
    return {
        "campaign_id": str(root.pk),
        "name": root.campaign.name,
        "deals": lines,
        "totals": {
            "impressions_booked": float(sum(line["impressions_booked"] for line in lines)),
            "impressions_delivered": float(sum(line["impressions_delivered"] for line in lines)),
            "booked_cost": round(sum(line["booked_cost"] for line in lines), 2),
            "spend": round(sum(line["spend"] for line in lines), 2),
        },
    }


CSV_COLUMNS = (
    "deal_id",
    "seller",
    "product_id",
    "product_name",
    "channel",
    "deal_type",
    "status",
    "flight_start",
    "flight_end",
    "impressions_booked",
    "impressions_delivered",
    "delivered_pct",
    "booked_cpm",
    "booked_cost",
    "spend",
    "delivered_cpm",
    "as_of",
    "seller_status",
    "delivery_error",
)


def delivery_csv(root: BookingJob) -> str:
    """The delivery report as CSV; seller text that a spreadsheet would run as a formula is quoted harmless."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for line in selectors.campaign_delivery(root.pk):
        data = line.as_dict()
        writer.writerow([cell(data[column]) for column in CSV_COLUMNS])
    return out.getvalue()
