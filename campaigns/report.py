"""A campaign's summary in plain language, from its deals and its pacing: written by rules, or by the reporting
agent when the agents are on and a person asks for it. Every figure the agent writes must be one of the facts
it was given (code checks each number), so a summary can be wrong in tone, never in its numbers."""

from __future__ import annotations

import logging
import re
from datetime import date
from decimal import Decimal
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field

from buyer.llm.agent import AnswerRejected, data_block, run_agent
from buyer.llm.gateway import AgentStopped, Budget, Role
from buyer.llm.mode import llm_mode
from buyer.sellers.money import micros_to_decimal
from buyer.words import count, verb
from campaigns.models import (
    BookedDeal,
    BookingJob,
    NegotiationStatus,
    Recommendation,
    RecommendationStatus,
    channel_label,
)
from pacing import selectors as pacing
from pacing.models import PacingSnapshot

logger = logging.getLogger(__name__)


def report_facts(
    job: BookingJob,
    *,
    deals: list[BookedDeal] | None = None,
    lines: list[Recommendation] | None = None,
    snapshot: PacingSnapshot | bool | None = False,
) -> dict[str, Any]:
    """What the summary may say: the brief, what was booked (per channel), negotiation savings, decisions
    waiting, and the latest pacing. A page that has the job's deals, lines or latest snapshot passes them
    (``snapshot=None``: there is none yet)."""
    campaign = job.campaign
    deals = list(job.deals.all()) if deals is None else deals
    lines = list(job.recommendations.all()) if lines is None else lines
    counted = [d for d in deals if d.counted]
    by_channel: dict[str, Decimal] = {}
    for deal in counted:
        by_channel[deal.channel] = by_channel.get(deal.channel, Decimal(0)) + deal.cost
    negotiated = [r for r in lines if r.negotiation_status == NegotiationStatus.AGREED]
    saved = (
        sum(((r.quoted_cpm_micros or r.cpm_micros) - r.cpm_micros) * r.impressions / 1000 for r in negotiated)
        / 1_000_000
    )
    if snapshot is False:
        report = pacing.campaign_pacing(str(job.pk)).as_dict()
    elif snapshot is None or snapshot is True:
        report = {}
    else:
        report = {
            "status": snapshot.status,
            "pacing_pct": float(snapshot.pacing_pct) if snapshot.pacing_pct is not None else None,
            "spent": float(micros_to_decimal(snapshot.actual_micros)),
            "expected": float(micros_to_decimal(snapshot.expected_micros)),
            "projected": float(micros_to_decimal(snapshot.projected_micros)),
        }
    facts: dict[str, Any] = {
        "campaign": campaign.name,
        "status": job.status,
        "budget_usd": float(campaign.budget),
        "flight": {"start": campaign.start_date.isoformat(), "end": campaign.end_date.isoformat()},
        "deals_booked": len(counted),
        "booked_usd": float(sum(by_channel.values(), Decimal(0))),
        "booked_by_channel_usd": {c: float(v) for c, v in sorted(by_channel.items())},
        "negotiated_lines": len(negotiated),
        "negotiation_saved_usd": round(float(saved), 2),
        "deals_held_for_decision": sum(1 for d in deals if d.held),
        "deals_refused_to_cancel": sum(1 for d in deals if d.awaiting_cancellation),
        "lines_awaiting_approval": sum(1 for r in lines if r.status == RecommendationStatus.PENDING_APPROVAL),
        "pacing": {
            key: report.get(key)
            for key in ("status", "alert_level", "pacing_pct", "deviation_pct", "spent", "expected", "projected")
            if report.get(key) is not None
        },
    }
    return facts


def _day(iso: str) -> str:
    """ "2026-12-08" as the pages write it: "Dec 8, 2026"."""
    day = date.fromisoformat(iso)
    return f"{day:%b} {day.day}, {day.year}"


