"""``manage.py seed_demo``: demo campaigns that are already delivering, so pacing can be seen at once.

Books three campaigns through the normal flow (auto-approved) at the sandbox seller, with flights that started
``--days-ago`` days ago, tells the sandbox how each deal delivers (under, over, on pace), then replays delivery
and a snapshot of each demo campaign for every day since the flight started (the sandbox answers ``?as_of=``)
and takes today's. The deals are recorded as booked the day before their flight, as they would have been, so
their first day is the only one in the grace period (``PACING_GRACE_HOURS``). Other campaigns are not touched.

Needs the sandbox seller: ``make run`` starts one on 127.0.0.1:8010 (``SANDBOX_SELLER_PORT``); ``--seller``
names another. Every enabled seller must be a sandbox: the demo books with auto-approval, and never at a
real seller.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from buyer.sandbox.control import NotASandbox, delivery_profiles, set_deal_profile
from buyer.sellers.selectors import seller_list_enabled
from buyer.sellers.services import seller_get_or_create, seller_seed_from_settings
from buyer.words import count
from campaigns import services as campaign_services
from campaigns import tasks as campaign_tasks
from campaigns.models import BookedDeal, BookingJob, DealStatus, DealTransition, JobStatus
from pacing.delivery import delivery_pull_all
from pacing.models import RunTrigger
from pacing.services import campaign_job_ids
from pacing.snapshots import snapshot_run_create, snapshot_take


@dataclass(frozen=True)
class Demo:
    name: str
    objectives: tuple[str, ...]
    budget: int
    channels: tuple[str, ...]
    profiles: dict[str, str]  # channel → sandbox delivery profile


DEMOS = (
    Demo(
        "Demo · Holiday push",
        ("brand awareness", "reach"),
        60_000,
        ("branding", "ctv"),
        {"branding": "under:0.7", "ctv": "over:1.15"},
    ),
    Demo("Demo · App installs", ("app installs",), 30_000, ("mobile_app",), {"mobile_app": "under:0.55"}),
    Demo(
        "Demo · Always on",
        ("reach",),
        40_000,
        ("branding", "performance"),
        {"branding": "on_pace", "performance": "on_pace"},
    ),
)


# Where ``make run`` starts the sandbox seller.
SANDBOX_URL = f"http://127.0.0.1:{os.environ.get('SANDBOX_SELLER_PORT', '8010')}"


class Command(BaseCommand):
    help = "Book demo campaigns already delivering at the sandbox seller, with their pacing history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days-ago", type=int, default=10, help="when the flights started (default 10)")
        parser.add_argument("--length", type=int, default=30, help="flight length in days (default 30)")
        parser.add_argument(
            "--seller",
            default=SANDBOX_URL,
            help="the sandbox seller's address, when no enabled seller is one (default: make run's, %(default)s)",
        )

    def handle(self, *args, days_ago: int, length: int, seller: str, **options) -> None:
        if not 1 <= days_ago < length <= 366:
            raise CommandError("--days-ago must be at least 1 and shorter than --length (at most 366 days)")
        sandbox = self._sandbox(seller.rstrip("/"))
        today = timezone.now().date()
        start = today - timedelta(days=days_ago)
        end = start + timedelta(days=length - 1)
        self.stdout.write(f"Booking {len(DEMOS)} demo campaigns at {sandbox}: flights {start} to {end}.")
        jobs = [self._book(demo, start, end) for demo in DEMOS]
        for demo, job in zip(DEMOS, jobs, strict=True):
            for deal in job.deals.select_related("seller"):
                assert deal.seller is not None  # booked a moment ago, at a seller that exists
                set_deal_profile(deal.seller.base_url, deal.deal_id, demo.profiles.get(deal.channel, "on_pace"))
        day_before = datetime.combine(start - timedelta(days=1), day_time(12), tzinfo=UTC)
        BookedDeal.objects.filter(job__in=jobs).update(booked_at=day_before)
        job_ids = [pk for job in jobs for pk in campaign_job_ids(job)]
        # History: delivery and a snapshot of each demo campaign at noon of every day since the start, then now.
        for offset in range(days_ago):
            moment = datetime.combine(start + timedelta(days=offset), day_time(12), tzinfo=UTC)
            delivery_pull_all(job_ids=job_ids, as_of=moment)
            for job in jobs:
                run = snapshot_run_create(trigger=RunTrigger.DEMO, job_id=job.pk)
                snapshot_take(run=run, as_of=moment, propose=False)
        # The deals' history as it would have happened: booked the day before, delivering from the first day.
        transitions = DealTransition.objects.filter(deal__job__in=jobs)
        transitions.filter(to_status=DealStatus.BOOKED).update(at=day_before)
        first_day = datetime.combine(start, day_time(12), tzinfo=UTC)
        transitions.filter(to_status=DealStatus.DELIVERING).update(at=first_day)
        delivery_pull_all(job_ids=job_ids)
        for job in jobs:
            snapshot_take(run=snapshot_run_create(trigger=RunTrigger.DEMO, job_id=job.pk))
        for job in jobs:
            self.stdout.write(f"  {job.campaign.name}: /app/pacing/campaigns/{job.pk}/")
        self.stdout.write(self.style.SUCCESS("Done: open /app/pacing/ to see pacing, alerts and a reallocation."))

    def _sandbox(self, fallback: str) -> str:
        """The sandbox seller to book at: an enabled one, else the one at ``fallback`` (then added as a seller).

        The demo books with auto-approval at every enabled seller, so every one of them must be a sandbox."""
        seller_seed_from_settings()
        sandboxes, others = [], []
        for seller in seller_list_enabled():
            try:
                delivery_profiles(seller.base_url)
            except NotASandbox as exc:
                others.append(str(exc))
            else:
                sandboxes.append(seller.base_url)
        if others:
            raise CommandError(
                "seed_demo books with auto-approval at every enabled seller, and these are not a sandbox (or do "
                f"not answer): {'; '.join(others)}. Disable them in /admin/ first, or seed a database of its own."
            )
        if sandboxes:
            return sandboxes[0]
        try:
            delivery_profiles(fallback)
        except NotASandbox as exc:
            raise CommandError(
                f"seed_demo books at the built-in sandbox seller, and none answers: {exc}. Start it with "
                f"`make run` (it listens on {SANDBOX_URL}), or name it with --seller URL."
            ) from None
        seller = seller_get_or_create(base_url=fallback)
        if not seller.enabled:
            raise CommandError(f"The sandbox seller at {fallback} is disabled; enable it in /admin/ first.")
        return fallback

    def _book(self, demo: Demo, start: date, end: date) -> BookingJob:
        with transaction.atomic():
            job = campaign_services.job_create(
                name=demo.name,
                objectives=list(demo.objectives),
                budget=Decimal(demo.budget),
                start_date=start,
                end_date=end,
                target_audience={"geo": ["US"]},
                kpis={},
                channels=list(demo.channels),
                formats=[],
                constraints={},
                brief={"name": demo.name, "demo": True},
                auto_approve=True,
            )
        # Run the steps here; a worker that picks one up meanwhile is harmless (each step is claimed once).
        deadline = time.monotonic() + 120
        for task in (campaign_tasks.job_plan, campaign_tasks.job_research, campaign_tasks.job_book):
            task.run(str(job.pk))
        while True:
            job.refresh_from_db()
            if job.is_terminal or time.monotonic() > deadline:
                break
            time.sleep(0.5)
            for task in (campaign_tasks.job_plan, campaign_tasks.job_research, campaign_tasks.job_book):
                task.run(str(job.pk))
        if job.status != JobStatus.COMPLETED:
            raise CommandError(f"{demo.name}: the booking ended {job.status}: {job.failure_reason or job.errors}")
        self.stdout.write(
            f"  booked {demo.name}: {count(job.deals.count(), 'deal')} for ${sum(d.cost for d in job.deals.all()):,.2f}"
        )
        return job
