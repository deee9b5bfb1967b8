"""Campaigns with booked deals and recorded delivery, built straight in the database for the pacing tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from campaigns.models import BookedDeal, BookingJob, DealStatus, JobStage, JobStatus
from pacing.models import DealDelivery
from tests.factories import BookedDealFactory, BookingJobFactory, CampaignFactory, RecommendationFactory

START = date(2027, 3, 1)
END = date(2027, 3, 30)  # a 30-day flight


def at(day: int, hour: int = 12) -> datetime:
    """Noon (or ``hour``) UTC on flight day ``day`` (1-based)."""
    return datetime.combine(START + timedelta(days=day - 1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


def make_campaign(
    *,
    deals: dict[str, int] | None = None,
    start: date = START,
    end: date = END,
    curve: str = "even",
    budget_micros: int | None = None,
    booked_at: datetime | None = None,
) -> tuple[BookingJob, dict[str, BookedDeal]]:
    """A completed job with one booked deal per ``name → cost micros`` (name ``channel`` or ``channel/n``),
    booked a week before the flight unless ``booked_at`` says when."""
    deals = deals or {"branding": 30_000_000_000, "ctv": 20_000_000_000}
    total = sum(deals.values())
    campaign = CampaignFactory(
        start_date=start,
        end_date=end,
        pacing_curve=curve,
        budget_micros=budget_micros or total,
        channels=sorted({name.split("/")[0] for name in deals}),
    )
    allocations = {}
    for name, cost in deals.items():
        channel = name.split("/")[0]
        allocations.setdefault(channel, 0)
        allocations[channel] += cost
    job = BookingJobFactory(
        campaign=campaign,
        status=JobStatus.COMPLETED,
        stage=JobStage.DONE,
        budget_allocations={
            c: {"channel": c, "budget": str(m / 1_000_000), "percentage": "0", "rationale": ""}
            for c, m in allocations.items()
        },
    )
    made = {}
    for name, cost in deals.items():
        channel = name.split("/")[0]
        line = RecommendationFactory(
            job=job, channel=channel, cost_micros=cost, impressions=cost // 10_000, cpm_micros=10_000_000
        )
        made[name] = BookedDealFactory(recommendation=line, status=DealStatus.BOOKED)
    when = booked_at or datetime.combine(start - timedelta(days=7), datetime.min.time(), tzinfo=UTC)
    BookedDeal.objects.filter(pk__in=[deal.pk for deal in made.values()]).update(booked_at=when)
    for deal in made.values():
        deal.booked_at = when
    return job, made


def deliver(deal: BookedDeal, *, spend_micros: int, as_of: datetime, impressions: int | None = None) -> DealDelivery:
    """Record delivery as the seller would have reported it (bypassing the seller)."""
    state, _ = DealDelivery.objects.update_or_create(
        deal=deal,
        defaults={
            "spend_micros": spend_micros,
            "impressions": impressions if impressions is not None else spend_micros // 10_000,
            "as_of": as_of,
            "checked_at": as_of,
        },
    )
    return state


@pytest.fixture
def campaign():
    return make_campaign


# --- campaigns booked through the real flow, at sandbox sellers over HTTP -------------------------------------


@pytest.fixture
def fast_sellers(fast_sellers):
    """One candidate per channel, so each channel of a booked test campaign has exactly one deal."""
    fast_sellers.MAX_CANDIDATES_PER_CHANNEL = 1
    return fast_sellers


def book_campaign(
    *,
    start: date,
    days: int = 30,
    channels: tuple[str, ...] = ("branding", "ctv"),
    budget: int = 60_000,
    curve: str = "even",
    name: str = "Pacing test",
) -> BookingJob:
    """Plan, research and book a brief with auto-approval at the enabled sellers; the completed job."""
    from decimal import Decimal

    from campaigns import services, tasks

    job = services.job_create(
        name=name,
        objectives=["brand awareness"],
        budget=Decimal(budget),
        start_date=start,
        end_date=start + timedelta(days=days - 1),
        target_audience={},
        kpis={},
        channels=list(channels),
        formats=[],
        constraints={},
        brief={},
        auto_approve=True,
        pacing_curve=curve,
    )
    for task in (tasks.job_plan, tasks.job_research, tasks.job_book):
        task.run(str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, job.errors)
    return job


def diverging_campaign(*, moment: datetime | None = None) -> tuple[BookingJob, dict[str, BookedDeal]]:
    """Branding 30 % under, ctv 15 % over (mid-flight unless told), snapshotted: alerts and a proposal."""
    from decimal import Decimal

    from pacing.maths import elapsed_share
    from pacing.snapshots import snapshot_run_create, snapshot_take

    job, deals = make_campaign(deals={"branding": 30_000_000_000, "ctv": 20_000_000_000})
    moment = moment or at(16, 0)
    share = elapsed_share(START, END, moment)
    for name, pace in (("branding", Decimal("0.7")), ("ctv", Decimal("1.15"))):
        deliver(deals[name], spend_micros=int(deals[name].cost_micros * share * pace), as_of=moment)
    snapshot_take(run=snapshot_run_create(), as_of=moment)
    return job, deals


@pytest.fixture
def diverging():
    return diverging_campaign


@pytest.fixture
def models_fail(monkeypatch, settings):
    """Every model call fails: the provider SDKs cannot be imported and the API key is one no provider takes.

    Pacing must not need a model; with this fixture any code path that tried to call one would fail."""
    import builtins

    settings.ANTHROPIC_API_KEY = "sk-ant-this-key-is-refused"
    real_import = builtins.__import__

    def refuse_models(name, *args, **kwargs):
        if name.split(".")[0] in {"litellm", "anthropic", "openai"}:
            raise ImportError(f"{name}: model calls are made to fail in this test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse_models)
