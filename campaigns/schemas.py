"""REST shapes, compatible with the reference buyer agent (see shared/docs/REFERENCE_API.md)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from django.utils import timezone
from ninja import Schema
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from campaigns.models import Channel, JobStatus, PacingCurve

CPM_KPIS = ("max_cpm_usd", "target_cpm_usd", "max_cpm", "target_cpm")


class CampaignBriefIn(Schema):
    # Unknown brief fields are kept in the stored brief but otherwise ignored, as the reference does.
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=100)
    objectives: list[str] = Field(min_length=1, max_length=20)
    budget: Decimal = Field(gt=0, le=Decimal("1000000000"), max_digits=14, decimal_places=2)
    start_date: date
    end_date: date
    target_audience: dict[str, Any] = Field(default_factory=dict)
    kpis: dict[str, Any] = Field(default_factory=dict)
    channels: list[Channel] | None = Field(default=None, max_length=10)
    formats: list[str] | None = Field(default=None, max_length=20)
    constraints: dict[str, Any] = Field(default_factory=dict)
    pacing: PacingCurve | None = Field(
        default=None,
        description="How spend should accrue over the flight, for pacing alerts: even (default), asap, "
        "front_loaded or back_loaded.",
    )
    plan_review: bool = Field(
        default=False,
        description="Stop after the budget split (status awaiting_plan_review) for a person to adjust it "
        "(POST /bookings/{job_id}/plan) before the sellers are researched.",
    )
    negotiation: Literal["none", "threshold", "adaptive", "competitive"] | None = Field(
        default=None,
        description="How to negotiate quotes above kpis.target_cpm_usd: none, threshold, adaptive or competitive "
        "(default: the NEGOTIATION_STRATEGY setting). Never above kpis.max_cpm_usd nor the seller's quote.",
    )

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("objectives")
    @classmethod
    def _objectives_not_blank(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value if v.strip()]
        if not cleaned:
            raise ValueError("needs at least one non-blank objective")
        return cleaned

    @field_validator("end_date")
    @classmethod
    def _flight_ordered(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("start_date")
        if start is not None and value < start:
            raise ValueError("end_date must be on or after start_date")
        if value < timezone.now().date():
            raise ValueError("end_date is in the past; media cannot be bought for a finished flight")
        return value

    @field_validator("kpis")
    @classmethod
    def _cpm_kpis_are_prices(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in CPM_KPIS:
            if key in value and value[key] is not None:
                price = value[key]
                if isinstance(price, bool) or not isinstance(price, int | float) or not 0 < price <= 10_000:
                    raise ValueError(f"{key} must be a number between 0 and 10000 (USD CPM)")
        ceiling = next((value[k] for k in ("max_cpm_usd", "max_cpm") if value.get(k) is not None), None)
        target = next((value[k] for k in ("target_cpm_usd", "target_cpm") if value.get(k) is not None), None)
        if ceiling is not None and target is not None and target > ceiling:
            raise ValueError(f"target_cpm ({target}) must not be above max_cpm ({ceiling})")
        return value


class BookingIn(Schema):
    brief: CampaignBriefIn
    auto_approve: bool = False


class BookingCreatedOut(Schema):
    job_id: str
    status: str
    message: str


class JobSummaryOut(Schema):
    job_id: str
    status: str
    campaign_name: str
    budget: float
    progress: float
    created_at: datetime


class JobListOut(Schema):
    jobs: list[JobSummaryOut]
    total: int


# A page of the job list: GET /bookings, the MCP list_bookings and the fast reads read the same bounds.
JOB_PAGE_DEFAULT = 20
JOB_PAGE_MAX = 200
# Far past any real list, and within PostgreSQL's bigint (a larger OFFSET is a database error, not an empty page).
JOB_OFFSET_MAX = 10_000_000


class JobFilters(Schema):
    status: JobStatus | None = None
    limit: int = Field(default=JOB_PAGE_DEFAULT, ge=1, le=JOB_PAGE_MAX)
    offset: int = Field(default=0, ge=0, le=JOB_OFFSET_MAX)


class AllocationOut(Schema):
    channel: str
    budget: float
    percentage: float
    rationale: str


class RecommendationOut(Schema):
    recommendation_id: str
    product_id: str
    product_name: str
    publisher: str = Field(description="The publisher's seller_organization_id.")
    publisher_domain: str = Field("", description="The publisher's site as the seller names it; '' if it names none.")
    seller_id: str
    seller_name: str
    channel: str
    format: str
    deal_type: str
    impressions: int
    cpm: float
    list_cpm: float
    cost: float
    buyer_tier: str
    tier_discount_pct: float
    volume_discount_pct: float
    quote_id: str
    quote_expires_at: datetime | None
    targeting: dict[str, Any]
    priority: int
    status: str
    status_reason: str
    rationale: str
    quoted_cpm: float = Field(description="The seller's quote; ``cpm`` is lower when a negotiation agreed.")
    negotiation: NegotiationOut | None = None


class NegotiationRoundOut(Schema):
    round_number: int
    action: str
    buyer_price: float | None
    seller_action: str
    seller_price: float | None
    status: str
    rounds_remaining: int | None
    rationale: str
    at: datetime


class NegotiationOut(Schema):
    status: str = Field(description="active, agreed, walked_away or ended (the quote stands)")
    outcome: str
    strategy: str
    target_cpm: float | None
    walk_away_cpm: float | None
    negotiation_id: str
    rounds: list[NegotiationRoundOut]


RecommendationOut.model_rebuild()


class BookedLineOut(Schema):
    deal_id: str
    quote_id: str
    product_id: str
    product_name: str
    channel: str
    deal_type: str
    impressions: int
    cpm: float
    cost: float
    booking_status: str = Field(description="booked, delivering, …, or held (awaiting a person's decision)")
    held_because: str = ""
    booked_at: datetime
    seller_id: str
    seller_url: str
    buyer_tier: str
    flight_start: date
    flight_end: date
    activation_instructions: dict[str, Any]
    rationale: str
    line_id: str
    order_id: str | None


class JobDetailOut(Schema):
    job_id: str
    status: str
    stage: str
    progress: float
    campaign_id: str
    campaign_name: str
    budget: float
    auto_approve: bool
    parent_job_id: str | None = Field(
        default=None, description="For a top-up booking (budget moved by a reallocation): the campaign's job."
    )
    budget_allocations: dict[str, AllocationOut]
    recommendations: list[RecommendationOut]
    booked_lines: list[BookedLineOut]
    total_cost: float
    errors: list[str]
    failure_reason: str | None
    approval_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ApproveIn(Schema):
    approved_product_ids: list[str] = Field(
        default_factory=list, max_length=500, description="Seller product ids, as in the reference API."
    )
    recommendation_ids: list[str] = Field(
        default_factory=list,
        max_length=500,
        description="This buyer's recommendation ids, for lines whose product id another line shares.",
    )
    keep_unselected: bool = Field(
        default=False,
        description="Leave the lines not named awaiting a decision (until the approval expires) instead of "
        "rejecting them, as the reference does; the job returns to awaiting_approval once these are booked.",
    )

    @model_validator(mode="after")
    def _names_something(self) -> ApproveIn:
        if not self.approved_product_ids and not self.recommendation_ids:
            raise ValueError("name the lines to approve: approved_product_ids and/or recommendation_ids")
        return self


class ApproveOut(Schema):
    status: str
    job_id: str
    approved_count: int
    rejected_count: int
    booked: int
    total_cost: float
    total_impressions: int
    message: str


class ApproveAllOut(Schema):
    status: Literal["booking", "rejected"]
    job_id: str
    approved_count: int
    booked: int
    failed: list[str]
    total_impressions: int
    total_cost: float
    message: str


class CancelIn(Schema):
    reason: str = Field(default="Cancelled by user.", max_length=500)


class PlanReviewIn(Schema):
    model_config = ConfigDict(extra="forbid")

    allocations: dict[str, Decimal] | None = Field(
        default=None,
        description="USD per channel of the plan, adding up to the budget exactly; omit to keep the plan as it is",
    )


class PlanReviewOut(Schema):
    job_id: str
    status: str
    budget_allocations: dict[str, Any]
    message: str
