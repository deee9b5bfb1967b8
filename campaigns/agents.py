"""The planning agents: facts gathered in code, the model decides, code validates.

- The *portfolio manager* (level 1, ``MANAGER_LLM_MODEL``) splits the budget across the brief's channels with a
  rationale; code keeps the channels to the brief's, each funded share within ``PLAN_MIN_SHARE_PCT`` and
  ``PLAN_MAX_SHARE_PCT``, and computes the amounts so they add up to the budget exactly.
- A *channel specialist* (level 2, ``DEFAULT_LLM_MODEL``) per funded channel chooses and orders the lines among
  the real quotes for its channel, with a reason for each; it names lines by their ids and gives no figure, so
  a price or a product that was not quoted cannot get in. Code then fits the chosen lines to the budgets.

One call each (one more when an answer is invalid), with the caps of ``buyer.llm``. When an agent cannot answer
(no model, a cap, two invalid answers) the deterministic policy decides instead and the job records why. The
booking step never imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Generic, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field

from buyer.llm.agent import AnswerRejected, data_block, run_agent
from buyer.llm.gateway import AgentStopped, Budget, Gateway, Role
from buyer.llm.mode import llm_mode
from campaigns import policies
from campaigns.models import BookingJob

logger = logging.getLogger(__name__)

V = TypeVar("V")


@dataclass
class Decision(Generic[V]):
    """What an agent decided (``by_model``), or the policy's decision and why the agent did not decide."""

    value: V
    by_model: bool
    note: str
    rationale: str = ""
    model: str = ""
    calls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """As the job keeps it (``BookingJob.agents``)."""
        return {
            "decided_by": "model" if self.by_model else "policy",
            "note": self.note,
            "model": self.model,
            "calls": self.calls,
            "rationale": self.rationale,
            **self.extra,
        }


def _cancelled(job: BookingJob) -> Callable[[], bool]:
    return lambda: BookingJob.objects.filter(pk=job.pk, cancel_requested=True).exists()


def _budget(job: BookingJob) -> Budget:
    return Budget(job_id=job.pk, cancelled=_cancelled(job))


def _brief_facts(job: BookingJob, terms: policies.BriefTerms) -> dict[str, Any]:
    campaign = job.campaign
    brief = campaign.brief or {}
    facts: dict[str, Any] = {
        "name": campaign.name,
        "budget_usd": str(terms.budget),
        "flight": f"{terms.start_date} to {terms.end_date}",
        "objectives": list(terms.objectives),
        "kpis": campaign.kpis or {},
        "audience": campaign.target_audience or {},
    }
    if terms.formats:
        facts["formats"] = list(terms.formats)
    notes = brief.get("notes") or brief.get("description")
    if notes:
        facts["notes"] = str(notes)[:2000]
    return facts


# --- level 1: the portfolio manager -------------------------------------------------------------------------


