"""Runs: "refresh now" for one campaign, scheduled runs that cannot overlap, and thinning the series."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from buyer.events.models import Event, EventType
from buyer.sandbox import create_app
from buyer.sellers.models import Seller
from pacing import services
from pacing.models import DeliveryReading, PacingSnapshot, RunStatus, Scope, SnapshotRun
from pacing.snapshots import snapshot_run_create, snapshot_take, snapshots_thin
from tests.conftest import serve_in_thread
from tests.pacing.conftest import START, at, book_campaign, deliver, make_campaign

pytestmark = pytest.mark.django_db


def test_refresh_now_reads_one_campaigns_delivery_and_snapshots_it_alone(fast_sellers):
    app = create_app(delivery_profiles={"*": "under:0.6"})
    with serve_in_thread(app) as url:
        Seller.objects.create(name="Sandbox", base_url=url)
        with time_machine.travel(at(1, 0) - timedelta(days=1), tick=False):
            mine = book_campaign(start=START, name="Mine")
            other = book_campaign(start=START, name="Other")
        with time_machine.travel(at(6), tick=False):
            run = services.campaign_refresh_request(job_id=str(mine.pk), actor="ada")
            assert services.campaign_refresh_request(job_id=str(mine.pk)).pk == run.pk  # one at a time
            finished = services.campaign_refresh_run(run.pk)
            assert services.campaign_refresh_run(run.pk) is None  # a redelivered task does nothing

    assert finished.status == RunStatus.DONE and finished.requested_by == "ada"
    assert set(PacingSnapshot.objects.values_list("job_id", flat=True)) == {mine.pk}
    row = PacingSnapshot.objects.get(run=finished, scope=Scope.CAMPAIGN)
    assert (row.status, row.alert_level) == ("behind", "critical")
    assert not DeliveryReading.objects.filter(deal__job=other).exists()
    event = Event.objects.get(event_type=EventType.PACING_SNAPSHOT_TAKEN)
    assert event.flow_id == str(mine.pk) and event.payload["trigger"] == "refresh"


def test_a_failed_refresh_says_why(fast_sellers, monkeypatch):
    job, _ = make_campaign()
    run = services.campaign_refresh_request(job_id=str(job.pk))
    monkeypatch.setattr(services, "delivery_pull_all", lambda **kw: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        services.campaign_refresh_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error == "the refresh failed (RuntimeError); see the worker's log"


def test_a_run_is_taken_once():
    _job, deals = make_campaign()
    deliver(deals["ctv"], spend_micros=1_000_000_000, as_of=at(3))
    run = snapshot_run_create()
    snapshot_take(run=run, as_of=at(3))
    snapshot_take(run=run, as_of=at(4))
    assert PacingSnapshot.objects.filter(run=run).count() == 1 + 2 + 2
    assert SnapshotRun.objects.get(pk=run.pk).as_of == at(3)


def test_old_snapshots_are_thinned_to_one_a_day_and_the_latest_always_stays(settings):
    settings.PACING_SNAPSHOT_KEEP_ALL_HOURS = 48
    job, deals = make_campaign(deals={"ctv": 10_000_000_000})
    for day in (1, 2, 3, 4, 5):
        for hour in (6, 12, 18):
            deliver(deals["ctv"], spend_micros=day * 100_000_000 + hour, as_of=at(day, hour))
            snapshot_take(run=snapshot_run_create(), as_of=at(day, hour))

    counts = snapshots_thin(now=at(5, 20))

    campaign_rows = PacingSnapshot.objects.filter(job=job, scope=Scope.CAMPAIGN).order_by("as_of")
    kept = [(row.as_of.day, row.as_of.hour) for row in campaign_rows]
    # Days 1 to 3 are older than 48 hours (before day 3, 20:00): the last snapshot of each stays.
    assert kept == [(1, 18), (2, 18), (3, 18), (4, 6), (4, 12), (4, 18), (5, 6), (5, 12), (5, 18)]
    assert counts["snapshots_thinned"] == 2 * 3 * 3  # two of three, on three days, at three scopes
    assert campaign_rows.last().run_id == job.latest_pacing.run_id
    assert snapshots_thin(now=at(5, 20))["snapshots_thinned"] == 0


def test_snapshots_older_than_the_retention_go_but_never_the_latest(settings):
    settings.PACING_SNAPSHOT_RETENTION_DAYS = 10
    job, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=0, as_of=at(1))
    snapshot_take(run=snapshot_run_create(), as_of=at(1))
    counts = snapshots_thin(now=at(1) + timedelta(days=30))
    assert counts["snapshots_expired"] == 0
    assert PacingSnapshot.objects.current().filter(job=job).count() == 3


def test_a_refresh_no_worker_took_is_given_up_and_can_be_asked_for_again():
    job, _ = make_campaign()
    with time_machine.travel(at(3), tick=False):
        lost = services.campaign_refresh_request(job_id=str(job.pk))
    with time_machine.travel(at(3) + timedelta(minutes=6), tick=False):
        from pacing import selectors

        assert selectors.refresh_in_progress(job) is None  # the page stops waiting
        again = services.campaign_refresh_request(job_id=str(job.pk))
    lost.refresh_from_db()
    assert again.pk != lost.pk and lost.status == RunStatus.FAILED and "no worker" in lost.error


def test_an_sqlite_too_old_for_the_pacing_sql_is_refused_at_migrate(monkeypatch):
    import sqlite3

    from django.db import connection

    from pacing.apps import sqlite_is_recent_enough

    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    errors = sqlite_is_recent_enough(None)
    expected = ["pacing.E001"] if connection.vendor == "sqlite" else []
    assert [e.id for e in errors] == expected
