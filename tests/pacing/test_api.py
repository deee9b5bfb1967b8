"""The pacing REST API: campaigns by pacing, one campaign's figures and series, alerts, proposals, delivery."""

from __future__ import annotations

import csv
import io

import pytest
import time_machine

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from buyer.events.models import Event, EventType
from campaigns.models import BookingJob
from pacing.models import ChannelBudget, ProposalStatus, ReallocationProposal
from pacing.snapshots import snapshot_run_create, snapshot_take
from tests.pacing.conftest import at, deliver, diverging_campaign, make_campaign

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def _during_the_flight():
    # Proposals lapse and flights end relative to now: keep now inside the test campaigns' flight.
    with time_machine.travel(at(16, 1), tick=False):
        yield


def get(client, path, **params):
    response = client.get(path, params)
    assert response.status_code == 200, response.content
    return response.json()


def test_campaigns_are_listed_worst_first(client):
    calm, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=5_000_000_000, as_of=at(16, 0))
    snapshot_take(run=snapshot_run_create(), as_of=at(16, 0))
    stormy, _ = diverging_campaign()

    body = get(client, "/pacing/campaigns")

    assert [row["campaign_id"] for row in body["campaigns"]] == [str(stormy.pk), str(calm.pk)]
    worst = body["campaigns"][0]
    assert (worst["status"], worst["alert_level"], worst["deviation_pct"]) == ("behind", "warning", -12.0)
    assert worst["open_alerts"] == 5 and worst["critical_alerts"] == 2  # campaign, 2 channels, 2 deals
    assert body["campaigns"][1]["status"] == "on_track" and body["total"] == 2


def test_one_campaign_answers_its_figures_channels_deals_series_alerts_and_proposal(client):
    job, deals = diverging_campaign()

    body = get(client, f"/pacing/campaigns/{job.pk}")

    assert body["pacing"]["spent"] == 22_000.0 and body["pacing"]["expected"] == 25_000.0
    assert {c["channel"]: c["budget"] for c in body["channels"]} == {"branding": 30_000.0, "ctv": 20_000.0}
    assert {d["deal_id"] for d in body["deals"]} == {d.deal_id for d in deals.values()}
    assert [(p["expected"], p["spent"]) for p in body["series"]] == [(25_000.0, 22_000.0)]
    assert {(a["scope"], a["direction"], a["level"]) for a in body["open_alerts"]} == {
        ("campaign", "under", "warning"),
        ("channel", "under", "critical"),
        ("channel", "over", "warning"),
        ("deal", "under", "critical"),
        ("deal", "over", "warning"),
    }
    (proposal,) = body["proposals"]
    assert proposal["status"] == "pending" and proposal["moves"][0]["from_channel"] == "branding"
    assert client.get(f"/pacing/campaigns/{UNKNOWN}").status_code == 404
    assert client.get("/pacing/campaigns/not-a-uuid").status_code == 404
    assert body["pacing"]["in_grace"] is False


def test_the_series_of_one_channel_and_a_channel_the_campaign_lacks(client):
    job, _ = diverging_campaign()

    ctv = get(client, f"/pacing/campaigns/{job.pk}", channel="ctv")
    bogus = client.get(f"/pacing/campaigns/{job.pk}", {"channel": "bogus"})

    assert [p["expected"] for p in ctv["series"]] == [10_000.0]
    assert bogus.status_code == 422
    assert "no channel 'bogus'" in bogus.json()["detail"] and "branding, ctv" in bogus.json()["detail"]
    # A channel that has pacing rows stays answerable after the brief's channels and budgets stop naming it.
    job.campaign.channels = ["branding"]
    job.campaign.save(update_fields=["channels"])
    job.budget_allocations = {}
    job.save(update_fields=["budget_allocations"])
    assert [p["expected"] for p in get(client, f"/pacing/campaigns/{job.pk}", channel="ctv")["series"]] == [10_000.0]


def test_a_campaign_without_snapshots_has_no_pacing_yet(client):
    job, _ = make_campaign()
    body = get(client, f"/pacing/campaigns/{job.pk}")
    assert body["pacing"] is None and body["series"] == [] and body["channels"] == []


def test_alerts_filter_by_level_direction_status_scope_and_campaign(client):
    job, _ = diverging_campaign()
    assert get(client, "/pacing/alerts")["total"] == 5
    assert get(client, "/pacing/alerts", level="critical")["total"] == 2
    assert get(client, "/pacing/alerts", direction="over")["total"] == 2
    assert get(client, "/pacing/alerts", status="resolved")["total"] == 0
    assert get(client, "/pacing/alerts", scope="deal", campaign_id=str(job.pk))["total"] == 2
    assert client.get("/pacing/alerts", {"level": "severe"}).status_code == 422
    assert client.get("/pacing/alerts", {"campaign_id": UNKNOWN}).status_code == 404


