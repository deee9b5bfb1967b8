"""Pacing pages: the overview worst first, a campaign's chart and tables, deciding on proposals, refresh now."""

from __future__ import annotations

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from buyer.accounts.models import Role
from campaigns.models import BookedDeal, BookingJob
from pacing.models import ChannelBudget, ProposalStatus, ReallocationProposal, RunStatus, SnapshotRun
from pacing.snapshots import snapshot_run_create, snapshot_take
from tests.dashboard._admin import message_texts, signed_in
from tests.factories import BookingJobFactory
from tests.pacing.conftest import at, deliver, diverging_campaign, make_campaign

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _mid_flight():
    with time_machine.travel(at(16, 1), tick=False):
        yield


@pytest.fixture
def buyer(client):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    return client


def test_the_overview_lists_campaigns_worst_first_with_their_alerts(buyer):
    calm, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=5_000_000_000, as_of=at(16, 0))
    snapshot_take(run=snapshot_run_create(), as_of=at(16, 0))
    stormy, _ = diverging_campaign()

    html = buyer.get(reverse("pacing:overview")).content.decode()

    assert html.index(stormy.campaign.name) < html.index(calm.campaign.name)
    assert "2 critical" in html and "3 warning" in html  # the stormy campaign's open alerts
    assert "Reallocations awaiting your decision (1)" in html
    assert 'id="nav-alerts"' in html and "5 open pacing alerts" in html


def test_the_overview_is_an_empty_state_until_something_delivers(buyer):
    html = buyer.get(reverse("pacing:overview")).content.decode()
    assert "No campaign is delivering yet" in html
    assert "seed_demo" not in html  # a developer's command is not a media buyer's next step
    assert 'id="nav-alerts"' not in html
    assert "reads delivery from the sellers every 15 minutes" in html and "deal every hour" in html


def test_the_overview_runs_a_fixed_number_of_queries(buyer):
    for _ in range(3):
        diverging_campaign()
    with CaptureQueriesContext(connection) as few:
        buyer.get(reverse("pacing:overview"))
    for _ in range(5):
        diverging_campaign()
    with CaptureQueriesContext(connection) as many:
        buyer.get(reverse("pacing:overview"))
    assert len(many) == len(few)


def test_a_campaign_page_shows_the_chart_its_data_channels_deals_alerts_and_the_proposal(buyer):
    job, deals = diverging_campaign()
    BookedDeal.objects.filter(pk=deals["ctv"].pk).update(product_name="<script>alert(1)</script>")

    response = buyer.get(reverse("pacing:campaign", args=[job.pk]))

    html = response.content.decode()
    assert '<svg class="chart pacing-chart" id="pacing-chart" role="img"' in html
    assert "Expected and actual spend of the campaign" in html and 'id="series-table"' in html
    assert 'id="channels-table"' in html and 'id="pacing-deals-table"' in html
    assert html.count('class="open-alert"') == 5
    assert 'id="approve-proposal"' in html and "Approve… ($9,000)" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    channel = buyer.get(reverse("pacing:campaign", args=[job.pk]), {"channel": "ctv"}).content.decode()
    assert "Expected and actual spend of the ctv channel" in channel
    bogus = buyer.get(reverse("pacing:campaign", args=[job.pk]), {"channel": "bogus"})
    assert message_texts(bogus) == ["This campaign has no paced channel 'bogus'; showing the whole campaign."]
    assert "Expected and actual spend of the campaign" in bogus.content.decode()


