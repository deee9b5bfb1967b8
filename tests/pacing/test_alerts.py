"""Alerts: one open alert per scope and direction, updated as pacing worsens or eases, resolved when back on pace."""

from __future__ import annotations

import pytest

from buyer.events.models import Event, EventType
from pacing.models import PacingAlert
from pacing.snapshots import snapshot_run_create, snapshot_take
from tests.pacing.conftest import at, deliver, make_campaign

pytestmark = pytest.mark.django_db


def _day(deal, day: int, pace: float) -> None:
    """Deliver ``pace`` of what is due by noon of ``day`` of the 30-day flight, and take a snapshot."""
    due = deal.cost_micros * (2 * day - 1) / 60
    deliver(deal, spend_micros=int(due * pace), as_of=at(day))
    snapshot_take(run=snapshot_run_create(), as_of=at(day))


def _deal_alerts(deal) -> list[tuple[str, str, str, bool]]:
    return [
        (a.direction, a.level, a.peak_level, a.resolved_at is None)
        for a in PacingAlert.objects.filter(scope_key=f"deal:{deal.pk}").order_by("pk")
    ]


def _deviation_events(deal) -> list[tuple[str, str, str]]:
    events = Event.objects.filter(event_type=EventType.PACING_DEVIATION_DETECTED).order_by("timestamp")
    return [
        (e.payload["change"], e.payload["direction"], e.payload["alert_level"])
        for e in events
        if e.payload["scope"] == "deal" and e.payload["deal_id"] == deal.deal_id
    ]


def test_an_alert_opens_once_escalates_eases_and_resolves_with_one_event_per_change():
    _, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deal = deals["ctv"]

    # From day 2: the first day is the grace period.
    for day, pace in ((2, 0.85), (3, 0.86), (4, 0.7), (5, 0.8), (6, 0.95), (7, 0.97)):
        _day(deal, day, pace)
        if day == 3:
            assert _deal_alerts(deal) == [("under", "warning", "warning", True)]  # updated, not a second alert

    assert _deal_alerts(deal) == [("under", "warning", "critical", False)]
    assert _deviation_events(deal) == [
        ("opened", "under", "warning"),
        ("escalated", "under", "critical"),
        ("eased", "under", "warning"),
    ]
    resolved = Event.objects.filter(event_type=EventType.PACING_ALERT_RESOLVED)
    assert sorted(e.payload["scope"] for e in resolved) == ["campaign", "channel", "deal"]
    assert {e.payload["now"] for e in resolved} == {"on_track"}
    alert = PacingAlert.objects.get(scope_key=f"deal:{deal.pk}")
    assert alert.resolved_at == at(6) and alert.deviation_pct == pytest.approx(-20, abs=0.01)


def test_swinging_from_under_to_over_resolves_one_alert_and_opens_the_other():
    _, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deal = deals["ctv"]
    _day(deal, 2, 0.7)
    _day(deal, 10, 1.3)

    assert _deal_alerts(deal) == [("under", "critical", "critical", False), ("over", "critical", "critical", True)]


def test_exactly_at_the_threshold_nothing_opens():
    _, deals = make_campaign(deals={"ctv": 2_000_000_000})
    deliver(deals["ctv"], spend_micros=1_100_000_000, as_of=at(16, 0))  # exactly 10 % over the half due
    snapshot_take(run=snapshot_run_create(), as_of=at(16, 0))
    assert not PacingAlert.objects.exists()
    assert not Event.objects.filter(event_type=EventType.PACING_DEVIATION_DETECTED).exists()


def test_alerts_of_a_campaign_no_longer_paced_are_resolved_by_the_next_full_run():
    from campaigns.models import BookedDeal, DealStatus

    _, deals = make_campaign(deals={"ctv": 10_000_000_000})
    _day(deals["ctv"], 5, 0.5)
    assert PacingAlert.objects.filter(resolved_at__isnull=True).count() == 3
    BookedDeal.objects.filter(pk=deals["ctv"].pk).update(status=DealStatus.CANCELLED)  # nothing left to pace

    snapshot_take(run=snapshot_run_create(), as_of=at(6))

    assert not PacingAlert.objects.filter(resolved_at__isnull=True).exists()
    resolved = Event.objects.filter(event_type=EventType.PACING_ALERT_RESOLVED)
    assert {e.payload["now"] for e in resolved} == {"no longer paced"}


def test_a_replayed_moment_is_in_the_payload_and_the_event_is_stamped_when_written():
    from django.utils import timezone

    _, deals = make_campaign(deals={"ctv": 10_000_000_000})
    before = timezone.now()
    _day(deals["ctv"], 5, 0.5)  # a past (or future) moment, as seed_demo replays history

    (event,) = Event.objects.filter(event_type=EventType.PACING_DEVIATION_DETECTED, payload__scope="deal")
    assert event.payload["as_of"] == "2027-03-05T12:00:00Z"  # at(5), written as pacing.snapshot_taken writes it
    taken = Event.objects.get(event_type=EventType.PACING_SNAPSHOT_TAKEN)
    assert taken.payload["as_of"] == event.payload["as_of"]
    assert before <= event.timestamp <= timezone.now()  # stamped when written, not at the replayed moment


def test_an_alert_that_a_longer_grace_period_covers_resolves_saying_so(settings):
    _, deals = make_campaign(deals={"ctv": 10_000_000_000})
    _day(deals["ctv"], 2, 0.5)
    assert _deal_alerts(deals["ctv"]) == [("under", "critical", "critical", True)]

    settings.PACING_GRACE_HOURS = 72  # an operator widens the grace period: day 2 is inside it again
    _day(deals["ctv"], 2, 0.5)

    assert _deal_alerts(deals["ctv"]) == [("under", "critical", "critical", False)]
    resolved = Event.objects.get(event_type=EventType.PACING_ALERT_RESOLVED, payload__scope="deal")
    assert resolved.payload["now"] == "in its grace period"