def rules_summary(facts: dict[str, Any]) -> str:
    """The summary the rules write (always available)."""
    parts = [
        f"{facts['campaign']} ({facts['status'].replace('_', ' ')}): ${facts['budget_usd']:,.2f} budget, flight "
        f"{_day(facts['flight']['start'])} to {_day(facts['flight']['end'])}."
    ]
    if facts["deals_booked"]:
        channels = ", ".join(f"{channel_label(c)} ${v:,.2f}" for c, v in facts["booked_by_channel_usd"].items())
        parts.append(f"{count(facts['deals_booked'], 'deal')} booked for ${facts['booked_usd']:,.2f} ({channels}).")
    else:
        parts.append("No deal is booked yet.")
    if facts["negotiated_lines"]:
        parts.append(
            f"Negotiation lowered {count(facts['negotiated_lines'], 'line')}, "
            f"saving ${facts['negotiation_saved_usd']:,.2f}."
        )
    waiting = []
    if facts["lines_awaiting_approval"]:
        n = facts["lines_awaiting_approval"]
        waiting.append(f"{count(n, 'line')} {verb(n, 'awaits', 'await')} approval")
    if facts["deals_held_for_decision"]:
        n = facts["deals_held_for_decision"]
        waiting.append(f"{count(n, 'deal')} {verb(n, 'is', 'are')} held for your decision")
    if facts["deals_refused_to_cancel"]:
        n = facts["deals_refused_to_cancel"]
        waiting.append(f"{count(n, 'refused deal')} {verb(n, 'is', 'are')} to be cancelled with the seller")
    if waiting:
        parts.append("; ".join(waiting).capitalize() + ".")
    pace = facts["pacing"]
    if pace.get("status") and pace["status"] != "no_data":
        line = f"Pacing: {pace['status'].replace('_', ' ')}"
        if pace.get("pacing_pct") is not None:
            line += f" at {pace['pacing_pct']:.1f}% of the expected spend"
        if pace.get("spent") is not None and pace.get("expected") is not None:
            line += f" (${pace['spent']:,.2f} spent of ${pace['expected']:,.2f} expected)"
        parts.append(line + ".")
    else:
        parts.append("No delivery has been read yet.")
    return " ".join(parts)


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=20, max_length=1500, description="Three to six plain sentences for a media buyer")


_NUMBER = re.compile(r"(?<![\w.])\$?\d[\d,]*(?:\.\d+)?%?")


def _numbers(value: Any) -> set[str]:
    """Every number in ``value`` as the summary may write it (exact, rounded to 0, 1 or 2 places)."""
    found: set[str] = set()
    if isinstance(value, bool):
        return found
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
        for places in (0, 1, 2):
            found.add(_norm(str(round(number, places))))
        found.add(_norm(str(number)))
        return found
    if isinstance(value, str):
        for token in re.findall(r"\d+(?:\.\d+)?", value):
            found |= _numbers(Decimal(token))
        return found
    if isinstance(value, dict):
        for item in value.values():
            found |= _numbers(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= _numbers(item)
    return found


def _norm(token: str) -> str:
    text = token.replace("$", "").replace(",", "").rstrip("%")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _check_numbers(summary: Summary, facts: dict[str, Any]) -> None:
    allowed = _numbers(facts)
    stray = [t for t in _NUMBER.findall(summary.text) if _norm(t) not in allowed]
    if stray:
        raise AnswerRejected(f"the summary states {', '.join(stray[:5])}, which the facts do not: use only the facts")


REPORTING_SYSTEM = (
    "You write a campaign's status for its media buyer: three to six plain sentences on what is booked, how "
    "delivery is pacing and what needs a decision. Use only the facts given; every number you write must be one "
    "of them."
)


def campaign_summary(job: BookingJob, *, ask_model: bool = False, **known: Any) -> dict[str, Any]:
    """``{text, by, facts, note}``: the rules' summary, or the reporting agent's when asked and the agents are
    on (the rules' stands when the agent cannot answer, with why). ``known``: see ``report_facts``."""
    facts = report_facts(job, **known)
    answer: dict[str, Any] = {"text": rules_summary(facts), "by": "rules", "facts": facts, "note": ""}
    if not ask_model:
        return answer
    mode = llm_mode()
    if not mode.active:
        return {**answer, "note": mode.why}
    try:
        result = run_agent(
            role=Role.REPORTING,
            system=REPORTING_SYSTEM,
            user=f"Write the status of this campaign.\n{data_block(facts)}",
            schema=Summary,
            budget=Budget(job_id=job.pk),
            check=lambda summary: _check_numbers(summary, facts),
        )
    except AgentStopped as stop:
        return {**answer, "note": f"reporting agent: {stop}"}
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # the rules' summary stands
        logger.exception("job %s: reporting agent failed", job.pk)
        return {**answer, "note": f"reporting agent: error: {type(exc).__name__}"}
    return {
        "text": result.value.text,
        "by": f"the reporting agent ({result.served_model})",
        "facts": facts,
        "note": "",
        "written_at": timezone.now().isoformat(),
    }