def test_approving_a_proposal_moves_budget_and_starts_a_top_up_booking(client):
    job, _ = diverging_campaign()
    proposal = ReallocationProposal.objects.get(job=job)

    response = client.post(f"/pacing/proposals/{proposal.pk}/approve", content_type="application/json")

    assert response.status_code == 200, response.content
    body = response.json()
    (move,) = body["moves"]
    assert (body["status"], move["from_channel"], move["to_channel"]) == ("approved", "branding", "ctv")
    budgets = dict(ChannelBudget.objects.filter(job=job).values_list("channel", "budget_micros"))
    moved = int(move["amount"] * 1_000_000)
    assert budgets == {"branding": 30_000_000_000 - moved, "ctv": 20_000_000_000 + moved}
    assert sum(budgets.values()) == job.campaign.budget_micros  # the campaign total never grows
    top_up = BookingJob.objects.get(pk=move["top_up_job_id"])
    assert top_up.parent_id == job.pk and top_up.campaign.budget_micros == moved
    assert top_up.campaign.channels == ["ctv"] and not top_up.auto_approve
    again = client.post(f"/pacing/proposals/{proposal.pk}/approve", content_type="application/json")
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    assert get(client, "/events", event_type="pacing.reallocation_applied")["total"] == 1


def test_rejecting_a_proposal_changes_nothing(client):
    job, _ = diverging_campaign()
    proposal = ReallocationProposal.objects.get(job=job)

    response = client.post(
        f"/pacing/proposals/{proposal.pk}/reject", {"note": "ctv is a test"}, content_type="application/json"
    )

    assert response.status_code == 200 and response.json()["status"] == "rejected"
    assert not ChannelBudget.objects.exists()
    assert BookingJob.objects.count() == 1
    assert ReallocationProposal.objects.get().decision_note == "ctv is a test"
    assert client.generic("POST", f"/pacing/proposals/{proposal.pk}/approve").status_code == 409
    assert client.generic("POST", "/pacing/proposals/999999/approve").status_code == 404
    listed = get(client, "/pacing/proposals", status=ProposalStatus.REJECTED)
    assert [p["proposal_id"] for p in listed["proposals"]] == [proposal.pk]


def test_the_delivery_report_as_json_and_csv(client):
    job, deals = diverging_campaign()
    deals["ctv"].__class__.objects.filter(pk=deals["ctv"].pk).update(product_name="=HYPERLINK(1)")

    report = get(client, f"/pacing/campaigns/{job.pk}/delivery")
    csv_response = client.get(f"/pacing/campaigns/{job.pk}/delivery", {"format": "csv"})

    lines = {line["channel"]: line for line in report["deals"]}
    assert lines["ctv"]["spend"] == 11_500.0 and lines["ctv"]["booked_cost"] == 20_000.0
    assert lines["ctv"]["delivered_cpm"] == 10.0 and report["totals"]["spend"] == 22_000.0
    assert csv_response.status_code == 200 and csv_response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_response.content.decode())))
    assert {row["deal_id"] for row in rows} == {d.deal_id for d in deals.values()}
    assert {row["product_name"] for row in rows} >= {"'=HYPERLINK(1)"}  # never a live formula in a spreadsheet


def test_refresh_answers_202_with_a_run_to_poll_and_needs_the_write_scope(client, settings):
    job, _ = make_campaign()
    response = client.generic("POST", f"/pacing/campaigns/{job.pk}/refresh")
    assert response.status_code == 202
    run = response.json()
    assert (run["status"], run["trigger"], run["campaign_id"]) == ("pending", "refresh", str(job.pk))
    # Asked again while waiting: the same run.
    assert client.generic("POST", f"/pacing/campaigns/{job.pk}/refresh").json()["run_id"] == run["run_id"]
    assert get(client, f"/pacing/runs/{run['run_id']}")["status"] == "pending"
    assert client.get("/pacing/runs/424242").status_code == 404

    _, reader = api_key_create(name="reader", scopes=[Scope.READ])
    headers = {"HTTP_X_API_KEY": reader}
    assert client.get(f"/pacing/campaigns/{job.pk}", **headers).status_code == 200
    assert client.post(f"/pacing/campaigns/{job.pk}/refresh", **headers).status_code == 403
    assert client.post("/pacing/proposals/1/approve", **headers).status_code == 403


def test_deviation_events_are_queryable_as_the_guide_shows(client):
    diverging_campaign()
    events = get(client, "/events", event_type="pacing.deviation_detected")["events"]
    critical = [e for e in events if e["payload"]["alert_level"] == "critical"]
    assert len(events) == 5 and len(critical) == 2
    assert {e["payload"]["direction"] for e in critical} == {"under"}
    assert all(e["payload"]["deviation"] is not None for e in events)


def test_the_campaign_id_of_events_answers_as_its_job_id_does(client):
    job, _ = diverging_campaign()
    event = Event.objects.filter(event_type=EventType.PACING_DEVIATION_DETECTED).first()
    assert event.campaign_id == str(job.campaign_id) != str(job.pk)

    by_campaign = get(client, f"/pacing/campaigns/{event.campaign_id}")
    assert by_campaign == get(client, f"/pacing/campaigns/{job.pk}")
    alerts = get(client, "/pacing/alerts", campaign_id=event.campaign_id)
    assert alerts["total"] == get(client, "/pacing/alerts", campaign_id=str(job.pk))["total"] > 0