def test_a_top_up_job_leads_to_its_campaign_and_an_unknown_one_is_404(buyer):
    job, _ = diverging_campaign()
    top_up = BookingJobFactory(parent=job, campaign=job.campaign)
    response = buyer.get(reverse("pacing:campaign", args=[top_up.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("pacing:campaign", args=[job.pk])
    assert buyer.get(reverse("pacing:campaign", args=["00000000-0000-4000-8000-000000000000"])).status_code == 404


def test_approving_goes_through_a_confirmation_that_states_the_amounts(buyer):
    job, _ = diverging_campaign()
    proposal = ReallocationProposal.objects.get(job=job)

    confirm = buyer.get(reverse("pacing:proposal_confirm", args=[proposal.pk]), {"action": "approve"})
    html = confirm.content.decode()
    assert "Move $9,000 between channels?" in html
    assert "$21,000.00" in html and "$29,000.00" in html  # branding and ctv after the move
    assert not ChannelBudget.objects.exists()  # the confirmation changes nothing

    done = buyer.post(reverse("pacing:proposal_decide", args=[proposal.pk]), {"action": "approve"}, follow=True)

    assert any("Moved $9,000" in text for text in message_texts(done))
    assert ReallocationProposal.objects.get().status == ProposalStatus.APPROVED
    assert BookingJob.objects.filter(parent=job).count() == 1
    again = buyer.post(reverse("pacing:proposal_decide", args=[proposal.pk]), {"action": "approve"}, follow=True)
    assert any("already approved" in text for text in message_texts(again))
    assert BookingJob.objects.filter(parent=job).count() == 1
    page = buyer.get(reverse("pacing:campaign", args=[job.pk])).content.decode()
    assert "CTV top-up" in page and "Top-up bookings" in page


def test_rejecting_keeps_everything_as_it_was(buyer):
    job, _ = diverging_campaign()
    proposal = ReallocationProposal.objects.get(job=job)
    confirm = buyer.get(reverse("pacing:proposal_confirm", args=[proposal.pk]), {"action": "reject"})
    assert "Reject this reallocation?" in confirm.content.decode()

    buyer.post(reverse("pacing:proposal_decide", args=[proposal.pk]), {"action": "reject", "note": "not now"})

    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by, proposal.decision_note) == ("rejected", "mia", "not now")
    assert not ChannelBudget.objects.exists() and BookingJob.objects.count() == 1
    bad = buyer.get(reverse("pacing:proposal_confirm", args=[proposal.pk]), {"action": "approve"}, follow=True)
    assert any("already rejected" in text for text in message_texts(bad))


def test_refresh_now_starts_a_run_and_the_page_polls_until_it_is_done(buyer):
    job, _ = make_campaign()
    buyer.post(reverse("pacing:campaign_refresh", args=[job.pk]))
    run = SnapshotRun.objects.get()
    assert (run.status, run.requested_by) == (RunStatus.PENDING, "mia")
    page = buyer.get(reverse("pacing:campaign", args=[job.pk])).content.decode()
    assert "Reading delivery from the sellers" in page and "refresh/status/" in page

    waiting = buyer.get(reverse("pacing:campaign_refresh_status", args=[job.pk]), **HX)
    assert waiting.status_code == 200 and "hx-trigger" in waiting.content.decode()
    SnapshotRun.objects.filter(pk=run.pk).update(status=RunStatus.DONE)
    done = buyer.get(reverse("pacing:campaign_refresh_status", args=[job.pk]), **HX)
    assert done.status_code == 286 and done["HX-Refresh"] == "true"
    assert buyer.get(reverse("pacing:campaign_refresh_status", args=[job.pk])).status_code == 302


def test_jobs_and_job_detail_show_the_pacing_of_delivering_campaigns(buyer):
    job, _ = diverging_campaign()
    jobs = buyer.get(reverse("campaigns:jobs")).content.decode()
    assert 'class="pacing-link"' in jobs and "behind" in jobs
    detail = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert 'id="job-pacing"' in detail and "$22,000.00</span> spent of" in detail


def test_deals_show_their_delivery(buyer):
    _job, deals = diverging_campaign()
    listing = buyer.get(reverse("campaigns:deals")).content.decode()
    assert "$11,500.00" in listing  # ctv spent
    detail = buyer.get(reverse("campaigns:deal_detail", args=[deals["ctv"].pk])).content.decode()
    assert 'id="delivery-facts"' in detail and "Delivered CPM" in detail


def test_the_delivery_report_downloads_as_csv(buyer):
    job, deals = diverging_campaign()
    response = buyer.get(reverse("pacing:delivery_csv", args=[job.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert deals["ctv"].deal_id in response.content.decode()


def test_signed_out_people_are_sent_to_sign_in(client):
    job, _ = make_campaign()
    for url in (reverse("pacing:overview"), reverse("pacing:campaign", args=[job.pk])):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_deals_of_a_top_up_count_as_paced_with_their_campaign(buyer):
    from tests.factories import BookedDealFactory, RecommendationFactory

    job, _ = diverging_campaign()
    top_up = BookingJobFactory(parent=job, campaign=job.campaign)
    BookedDealFactory(recommendation=RecommendationFactory(job=top_up, channel="ctv"), deal_id="TOPUP-1")
    waiting = BookedDealFactory(deal_id="WAITING-1")  # a campaign with no snapshot yet

    html = buyer.get(reverse("pacing:overview")).content.decode()

    assert "Booked deals not paced yet (1)" in html
    assert waiting.deal_id in html and "TOPUP-1" not in html


# --- details a trial run asked for ----------------------------------------------------------------------------


def test_a_single_move_proposal_states_its_amount_once_and_the_overview_shows_the_flight(buyer):
    job, _ = diverging_campaign()

    page = buyer.get(reverse("pacing:campaign", args=[job.pk])).content.decode()
    overview = buyer.get(reverse("pacing:overview")).content.decode()

    assert 'Proposed: move <span class="num">$9,000</span> from Branding to CTV.' in page
    assert page.count("$9,000</span> from Branding") == 1
    assert (
        '<time datetime="2027-03-01">Mar\N{NO-BREAK SPACE}1</time> \N{EN DASH} '
        '<time datetime="2027-03-30">Mar\N{NO-BREAK SPACE}30,\N{NO-BREAK SPACE}2027</time>' in overview
    )


def test_a_rejected_proposal_has_no_top_up_and_a_repeated_decision_reads_as_a_sentence(buyer):
    job, _ = diverging_campaign()
    proposal = ReallocationProposal.objects.get(job=job)
    buyer.post(reverse("pacing:proposal_decide", args=[proposal.pk]), {"action": "reject"})

    again = buyer.post(reverse("pacing:proposal_decide", args=[proposal.pk]), {"action": "approve"}, follow=True)
    page = buyer.get(reverse("pacing:campaign", args=[job.pk])).content.decode()

    assert "Nothing was changed. This proposal is already rejected." in message_texts(again)
    row = page.split('id="proposals-table"', 1)[1].split("</tr>", 2)[1]
    assert '<span class="muted">—</span>' in row and "top-up</a>" not in row


def test_after_a_reallocation_the_pages_say_where_the_budgets_stand(buyer):
    job, _ = diverging_campaign()
    proposal = ReallocationProposal.objects.get(job=job)
    buyer.post(reverse("pacing:proposal_decide", args=[proposal.pk]), {"action": "approve"})

    detail = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    page = buyer.get(reverse("pacing:campaign", args=[job.pk])).content.decode()
    untouched, _ = diverging_campaign()
    other = buyer.get(reverse("campaigns:job_detail", args=[untouched.pk])).content.decode()

    assert 'id="allocation-reallocated"' in detail and 'id="allocation-reallocated"' not in other
    (top_up,) = job.top_ups.all()
    assert reverse("campaigns:job_detail", args=[top_up.pk]) in detail.split('id="top-ups"', 1)[1]
    assert "ctv, $9,000" in detail and 'id="top-ups"' not in other
    branding = page.split('id="channels-table"', 1)[1].split("</tr>", 2)[1]
    assert "$21,000.00" in branding and "below booked: budget moved out" in branding


def test_a_deal_page_shows_the_deals_own_pacing(buyer):
    _job, deals = diverging_campaign()

    html = buyer.get(reverse("campaigns:deal_detail", args=[deals["branding"].pk])).content.decode()

    pacing = html.split('id="deal-pacing"', 1)[1].split("</dd>", 1)[0]
    assert "badge-behind" in pacing and "badge-critical" in pacing
    assert '<span class="num">70.0%</span> of the <span class="num">$15,000.00</span> expected' in pacing


def test_a_campaign_in_its_first_day_is_marked_as_in_grace_not_alerted(buyer):
    job, deals = make_campaign(deals={"ctv": 10_000_000_000})
    deliver(deals["ctv"], spend_micros=0, as_of=at(1, 6))
    snapshot_take(run=snapshot_run_create(), as_of=at(1, 6))

    page = buyer.get(reverse("pacing:campaign", args=[job.pk])).content.decode()

    assert "grace period</span>" in page and "badge-critical" not in page
    assert 'class="open-alert"' not in page
