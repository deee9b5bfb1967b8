from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from buyer.accounts.models import Role
from buyer.accounts.services import user_create
from campaigns.models import BookedDeal, BookingJob, Campaign, JobStage, JobStatus
from tests.factories import BookedDealFactory, BookingJobFactory, CampaignFactory, RecommendationFactory

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass-word"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def buyer(client):
    user_create(username="mia", email="mia@example.com", password=PASSWORD, role=Role.MEDIA_BUYER)
    client.login(username="mia", password=PASSWORD)
    return client


def job(status=JobStatus.RUNNING, *, name="Campaign", budget=50_000, **fields) -> BookingJob:
    stage = {
        JobStatus.AWAITING_APPROVAL: JobStage.APPROVAL,
        JobStatus.PENDING: JobStage.PLAN,
        JobStatus.RUNNING: JobStage.RESEARCH,
    }.get(status, JobStage.DONE)
    campaign = CampaignFactory(name=name, budget_micros=budget * 1_000_000)
    return BookingJobFactory(campaign=campaign, status=status, stage=stage, **fields)


def deal_for(line, n: int) -> BookedDeal:
    return BookedDealFactory(recommendation=line, deal_id=f"DEAL-{n:04d}")


def valid_brief(**overrides) -> dict:
    today = timezone.now().date()
    data = {
        "name": "Holiday push",
        "objectives": ["brand awareness"],
        "other_objectives": "store visits, sales",
        "budget": "60000.00",
        "start_date": (today + timedelta(days=7)).isoformat(),
        "end_date": (today + timedelta(days=37)).isoformat(),
        "channels": ["branding", "ctv"],
        "max_cpm": "25",
        "target_cpm": "18.5",
        "audience_age": "25-54",
        "audience_geo": "US, CA",
        "audience_interests": "sports, travel",
        "submission_id": str(uuid.uuid4()),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- Access -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, args",
    [
        ("campaigns:jobs", []),
        ("campaigns:job_new", []),
        ("campaigns:job_row", [uuid.uuid4()]),
        ("campaigns:job_detail", [uuid.uuid4()]),
        ("campaigns:job_status", [uuid.uuid4()]),
        ("campaigns:job_timeline", [uuid.uuid4()]),
        ("campaigns:job_selection", [uuid.uuid4()]),
        ("campaigns:job_approve_confirm", [uuid.uuid4()]),
        ("campaigns:deals", []),
        ("campaigns:deal_detail", [1]),
        ("events:feed", []),
    ],
)
def test_signed_out_people_are_sent_to_sign_in_from_every_page(client, name, args):
    response = client.get(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_signed_out_approval_posts_are_sent_to_sign_in_and_change_nothing(client):
    waiting = job(JobStatus.AWAITING_APPROVAL)
    response = client.post(reverse("campaigns:job_approve", args=[waiting.pk]), {"action": "all"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    waiting.refresh_from_db()
    assert waiting.status == JobStatus.AWAITING_APPROVAL


def test_the_navigation_shows_jobs_deals_and_events(buyer):
    content = buyer.get(reverse("campaigns:jobs")).content.decode()
    for url in (reverse("campaigns:jobs"), reverse("campaigns:deals"), reverse("events:feed")):
        assert f'href="{url}"' in content


# --- Jobs list --------------------------------------------------------------------------------------------


def test_the_jobs_list_shows_budget_status_progress_and_actions(buyer):
    waiting = job(JobStatus.AWAITING_APPROVAL, name="Holiday push", budget=60_000, progress=0.85)
    failed = job(JobStatus.FAILED, name="Test", budget=5_000, failure_reason="no seller priced the channels")
    done = job(JobStatus.COMPLETED, name="Spring CTV", budget=40_000, progress=1.0)
    running = job(JobStatus.RUNNING, name="Summer", budget=10_000, progress=0.4)
    for n in range(3):
        deal_for(RecommendationFactory(job=done), n)
    content = buyer.get(reverse("campaigns:jobs")).content.decode()
    assert '<table id="jobs-table">' in content
    assert '<td class="num">$60,000</td>' in content
    assert 'class="badge badge-awaiting_approval">awaiting approval</span>' in content
    assert "no seller priced the channels" in content
    assert "3 deals" in content
    assert f'href="{reverse("campaigns:job_detail", args=[waiting.pk])}">Review</a>' in content
    # Progress is shown while the agent works, not on a job waiting for a person (it read as progress to approval).
    assert 'aria-valuenow="40"' in content and 'aria-valuenow="85"' not in content
    assert f'id="job-{running.pk}"' in content
    assert f'id="job-{failed.pk}"' in content
    assert 'id="new-booking" href="/app/jobs/new/">New booking</a>' in content
    assert "UTC" in content  # dates carry their time zone


def test_jobs_awaiting_approval_come_first_then_the_newest(buyer):
    old_waiting = job(JobStatus.AWAITING_APPROVAL, name="Old waiting")
    newer = job(JobStatus.RUNNING, name="Newer running")
    newest = job(JobStatus.COMPLETED, name="Newest done")
    now = timezone.now()
    BookingJob.objects.filter(pk=old_waiting.pk).update(created_at=now - timedelta(days=3))
    BookingJob.objects.filter(pk=newer.pk).update(created_at=now - timedelta(days=1))
    BookingJob.objects.filter(pk=newest.pk).update(created_at=now)
    content = buyer.get(reverse("campaigns:jobs")).content.decode()
    assert content.index("Old waiting") < content.index("Newest done") < content.index("Newer running")


def test_jobs_filter_by_status_channel_and_name_without_javascript(buyer):
    display = job(JobStatus.RUNNING, name="Alpha display")
    Campaign.objects.filter(pk=display.campaign_id).update(channels=["display"])
    ctv = job(JobStatus.COMPLETED, name="Beta video")
    Campaign.objects.filter(pk=ctv.campaign_id).update(channels=["ctv"])
    planned = job(JobStatus.RUNNING, name="Gamma planned", budget_allocations={"mobile_app": {"budget": "1"}})
    Campaign.objects.filter(pk=planned.campaign_id).update(channels=[])
    url = reverse("campaigns:jobs")

    by_status = buyer.get(url, {"status": "completed"}).content.decode()
    assert "Beta video" in by_status and "Alpha display" not in by_status
    by_channel = buyer.get(url, {"channel": "ctv"}).content.decode()
    assert "Beta video" in by_channel and "Alpha display" not in by_channel
    assert "Gamma planned" in buyer.get(url, {"channel": "mobile_app"}).content.decode()
    by_name = buyer.get(url, {"q": "alpha"}).content.decode()
    assert "Alpha display" in by_name and "Beta video" not in by_name
    assert "No jobs match these filters." in buyer.get(url, {"q": "nothing like it"}).content.decode()
    form = buyer.get(url).content.decode()
    assert '<form class="filters" id="job-filters" method="get"' in form and 'name="q"' in form


def test_an_unknown_status_filter_is_ignored_with_a_note(buyer):
    job(JobStatus.RUNNING, name="Still listed")
    content = buyer.get(reverse("campaigns:jobs"), {"status": "bogus"}).content.decode()
    assert "Still listed" in content and "not understood" in content


def test_jobs_are_paginated_25_a_page(buyer):
    for n in range(30):
        job(JobStatus.COMPLETED, name=f"Job {n:02d}")
    first = buyer.get(reverse("campaigns:jobs")).content.decode()
    assert first.count('<tr id="job-') == 25 and "Page 1 of 2" in first and 'rel="next"' in first
    second = buyer.get(reverse("campaigns:jobs"), {"page": 2}).content.decode()
    assert second.count('<tr id="job-') == 5 and "Page 2 of 2" in second
    filtered = buyer.get(reverse("campaigns:jobs"), {"status": "completed", "page": 2}).content.decode()
    assert "status=completed" in filtered  # page links keep the filters


def test_an_htmx_request_for_the_jobs_list_gets_the_results_fragment(buyer):
    job(JobStatus.RUNNING, name="Fragment job")
    response = buyer.get(reverse("campaigns:jobs"), {"q": "Fragment"}, **HX)
    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith('<div id="jobs-results">') and "Fragment job" in content
    assert "<html" not in content and "<nav" not in content.split("jobs-table")[0]


def test_a_history_restore_gets_the_whole_page(buyer):
    response = buyer.get(reverse("campaigns:jobs"), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert b"<html" in response.content


def test_running_rows_poll_themselves_and_terminal_rows_do_not(buyer):
    running = job(JobStatus.RUNNING, name="Running")
    done = job(JobStatus.COMPLETED, name="Done")
    content = buyer.get(reverse("campaigns:jobs")).content.decode()
    row_url = reverse("campaigns:job_row", args=[running.pk])
    assert f'hx-get="{row_url}" hx-trigger="every 2s" hx-swap="outerHTML"' in content
    assert reverse("campaigns:job_row", args=[done.pk]) not in content


def test_the_row_partial_of_a_running_job_is_a_fragment_that_keeps_polling(buyer):
    running = job(JobStatus.RUNNING, name="Running", progress=0.4)
    response = buyer.get(reverse("campaigns:job_row", args=[running.pk]), **HX)
    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith(f'<tr id="job-{running.pk}"') and "<html" not in content
    assert 'hx-trigger="every 2s"' in content and "40%" in content


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_the_row_partial_of_a_finished_job_answers_286_to_stop_polling(buyer, status):
    finished = job(status, name="Finished", failure_reason="seller said no" if status != "completed" else "")
    response = buyer.get(reverse("campaigns:job_row", args=[finished.pk]), **HX)
    content = response.content.decode()
    assert response.status_code == 286
    assert content.lstrip().startswith("<tr") and "hx-trigger" not in content
    assert f"badge-{status}" in content


def test_the_row_partial_without_htmx_goes_to_the_job_and_unknown_jobs_are_404(buyer):
    running = job(JobStatus.RUNNING)
    response = buyer.get(reverse("campaigns:job_row", args=[running.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("campaigns:job_detail", args=[running.pk])
    assert buyer.get(reverse("campaigns:job_row", args=[uuid.uuid4()]), **HX).status_code == 404


def test_seller_and_brief_text_is_escaped_in_the_jobs_list(buyer):
    job(JobStatus.FAILED, name="<script>alert(1)</script>", failure_reason="<img src=x onerror=alert(2)>")
    content = buyer.get(reverse("campaigns:jobs")).content.decode()
    assert "<script>alert(1)</script>" not in content and "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "<img src=x" not in content


def test_the_jobs_list_takes_a_constant_number_of_queries(buyer, django_assert_max_num_queries):
    for n in range(3):
        done = job(JobStatus.COMPLETED, name=f"Small {n}")
        deal_for(RecommendationFactory(job=done), n)
    with CaptureQueriesContext(connection) as few:
        assert buyer.get(reverse("campaigns:jobs")).status_code == 200
    for n in range(27):
        done = job(JobStatus.COMPLETED if n % 2 else JobStatus.RUNNING, name=f"Big {n}")
        if n % 2:
            deal_for(RecommendationFactory(job=done), 100 + n)
    with django_assert_max_num_queries(len(few.captured_queries)):
        content = buyer.get(reverse("campaigns:jobs")).content.decode()
    assert content.count('<tr id="job-') == 25
    assert len(few.captured_queries) <= 10


# --- New booking ------------------------------------------------------------------------------------------


def test_the_new_booking_form_labels_every_field(buyer):
    content = buyer.get(reverse("campaigns:job_new")).content.decode()
    for field, label in [
        ("id_name", "Campaign name"),
        ("id_other_objectives", "Other objectives"),
        ("id_budget", "Budget (USD)"),
        ("id_start_date", "Start date"),
        ("id_end_date", "End date"),
        ("id_max_cpm", "Max CPM (USD)"),
        ("id_target_cpm", "Target CPM (USD)"),
        ("id_audience_age", "Audience age"),
        ("id_audience_geo", "Audience geography"),
        ("id_audience_interests", "Audience interests"),
        ("id_auto_approve", "Approve the recommendations automatically"),
    ]:
        assert f'<label for="{field}">{label}</label>' in content
    assert "<legend>Objectives</legend>" in content and "<legend>Channels</legend>" in content
    assert 'type="date" name="start_date"' in content
    assert 'value="dooh"' in content and 'name="csrfmiddlewaretoken"' in content
    assert 'name="submission_id"' in content


def test_a_valid_brief_creates_a_job_and_goes_to_it(buyer):
    response = buyer.post(reverse("campaigns:job_new"), valid_brief(auto_approve="on"))
    created = BookingJob.objects.select_related("campaign").get()
    assert response.status_code == 302
    assert response["Location"] == reverse("campaigns:job_detail", args=[created.pk])
    campaign = created.campaign
    assert campaign.name == "Holiday push" and campaign.budget_micros == 60_000 * 1_000_000
    assert campaign.objectives == ["brand awareness", "store visits", "sales"]
    assert campaign.channels == ["branding", "ctv"]
    assert campaign.kpis == {"max_cpm_usd": 25.0, "target_cpm_usd": 18.5}
    assert campaign.target_audience == {"age": "25-54", "geo": ["US", "CA"], "interests": ["sports", "travel"]}
    assert campaign.brief["name"] == "Holiday push" and created.auto_approve is True
    assert created.status == JobStatus.PENDING
    page = buyer.get(response["Location"]).content.decode()
    assert "Holiday push" in page and "submitted" in page


def test_the_form_takes_a_pacing_curve_and_defaults_to_even(buyer):
    buyer.post(reverse("campaigns:job_new"), valid_brief(pacing="back_loaded"))
    buyer.post(reverse("campaigns:job_new"), valid_brief(name="Plain"))
    curves = dict(Campaign.objects.values_list("name", "pacing_curve"))
    assert curves == {"Holiday push": "back_loaded", "Plain": "even"}
    refused = buyer.post(reverse("campaigns:job_new"), valid_brief(name="Odd", pacing="whenever"))
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()


def test_the_form_takes_a_negotiation_strategy_or_leaves_it_to_the_setting(buyer):
    buyer.post(reverse("campaigns:job_new"), valid_brief(negotiation="adaptive"))
    buyer.post(reverse("campaigns:job_new"), valid_brief(name="Plain"))
    strategies = dict(Campaign.objects.values_list("name", "negotiation_strategy"))
    assert strategies == {"Holiday push": "adaptive", "Plain": ""}
    refused = buyer.post(reverse("campaigns:job_new"), valid_brief(name="Odd", negotiation="haggle"))
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()


def test_a_brief_without_channels_or_kpis_lets_the_agent_choose(buyer):
    data = valid_brief(channels=None, max_cpm=None, target_cpm=None, audience_age=None, audience_geo=None)
    data.pop("audience_interests")
    assert buyer.post(reverse("campaigns:job_new"), data).status_code == 302
    campaign = Campaign.objects.get()
    assert campaign.channels == [] and campaign.kpis == {} and campaign.target_audience == {}


def test_submitting_the_same_form_twice_creates_one_job(buyer):
    data = valid_brief()
    first = buyer.post(reverse("campaigns:job_new"), data)
    second = buyer.post(reverse("campaigns:job_new"), data)
    assert BookingJob.objects.count() == 1 and first["Location"] == second["Location"]
    changed = buyer.post(reverse("campaigns:job_new"), {**data, "name": "Changed"})
    assert changed.status_code == 200 and b"already submitted" in changed.content
    assert BookingJob.objects.count() == 1


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("name", "", "This field is required."),
        ("name", "x" * 101, "at most 100 characters"),
        ("objectives", [], "at least one objective"),
        ("budget", "0", "greater than or equal to 0.01"),
        ("budget", "-5", "greater than or equal to 0.01"),
        ("budget", "100.123", "no more than 2 decimal places"),
        ("budget", "lots", "Enter an amount in dollars, e.g. 250,000 or $250,000.50."),
        ("start_date", "2030-02-30", "Enter a valid date."),
        ("end_date", "", "This field is required."),
        ("end_date", "BEFORE_START", "The end date must be on or after the start date."),
        ("end_date", "PAST", "The end date is in the past"),
        ("channels", ["radio"], "Select a valid choice."),
        ("max_cpm", "cheap", "Enter an amount in dollars"),
        ("max_cpm", "0", "Enter a max CPM above $0 and at most $10,000."),
        ("target_cpm", "20000", "Enter a target CPM above $0 and at most $10,000."),
    ],
)
def test_each_invalid_field_shows_its_error_next_to_it_and_creates_no_job(buyer, field, value, message):
    today = timezone.now().date()
    data = valid_brief()
    if value == "BEFORE_START":
        data["start_date"] = (today + timedelta(days=10)).isoformat()
        value = (today + timedelta(days=9)).isoformat()
    elif value == "PAST":
        data["start_date"] = (today - timedelta(days=20)).isoformat()
        value = (today - timedelta(days=1)).isoformat()
    if field == "objectives":
        data["other_objectives"] = " , "
    data[field] = value
    response = buyer.post(reverse("campaigns:job_new"), data)
    content = response.content.decode()
    assert response.status_code == 200
    assert BookingJob.objects.count() == 0
    error_list = content.split(f'id="id_{field}_error"', 1)
    assert len(error_list) == 2, f"no error list next to {field}"
    assert message in error_list[1].split("</ul>", 1)[0]
    assert "no booking was made" in content


def test_the_new_booking_form_is_csrf_protected():
    strict = Client(enforce_csrf_checks=True)
    user_create(username="mia", email="", password=PASSWORD, role=Role.MEDIA_BUYER)
    strict.login(username="mia", password=PASSWORD)
    response = strict.post(reverse("campaigns:job_new"), valid_brief())
    assert response.status_code == 403 and BookingJob.objects.count() == 0


def test_an_empty_brief_marks_every_required_field_at_once(buyer):
    content = buyer.post(reverse("campaigns:job_new"), {}).content.decode()
    for field in ("name", "objectives", "budget", "start_date", "end_date"):
        assert f'id="id_{field}_error"' in content, field
    assert BookingJob.objects.count() == 0


@pytest.mark.parametrize("typed", ["$250,000", "250,000", "USD 250,000.00", "250 000"])
def test_a_budget_typed_as_people_write_it_makes_a_job(client, typed):
    from buyer.accounts.models import Role
    from tests.dashboard._admin import signed_in

    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    start = timezone.now().date() + timedelta(days=5)
    response = client.post(
        reverse("campaigns:job_new"),
        {
            "name": "Typed budget",
            "objectives": ["reach"],
            "budget": typed,
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(days=10)).isoformat(),
            "max_cpm": "$30",
        },
    )
    assert response.status_code == 302
    job = BookingJob.objects.get(campaign__name="Typed budget")
    assert job.campaign.budget == 250_000 and job.campaign.kpis["max_cpm_usd"] == 30.0


def test_a_budget_that_cannot_be_read_keeps_what_was_typed(client):
    from buyer.accounts.models import Role
    from tests.dashboard._admin import signed_in

    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    page = client.post(reverse("campaigns:job_new"), {"name": "x", "budget": "about 250k"}).content.decode()
    assert 'value="about 250k"' in page and "Enter an amount in dollars" in page


def test_the_jobs_list_shows_flight_channels_booked_and_the_nearest_deadline_first(client):
    from tests.dashboard._admin import signed_in
    from tests.factories import BookedDealFactory, BookingJobFactory, RecommendationFactory

    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    now = timezone.now()
    later = BookingJobFactory(
        status="awaiting_approval", campaign__name="Later", approval_expires_at=now + timedelta(hours=40)
    )
    soon = BookingJobFactory(
        status="awaiting_approval", campaign__name="Soon", approval_expires_at=now + timedelta(hours=2)
    )
    done = BookingJobFactory(status="completed", stage="done", campaign__name="Done")
    line = RecommendationFactory(job=done, cost_micros=12_345_000_000)
    BookedDealFactory(recommendation=line, job=done, cost_micros=12_345_000_000)

    html = client.get(reverse("campaigns:jobs")).content.decode()
    table = html.split('id="jobs-table"', 1)[1]
    assert table.index(">Soon<") < table.index(">Later<") < table.index(">Done<")
    assert '<th scope="col">Next</th>' in table and "$12,345" in table
    assert later.pk and soon.pk


def test_jobs_deals_and_a_jobs_lines_download_as_csv_with_the_filters_kept(client):
    import csv
    import io

    from tests.dashboard._admin import signed_in
    from tests.factories import BookedDealFactory, BookingJobFactory, RecommendationFactory

    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    done = BookingJobFactory(status="completed", stage="done", campaign__name="=HYPERLINK(evil)")
    line = RecommendationFactory(job=done, cost_micros=5_000_000_000, product_name="Run of site")
    BookedDealFactory(recommendation=line, job=done, cost_micros=5_000_000_000, deal_id="DEAL-CSV1")
    BookingJobFactory(status="failed", stage="done", campaign__name="Failed one")

    jobs = client.get(reverse("campaigns:jobs"), {"status": "completed", "format": "csv"})
    assert jobs["Content-Type"].startswith("text/csv") and "attachment" in jobs["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(jobs.content.decode())))
    assert rows[0][:3] == ["job_id", "campaign", "status"] and len(rows) == 2  # the filter kept
    assert rows[1][1] == "'=HYPERLINK(evil)" and rows[1][4] == "5000"  # a formula is quoted harmless

    deals = list(csv.reader(io.StringIO(client.get(reverse("campaigns:deals"), {"format": "csv"}).content.decode())))
    assert deals[1][0] == "DEAL-CSV1" and deals[1][4] == "Run of site"
    lines = client.get(reverse("campaigns:job_lines_csv", args=[done.pk])).content.decode()
    assert "Run of site" in lines and lines.startswith("recommendation_id,priority")
    page = client.get(reverse("campaigns:jobs"), {"status": "completed"}).content.decode()
    assert "status=completed&amp;format=csv" in page


def test_jobs_filter_by_flight_dates_and_deals_by_campaign_in_the_url(client):
    from datetime import date

    from tests.dashboard._admin import signed_in
    from tests.factories import BookedDealFactory, BookingJobFactory, CampaignFactory, RecommendationFactory

    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    spring = BookingJobFactory(
        campaign=CampaignFactory(name="Spring", start_date=date(2031, 3, 1), end_date=date(2031, 3, 31))
    )
    BookingJobFactory(campaign=CampaignFactory(name="Autumn", start_date=date(2031, 9, 1), end_date=date(2031, 9, 30)))
    html = client.get(
        reverse("campaigns:jobs"), {"flight_from": "2031-03-15", "flight_to": "2031-04-30"}
    ).content.decode()
    assert ">Spring<" in html and ">Autumn<" not in html

    line = RecommendationFactory(job=spring)
    BookedDealFactory(recommendation=line, job=spring, deal_id="DEAL-SPRING")
    other = BookingJobFactory(campaign=CampaignFactory(name="Other"))
    BookedDealFactory(recommendation=RecommendationFactory(job=other), job=other, deal_id="DEAL-OTHER")
    deals = client.get(reverse("campaigns:deals"), {"campaign": "spri"}).content.decode()
    assert "DEAL-SPRING" in deals and "DEAL-OTHER" not in deals
