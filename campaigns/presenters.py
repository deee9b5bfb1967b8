"""How a booking job reads from the outside: the shapes REST (``/bookings``) and the MCP tools share.

Reference-compatible (see shared/docs/REFERENCE_API.md): money as floats, ids as strings. Pure formatting of
rows the selectors loaded; no queries of its own beyond the prefetched relations.
"""

from __future__ import annotations

from typing import Any

from buyer.sellers.money import micros_to_decimal
from campaigns.models import BookingJob, Recommendation


def job_list(rows: list[tuple[Any, ...]], total: int) -> dict[str, Any]:
    """``GET /bookings`` and the MCP ``list_bookings``: ``{jobs: [...], total}`` from ``selectors.job_page``."""
    jobs = [
        {
            "job_id": str(job_id),
            "status": job_status,
            "campaign_name": name,
            "budget": float(micros_to_decimal(budget_micros)),
            "progress": round(progress, 3),
            "created_at": created_at,
        }
        for job_id, job_status, name, budget_micros, progress, created_at in rows
    ]
    return {"jobs": jobs, "total": total}


def job_detail(job: BookingJob) -> dict[str, Any]:
    """A job with its recommendations and booked lines: ``GET /bookings/{job_id}`` and the MCP ``get_booking``.

    Load the job with ``selectors.job_get`` so this runs in a fixed number of queries."""
    recommendations = list(job.recommendations.all())
    deals = list(job.deals.all())
    return {
        "job_id": str(job.pk),
        "status": job.status,
        "stage": job.stage,
        "progress": round(job.progress, 3),
        "campaign_id": str(job.campaign_id),
        "campaign_name": job.campaign.name,
        "budget": float(job.campaign.budget),
        "auto_approve": job.auto_approve,
        "parent_job_id": str(job.parent_id) if job.parent_id else None,
        "budget_allocations": job.budget_allocations,
        "recommendations": [
            {
                "recommendation_id": str(r.pk),
                "product_id": r.product_id,
                "product_name": r.product_name,
                "publisher": r.publisher,
                "publisher_domain": r.publisher_domain,
                "seller_id": str(r.seller_id or ""),
                "seller_name": r.seller_name,
                "channel": r.channel,
                "format": r.format,
                "deal_type": r.deal_type,
                "impressions": r.impressions,
                "cpm": float(r.cpm),
                "list_cpm": float(micros_to_decimal(r.base_cpm_micros)),
                "cost": float(r.cost),
                "buyer_tier": r.buyer_tier,
                "tier_discount_pct": float(r.pricing.get("tier_discount_pct") or 0),
                "volume_discount_pct": float(r.pricing.get("volume_discount_pct") or 0),
                "quote_id": r.quote_id,
                "quote_expires_at": r.quote_expires_at,
                "targeting": r.targeting,
                "priority": r.priority,
                "status": r.status,
                "status_reason": r.status_reason,
                "rationale": r.rationale,
                "quoted_cpm": float(micros_to_decimal(r.quoted_cpm_micros or r.cpm_micros)),
                "negotiation": _negotiation(r),
            }
            for r in recommendations
        ],
        "booked_lines": [
            {
                "deal_id": d.deal_id,
                "quote_id": d.quote_id,
                "product_id": d.product_id,
                "product_name": d.product_name,
                "channel": d.channel,
                "deal_type": d.deal_type,
                "impressions": d.impressions,
                "cpm": float(d.cpm),
                "cost": float(d.cost),
                "booking_status": "held" if d.held else d.status,
                "held_because": d.flag if d.held else "",
                "booked_at": d.booked_at,
                "seller_id": str(d.seller_id or ""),
                "seller_url": d.seller_url,
                "buyer_tier": d.buyer_tier,
                "flight_start": d.flight_start,
                "flight_end": d.flight_end,
                "activation_instructions": d.activation_instructions,
                "rationale": d.recommendation.rationale,
                "line_id": str(d.recommendation_id),
                "order_id": None,
            }
            for d in deals
            if d.counted or d.held  # a refused deal is not a booked line
        ],
        # What is booked: a held deal waits for a person, a refused one is not counted.
        "total_cost": float(micros_to_decimal(sum(d.cost_micros for d in deals if d.counted))),
        "errors": job.errors,
        "failure_reason": job.failure_reason or None,
        "approval_expires_at": job.approval_expires_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }


def _negotiation(r: Recommendation) -> dict[str, Any] | None:
    if not r.negotiation_status:
        return None
    terms = r.negotiation_terms or {}
    return {
        "status": r.negotiation_status,
        "outcome": r.negotiation_outcome,
        "strategy": terms.get("strategy", ""),
        "target_cpm": float(terms["target"]) if terms.get("target") else None,
        "walk_away_cpm": float(terms["walk_away"]) if terms.get("walk_away") else None,
        "negotiation_id": r.negotiation_id,
        "rounds": [
            {
                "round_number": n.round_number,
                "action": n.action,
                "buyer_price": float(n.buyer_price) if n.buyer_price is not None else None,
                "seller_action": n.seller_action,
                "seller_price": float(n.seller_price) if n.seller_price is not None else None,
                "status": n.status,
                "rounds_remaining": n.rounds_remaining,
                "rationale": n.rationale,
                "at": n.at,
            }
            for n in r.negotiation_rounds.all()
        ],
    }