class ChannelShare(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(max_length=32)
    percentage: Decimal = Field(ge=0, le=100, decimal_places=2)
    rationale: str = Field(max_length=400)


class AudiencePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segments: list[str] = Field(
        default_factory=list, max_length=8, description="Short audience segments, e.g. 'outdoor sports fans'"
    )
    summary: str = Field(default="", max_length=300)


class ChannelSplit(BaseModel):
    """The budget's split across channels, in percent, with why, and the audience to reach."""

    model_config = ConfigDict(extra="forbid")

    shares: list[ChannelShare] = Field(min_length=1, max_length=12)
    rationale: str = Field(max_length=1200)
    audience: AudiencePlan | None = None


def _check_split(split: ChannelSplit, allowed: list[str]) -> None:
    names = [s.channel for s in split.shares]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise AnswerRejected(f"channels {unknown} are not in the brief; use only {allowed}")
    if len(set(names)) != len(names):
        raise AnswerRejected("a channel appears twice")
    total = sum((s.percentage for s in split.shares), Decimal(0))
    if abs(total - 100) > Decimal("0.05"):  # rescaled by code, so a share cannot drift past its bounds
        raise AnswerRejected(f"the percentages add up to {total}, not 100")
    funded = [s for s in split.shares if s.percentage > 0]
    if not funded:
        raise AnswerRejected("no channel is funded")
    low, high = settings.PLAN_MIN_SHARE_PCT, settings.PLAN_MAX_SHARE_PCT
    for share in funded:
        if share.percentage < low:
            raise AnswerRejected(f"{share.channel} gets {share.percentage} %: a funded channel gets at least {low} %")
        if len(allowed) > 1 and share.percentage > high:
            raise AnswerRejected(f"{share.channel} gets {share.percentage} %: no channel gets more than {high} %")


PORTFOLIO_SYSTEM = (
    "You are the portfolio manager of a programmatic media-buying team. Split the campaign's budget across the "
    "channels the brief allows, in percent, so the split serves the objectives, KPIs and audience. Give each "
    "channel a one-sentence reason and the split a short overall rationale. Percentages add up to 100; a channel "
    "you fund gets between {low} and {high} percent; you may leave a channel at 0. Name up to eight short audience "
    "segments the inventory should reach (they rank products by their targeting)."
)


def plan_channels(
    job: BookingJob, terms: policies.BriefTerms, baseline: list[policies.Allocation], *, gateway: Gateway | None = None
) -> Decision[list[policies.Allocation]]:
    """The channel split: the portfolio manager's when it answers validly, else ``baseline`` (the policy's)."""
    mode = llm_mode()
    if not mode.active:
        return Decision(baseline, False, mode.why)
    allowed = [a.channel for a in baseline]
    facts = {
        "brief": _brief_facts(job, terms),
        "channels": {c: policies.CHANNEL_PURPOSE.get(c, c) for c in allowed},
        "policy_split_pct": {a.channel: str(a.percentage) for a in baseline},
    }
    system = PORTFOLIO_SYSTEM.format(low=settings.PLAN_MIN_SHARE_PCT, high=settings.PLAN_MAX_SHARE_PCT)
    try:
        result = run_agent(
            role=Role.PORTFOLIO_MANAGER,
            system=system,
            user=f"Split the budget for this brief.\n{data_block(facts)}",
            schema=ChannelSplit,
            budget=_budget(job),
            check=lambda split: _check_split(split, allowed),
            gateway=gateway,
        )
    except AgentStopped as stop:
        logger.info("job %s: portfolio manager stopped (%s): the policy splits the budget", job.pk, stop)
        return Decision(baseline, False, f"portfolio manager: {stop}")
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # an agent's failure never stops a booking: the policy decides
        logger.exception("job %s: portfolio manager failed: the policy splits the budget", job.pk)
        return Decision(baseline, False, f"portfolio manager: error: {type(exc).__name__}: {str(exc)[:200]}")
    split = result.value
    allocations = policies.allocate_shares(
        terms.budget, [(s.channel, s.percentage, f"{s.rationale} (the portfolio manager)") for s in split.shares]
    )
    audience = split.audience or AudiencePlan()
    return Decision(
        allocations,
        True,
        f"split by the portfolio manager ({result.served_model})",
        rationale=split.rationale,
        model=result.served_model,
        calls=result.calls,
        extra={
            "audience": {
                "segments": [s.strip()[:60] for s in audience.segments if s.strip()][:8],
                "summary": audience.summary,
            }
        },
    )


# --- level 2: channel specialists ---------------------------------------------------------------------------


class Pick(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: str = Field(max_length=8, description="The id of a quoted line, such as L1")
    reason: str = Field(max_length=300)


class LineChoice(BaseModel):
    """The quoted lines to recommend for one channel, best first, each with why."""

    model_config = ConfigDict(extra="forbid")

    picks: list[Pick] = Field(max_length=20)
    rationale: str = Field(max_length=600)


SPECIALIST_SYSTEM = (
    "You are the {channel} specialist of a programmatic media-buying team. From the quoted lines below, choose "
    "the ones to recommend for this channel, best first, and say in one sentence why each fits the brief. The "
    "quotes are the sellers' real prices; you cannot change them. Prefer lines that fit the objectives, the "
    "audience and the formats; leave out what does not fit. Code fits your choice to the channel's budget of "
    "${budget}."
)


def _line_facts(lines: list[policies.QuotedLine], seller_names: dict[str, str]) -> list[dict[str, Any]]:
    facts = []
    for index, line in enumerate(lines, start=1):
        product, quote = line.candidate.product, line.quote
        facts.append(
            {
                "id": f"L{index}",
                "product": product.name[:120],
                "seller": seller_names.get(line.candidate.seller_key, line.candidate.seller_key)[:80],
                "publisher": product.seller_organization_id[:60],
                "inventory": product.inventory_type,
                "formats": list(product.ad_formats)[:4],
                "deal": quote.deal_type or line.candidate.deal_type,
                "cpm": str(quote.final_cpm),
                "impressions": quote.impressions,
                "cost": str(line.cost),
                "about": (product.description or "")[:300],
            }
        )
    return facts


def _check_choice(choice: LineChoice, ids: set[str]) -> None:
    named = [p.line for p in choice.picks]
    unknown = sorted(set(named) - ids)
    if unknown:
        raise AnswerRejected(f"lines {unknown} were not quoted; choose among {sorted(ids)}")
    if len(set(named)) != len(named):
        raise AnswerRejected("a line is chosen twice")


def choose_lines(
    job: BookingJob,
    terms: policies.BriefTerms,
    allocation: policies.Allocation,
    lines: list[policies.QuotedLine],
    seller_names: dict[str, str],
    *,
    gateway: Gateway | None = None,
) -> Decision[tuple[list[policies.QuotedLine], list[policies.QuotedLine]]]:
    """The channel's lines as its specialist chose and ordered them (re-ranked, with its reasons), and the ones
    it left out; else all of them, as the policy ranked them, and none left out."""
    mode = llm_mode()
    if not mode.active or not lines:
        return Decision((lines, []), False, mode.why if not mode.active else "no quotes to choose from")
    facts = {
        "brief": _brief_facts(job, terms),
        "channel_budget_usd": str(allocation.amount),
        "lines": _line_facts(lines, seller_names),
    }
    by_id = {f"L{i}": line for i, line in enumerate(lines, start=1)}
    try:
        result = run_agent(
            role=Role.CHANNEL_SPECIALIST,
            system=SPECIALIST_SYSTEM.format(channel=allocation.channel, budget=allocation.amount),
            user=f"Choose the {allocation.channel} lines.\n{data_block(facts)}",
            schema=LineChoice,
            budget=_budget(job),
            check=lambda choice: _check_choice(choice, set(by_id)),
            gateway=gateway,
        )
    except AgentStopped as stop:
        logger.info("job %s: %s specialist stopped (%s): the policy ranks", job.pk, allocation.channel, stop)
        return Decision((lines, []), False, f"{allocation.channel} specialist: {stop}")
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # an agent's failure never stops a booking: the policy decides
        logger.exception("job %s: %s specialist failed: the policy ranks", job.pk, allocation.channel)
        return Decision(
            (lines, []), False, f"{allocation.channel} specialist: error: {type(exc).__name__}: {exc}"[:300]
        )
    choice = result.value
    chosen = [
        replace(
            by_id[pick.line],
            candidate=replace(by_id[pick.line].candidate, rank=rank, model_note=pick.reason),
        )
        for rank, pick in enumerate(choice.picks, start=1)
    ]
    picked = {p.line for p in choice.picks}
    left_out = [line for key, line in by_id.items() if key not in picked]
    return Decision(
        (chosen, left_out),
        True,
        f"chosen by the {allocation.channel} specialist ({result.served_model})",
        rationale=choice.rationale,
        model=result.served_model,
        calls=result.calls,
    )


# --- level 3: the execution check ---------------------------------------------------------------------------


class PlanReview(BaseModel):
    """What in the plan does not serve the brief (empty when it does)."""

    model_config = ConfigDict(extra="forbid")

    concerns: list[str] = Field(default_factory=list, max_length=8, description="Each one sentence; empty if none")


REVIEW_SYSTEM = (
    "You check a media plan against its brief before a person approves it. List what does not serve the brief "
    "(a line that misses the audience, the formats or the objectives, a channel mix that contradicts the notes), "
    "one sentence each; answer with no concerns when the plan fits. Prices and budgets are checked by code."
)


def review_plan(
    job: BookingJob, terms: policies.BriefTerms, lines: list[policies.QuotedLine], *, gateway: Gateway | None = None
) -> Decision[list[str]] | None:
    """The execution check agent's concerns about the chosen lines (they withhold auto-approval and are shown
    with the lines), when ``LLM_EXECUTION_REVIEW`` and the agents are on; None otherwise. Code's own checks
    (``policies.plan_findings``) run whatever it says."""
    if not settings.LLM_EXECUTION_REVIEW or not llm_mode().active:
        return None
    facts = {
        "brief": _brief_facts(job, terms),
        "lines": [
            {
                "channel": line.candidate.channel,
                "product": line.candidate.product.name[:120],
                "inventory": line.candidate.product.inventory_type,
                "formats": list(line.candidate.product.ad_formats)[:4],
                "cost_usd": str(line.cost),
            }
            for line in lines
        ],
    }
    try:
        result = run_agent(
            role=Role.EXECUTION_CHECK,
            system=REVIEW_SYSTEM,
            user=f"Check this plan.\n{data_block(facts)}",
            schema=PlanReview,
            budget=_budget(job),
            gateway=gateway,
        )
    except AgentStopped as stop:
        return Decision([], False, f"execution check: {stop}")
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # code's checks stand whatever the agent did
        logger.exception("job %s: execution check agent failed", job.pk)
        return Decision([], False, f"execution check: error: {type(exc).__name__}")
    concerns = [c.strip()[:300] for c in result.value.concerns if c.strip()]
    return Decision(
        concerns, True, f"reviewed by the execution check ({result.served_model})", model=result.served_model
    )
