"""``manage.py seed_demo``: demo campaigns with a pacing history, at the sandbox seller, touching nothing else."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from buyer.sandbox import create_app
from buyer.sellers.models import Seller
from campaigns.models import BookingJob
from pacing.models import LatestSnapshot, PacingAlert, PacingSnapshot, Scope, SnapshotRun
from pacing.snapshots import snapshot_run_create, snapshot_take
from tests.conftest import free_port, serve_in_thread
from tests.pacing.conftest import at, deliver, make_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_sellers(fast_sellers):
    fast_sellers.MAX_CANDIDATES_PER_CHANNEL = 1
    return fast_sellers


def test_seed_demo_finds_the_sandbox_by_its_address_and_leaves_other_campaigns_alone(fast_sellers):
    other, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=5_000_000_000, as_of=at(16, 0))
    snapshot_take(run=snapshot_run_create(), as_of=at(16, 0))
    before = LatestSnapshot.objects.get(job=other).run_id
    Seller.objects.update(enabled=False)  # every enabled seller must be a sandbox; that campaign's is not

    out = StringIO()
    with serve_in_thread(create_app()) as url:
        assert not Seller.objects.filter(base_url=url).exists()  # no seller row: found by its address
        call_command("seed_demo", "--days-ago", "3", "--seller", url, stdout=out)

    assert Seller.objects.filter(base_url=url, enabled=True).count() == 1
    demos = BookingJob.objects.filter(campaign__name__startswith="Demo · ")
    assert demos.count() == 3 and "Done" in out.getvalue()
    # Three days of history and today's figures for each demo campaign, in runs of its own.
    for job in demos:
        runs = SnapshotRun.objects.filter(job_id=job.pk)
        assert runs.count() == 4
        assert PacingSnapshot.objects.filter(job=job, scope=Scope.CAMPAIGN).count() == 4
    # The first day is the grace period; after it, the under-delivering app campaign is alerted on.
    installs = demos.get(campaign__name="Demo · App installs")
    assert PacingAlert.objects.filter(job=installs, scope=Scope.CAMPAIGN, direction="under").exists()
    # The deals' history reads as it would have happened: booked the day before the flight, delivering from it.
    deal = installs.deals.first()
    history = {t.to_status: t.at for t in deal.transitions.all()}
    assert history["booked"] == deal.booked_at and history["delivering"].date() == installs.campaign.start_date
    # The campaign that was already there keeps its latest snapshot and its single series point.
    assert LatestSnapshot.objects.get(job=other).run_id == before
    assert PacingSnapshot.objects.filter(job=other, scope=Scope.CAMPAIGN).count() == 1


def test_seed_demo_without_a_sandbox_says_how_to_get_one(fast_sellers):
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(CommandError, match="--seller URL") as failure:
        call_command("seed_demo", "--seller", url)

    assert url in str(failure.value) and "make run" in str(failure.value)
    assert not BookingJob.objects.exists()


def test_seed_demo_never_books_at_a_seller_that_is_not_a_sandbox(fast_sellers):
    # It books with auto-approval at every enabled seller: a real one would take real money.
    real = Seller.objects.create(name="Real SSP", base_url=f"http://127.0.0.1:{free_port()}", enabled=True)

    with serve_in_thread(create_app()) as url, pytest.raises(CommandError, match="not a sandbox") as failure:
        call_command("seed_demo", "--seller", url)

    assert real.base_url in str(failure.value) and "/admin/" in str(failure.value)
    assert not BookingJob.objects.exists()


def test_seed_demo_refuses_a_flight_shorter_than_its_history():
    with pytest.raises(CommandError, match="--days-ago"):
        call_command("seed_demo", "--days-ago", "30", "--length", "30")
