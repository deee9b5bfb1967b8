"""REST shapes of the pacing API. Money as floats of dollars (as the reference API's), percentages as floats."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from ninja import Schema
from pydantic import Field

from pacing.models import AlertLevel, Direction, ProposalStatus, Scope


class PageFilters(Schema):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000_000)


class OverviewFilters(PageFilters):
    include_finished: bool = Field(default=False, description="Also list campaigns whose flight has ended.")


class AlertFilters(PageFilters):
    level: AlertLevel | None = None
    direction: Direction | None = None
    status: Literal["open", "resolved"] | None = None
    scope: Scope | None = None
    campaign_id: str | None = Field(default=None, max_length=64)


class ProposalFilters(PageFilters):
    status: ProposalStatus | None = None
    campaign_id: str | None = Field(default=None, max_length=64)


class SeriesFilters(Schema):
    channel: str | None = Field(default=None, max_length=24, description="The series of one channel.")


class DeliveryFilters(Schema):
    format: Literal["json", "csv"] = "json"


class PacingFigures(Schema):
    status: str = Field(description="on_track | behind | ahead | no_data (nothing due yet, or no snapshot)")
    alert_level: str | None = None
    in_grace: bool = Field(
        default=False, description="Delivery started under PACING_GRACE_HOURS ago: rated, but not alerted on yet."
    )
    pacing_pct: float | None = Field(description="Actual spend as a percentage of the spend expected by now.")
    deviation_pct: float | None = Field(description="pacing_pct - 100: negative under-pacing, positive over.")
    booked: float
    expected: float
    spent: float
    projected: float = Field(description="Spend at flight end if delivery keeps its pace.")
    days_left: int
    as_of: datetime


class CampaignPacingRow(PacingFigures):
    campaign_id: str
    name: str
    budget: float
    flight_start: date
    flight_end: date
    open_alerts: int
    critical_alerts: int


class CampaignPacingList(Schema):
    campaigns: list[CampaignPacingRow]
    total: int


class ChannelRow(PacingFigures):
    channel: str
    budget: float


class DealRow(PacingFigures):
    deal_id: str
    seller: str
    product_name: str
    channel: str
    deal_status: str
    impressions_booked: int
    impressions_delivered: int
    delivery_as_of: datetime | None
    delivery_error: str


class SeriesPoint(Schema):
    as_of: datetime
    expected: float
    spent: float
    pacing_pct: float | None
    status: str


class AlertOut(Schema):
    alert_id: int
    campaign_id: str
    campaign_name: str
    scope: str
    channel: str | None
    deal_id: str | None
    direction: str
    level: str
    peak_level: str
    deviation_pct: float | None
    expected: float
    actual: float
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    status: Literal["open", "resolved"]


class AlertList(Schema):
    alerts: list[AlertOut]
    total: int


class MoveOut(Schema):
    from_channel: str
    to_channel: str
    amount: float
    top_up_job_id: str | None


class BudgetCutOut(Schema):
    """A giving channel's deal at an AdCP seller, its budget cut there by the approved reallocation."""

    deal_id: str
    seller: str
    channel: str
    from_budget: float
    to_budget: float
    status: Literal["pending", "submitted", "applied", "failed"]
    message: str = Field(description="The seller's words: why it failed, or what it says while reviewing it")
    decided_at: datetime | None


class ProposalOut(Schema):
    proposal_id: int
    campaign_id: str
    campaign_name: str
    status: str
    amount: float
    moves: list[MoveOut]
    budget_cuts: list[BudgetCutOut] = Field(
        description="Approved: the giving channels' AdCP deals whose budgets are cut at their sellers"
    )
    rationale: str
    budgets_before: dict[str, float]
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str
    decision_note: str


class ProposalList(Schema):
    proposals: list[ProposalOut]
    total: int


class DecisionIn(Schema):
    note: str = Field(default="", max_length=500)


class CampaignPacingOut(Schema):
    campaign_id: str
    name: str
    budget: float
    flight_start: date
    flight_end: date
    pacing_curve: str
    pacing: PacingFigures | None = Field(description="The latest snapshot; null until one exists.")
    channels: list[ChannelRow]
    deals: list[DealRow]
    series: list[SeriesPoint]
    open_alerts: list[AlertOut]
    proposals: list[ProposalOut]
    refresh: RunOut | None


class RunOut(Schema):
    run_id: int
    campaign_id: str | None
    trigger: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    as_of: datetime | None
    campaigns: int
    deals: int
    alerts_opened: int
    error: str


class DeliveryLineOut(Schema):
    deal_id: str
    seller: str
    product_id: str
    product_name: str
    channel: str
    deal_type: str
    status: str
    flight_start: date
    flight_end: date
    impressions_booked: int
    impressions_delivered: int
    delivered_pct: float | None
    booked_cpm: float
    booked_cost: float
    spend: float
    delivered_cpm: float | None
    as_of: datetime | None
    seller_status: str
    delivery_error: str


class DeliveryReport(Schema):
    campaign_id: str
    name: str
    deals: list[DeliveryLineOut]
    totals: dict[str, float]


CampaignPacingOut.model_rebuild()
