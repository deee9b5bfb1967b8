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
from buyer.events.models import Event, EventType
from buyer.events.services import event_emit
from campaigns.models import BookedDeal, BookingJob, JobStage, JobStatus, Recommendation, RecommendationStatus
from tests.factories import BookedDealFactory, BookingJobFactory, CampaignFactory, RecommendationFactory

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass-word"
HX = {"HTTP_HX_REQUEST": "true"}
ALLOCATIONS = {
    "branding": {"channel": "branding", "budget": "36000.00", "percentage": "60.00", "rationale": "reach at low CPM"},
    "ctv": {"channel": "ctv", "budget": "24000.00", "percentage": "40.00", "rationale": "premium video"},
}


@pytest.fixture
def buyer(client):
    user_create(username="mia", email="mia@example.com", password=PASSWORD, role=Role.MEDIA_BUYER)
    client.login(username="mia", password=PASSWORD)
    return client


def awaiting_job(*, budget: int = 60_000, costs: tuple[int, ...] = (30_000, 24_500, 3_600)) -> BookingJob:
    job = BookingJobFactory(
        campaign=CampaignFactory(name="Holiday push", budget_micros=budget * 1_000_000),
        status=JobStatus.AWAITING_APPROVAL,
        stage=JobStage.APPROVAL,
        progress=0.85,
        budget_allocations=ALLOCATIONS,
    )
    for priority, cost in enumerate(costs, start=1):
        RecommendationFactory(job=job, priority=priority, cost_micros=cost * 1_000_000, product_name=f"Line {priority}")
    return job


def lines(job: BookingJob) -> list[Recommendation]:
    return list(job.recommendations.order_by("priority"))


def book(line: Recommendation, n: int, **fields) -> BookedDeal:
    activation = {"ttd": f"TTD deal DEAL-{n:04d}", "dv360": "DV360 text", "xandr": "Xandr text"}
    return BookedDealFactory(
        recommendation=line, deal_id=f"DEAL-{n:04d}", **{"activation_instructions": activation, **fields}
    )


def flow(job: BookingJob) -> dict:
    return {"flow_id": str(job.pk), "campaign_id": str(job.campaign_id)}


# --- The page ---------------------------------------------------------------------------------------------


def test_the_job_detail_shows_header_budget_split_and_recommendations(buyer):
    job = awaiting_job()
    first = lines(job)[0]
    Recommendation.objects.filter(pk=first.pk).update(
        base_cpm_micros=16_670_000,
        cpm_micros=15_000_000,
        buyer_tier="agency",
        publisher="pub-1",
        format="banner",
        pricing={"tier_discount_pct": 10.0, "volume_discount_pct": 0},
        quote_expires_at=timezone.now() + timedelta(hours=2),
        rationale="Cheapest reach on the homepage.",
    )
    content = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert "<h1>Holiday push</h1>" in content and 'id="job-budget">$60,000</span>' in content
    assert 'class="badge badge-awaiting_approval" id="job-status">awaiting approval</span>' in content
    assert "Branding, CTV" in content  # channels by their names, not their codes
    # the chart is an accessible image with a data table beside it
    assert '<svg class="chart" id="allocation-chart" role="img"' in content
    assert '<title id="allocation-chart-title">Budget split by channel</title>' in content
    assert '<table id="allocation-table"' in content and "reach at low CPM" in content and "$36,000" in content
    # recommendations
    assert '<table id="recommendations-table" class="compact">' in content and "Recommendations (3)" in content
    assert content.count('type="checkbox" name="line"') == 3
    assert (
        "$15.00" in content and "list $16.67</span>" in content and "tier \u221210%" in content and "$30,000" in content
    )
    assert "<summary>why" in content and "Cheapest reach on the homepage." in content
    assert f"<code>{first.quote_id}</code>" in content and "Quote expires" in content
    # Nothing starts ticked: "Approve selected" is not a one-click "Approve all".
    assert 'id="approve-selected" disabled>Approve selected ($0)</button>' in content
    assert 'id="approve-all">Approve all ($58,100)</button>' in content and " checked" not in content
    assert 'id="approve-all">Approve all ($58,100)</button>' in content
    assert 'id="reject-all">Reject all</button>' in content
    assert "Selected: <strong" in content and 'of <span class="num">$60,000</span> budget' in content
    assert f'action="{reverse("campaigns:job_approve_confirm", args=[job.pk])}"' in content


def test_an_unknown_job_is_404_on_every_job_page(buyer):
    missing = uuid.uuid4()
    for name in ("job_detail", "job_status", "job_timeline", "job_selection", "job_approve_confirm"):
        assert buyer.get(reverse(f"campaigns:{name}", args=[missing]), **HX).status_code == 404, name
    assert buyer.post(reverse("campaigns:job_approve", args=[missing]), {"action": "all"}).status_code == 404
    assert buyer.get("/app/jobs/not-a-uuid/").status_code == 404


def test_finished_jobs_show_errors_deals_and_no_approval_controls(buyer):
    job = awaiting_job()
    first, second, third = lines(job)
    book(first, 1)
    Recommendation.objects.filter(pk=first.pk).update(status=RecommendationStatus.BOOKED)
    Recommendation.objects.filter(pk=second.pk).update(
        status=RecommendationStatus.BOOKING_FAILED, status_reason="price rose"
    )
    Recommendation.objects.filter(pk=third.pk).update(
        status=RecommendationStatus.REJECTED, status_reason="not approved"
    )
    BookingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.COMPLETED, stage=JobStage.DONE, progress=1.0, errors=["Seller C timed out after 10 s"]
    )
    content = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert 'type="checkbox"' not in content and "Approve selected" not in content
    assert '<ul id="job-errors"' in content and "Seller C timed out after 10 s" in content
    assert '<table id="booked-deals-table">' in content and "DEAL-0001" in content
    assert reverse("campaigns:deal_detail", args=[BookedDeal.objects.get().pk]) in content
    assert "The Trade Desk" in content and "TTD deal DEAL-0001" in content
    assert "price rose" in content and "booking failed" in content
    assert f'hx-get="{reverse("campaigns:job_status", args=[job.pk])}' not in content  # nothing polls


def test_seller_text_on_the_job_detail_is_escaped(buyer):
    job = awaiting_job(costs=(1_000,))
    Recommendation.objects.filter(job=job).update(
        product_name="<script>alert('p')</script>",
        seller_name="<b>Seller</b>",
        rationale="<img src=x onerror=alert(1)>",
        pricing={"floor_cpm": "<i>5</i>"},
    )
    BookingJob.objects.filter(pk=job.pk).update(errors=["<script>alert('e')</script>"])
    content = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert "<script>alert(" not in content and "<img src=x" not in content and "<b>Seller</b>" not in content
    assert "&lt;script&gt;alert(&#x27;p&#x27;)&lt;/script&gt;" in content
    assert "<i>5</i>" not in content  # a floor that is not a number is not shown at all


def test_a_floor_cpm_reads_as_money(buyer):
    job = awaiting_job(costs=(1_000,))
    Recommendation.objects.filter(job=job).update(pricing={"floor_cpm": "2.500000", "price_type": "floor_only"})
    content = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert "<dt>Floor CPM</dt><dd>$2.50</dd>" in content and "2.500000" not in content


def test_the_timeline_lists_events_newest_first_with_readable_names(buyer):
    job = awaiting_job()
    event_emit(EventType.CAMPAIGN_CREATED, **flow(job), payload={"name": "Holiday push"})
    event_emit(EventType.RESEARCH_STARTED, **flow(job), payload={"sellers": ["A", "B", "C"]})
    event_emit(EventType.APPROVAL_REQUESTED, **flow(job), payload={"count": 3})
    event_emit(EventType.CAMPAIGN_CREATED, flow_id=str(uuid.uuid4()), payload={"name": "Another job"})
    content = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    timeline = content.split('<div id="timeline"', 1)[1]
    assert timeline.index("Awaiting approval") < timeline.index("Sellers searched") < timeline.index("Brief received")
    assert "3 sellers" in timeline and "Another job" not in timeline
    assert f"{reverse('events:feed')}?flow_id={job.pk}" in timeline


# --- Live parts ---------------------------------------------------------------------------------------------


def test_a_running_job_polls_its_header_and_timeline(buyer):
    job = BookingJobFactory(status=JobStatus.RUNNING, stage=JobStage.RESEARCH, progress=0.4)
    content = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    status_url = reverse("campaigns:job_status", args=[job.pk])
    assert f'hx-get="{status_url}?seen=running" hx-trigger="every 2s" hx-swap="outerHTML"' in content
    assert f'hx-get="{reverse("campaigns:job_timeline", args=[job.pk])}" hx-trigger="every 2s"' in content
    assert "No recommendations yet" in content and "The agent has not split the budget yet." in content


def test_the_status_partial_is_a_fragment_that_keeps_polling_while_running(buyer):
    job = BookingJobFactory(status=JobStatus.RUNNING, stage=JobStage.RESEARCH, progress=0.4)
    response = buyer.get(reverse("campaigns:job_status", args=[job.pk]), {"seen": "running"}, **HX)
    content = response.content.decode()
    assert response.status_code == 200 and "HX-Refresh" not in response
    assert content.lstrip().startswith('<header id="job-header"') and "<html" not in content
    assert 'hx-trigger="every 2s"' in content and "40%" in content


def test_the_status_partial_reloads_the_page_when_the_status_moved_on(buyer):
    job = awaiting_job()
    response = buyer.get(reverse("campaigns:job_status", args=[job.pk]), {"seen": "running"}, **HX)
    assert response.status_code == 200 and response["HX-Refresh"] == "true"


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_the_status_and_timeline_partials_of_a_finished_job_answer_286(buyer, status):
    job = BookingJobFactory(status=status, stage=JobStage.DONE, progress=1.0, failure_reason="stopped")
    event_emit(EventType.JOB_FAILED, **flow(job), payload={"reason": "stopped"})
    header = buyer.get(reverse("campaigns:job_status", args=[job.pk]), {"seen": status}, **HX)
    assert header.status_code == 286 and "HX-Refresh" not in header
    assert header.content.decode().lstrip().startswith("<header") and b"hx-trigger" not in header.content
    timeline = buyer.get(reverse("campaigns:job_timeline", args=[job.pk]), **HX)
    content = timeline.content.decode()
    assert timeline.status_code == 286 and content.lstrip().startswith('<div id="timeline"')
    assert "hx-trigger" not in content and "Job failed" in content and "<html" not in content


def test_the_timeline_partial_of_a_running_job_keeps_polling(buyer):
    job = BookingJobFactory(status=JobStatus.RUNNING, stage=JobStage.RESEARCH)
    event_emit(EventType.BUDGET_ALLOCATED, **flow(job), payload={"allocations": ALLOCATIONS})
    response = buyer.get(reverse("campaigns:job_timeline", args=[job.pk]), **HX)
    assert response.status_code == 200 and b'hx-trigger="every 2s"' in response.content
    assert b"Budget allocated" in response.content and b"2 channels" in response.content


def test_live_partials_without_htmx_send_people_to_the_job_page(buyer):
    job = awaiting_job()
    for name in ("job_status", "job_timeline", "job_selection"):
        response = buyer.get(reverse(f"campaigns:{name}", args=[job.pk]))
        assert response.status_code == 302 and response["Location"] == reverse("campaigns:job_detail", args=[job.pk])


def test_the_selection_partial_totals_the_ticked_lines_on_the_server(buyer):
    job = awaiting_job()
    first, second, _ = lines(job)
    response = buyer.get(
        reverse("campaigns:job_selection", args=[job.pk]), {"chosen": "1", "line": [first.pk, second.pk]}, **HX
    )
    content = response.content.decode()
    assert response.status_code == 200 and content.lstrip().startswith('<div id="selection-summary"')
    assert 'id="selected-total">$54,500</strong>' in content and "Approve selected ($54,500)" in content
    assert "Approve all ($58,100)" in content and "<html" not in content
    empty = buyer.get(reverse("campaigns:job_selection", args=[job.pk]), {"chosen": "1"}, **HX).content.decode()
    assert 'value="selected" class="primary" id="approve-selected" disabled' in empty


def test_a_selection_over_budget_cannot_be_approved(buyer):
    job = awaiting_job(budget=50_000)
    everything = [r.pk for r in lines(job)]
    content = buyer.get(
        reverse("campaigns:job_detail", args=[job.pk]), {"chosen": "1", "line": everything}
    ).content.decode()
    assert "cost more than the budget" in content and 'id="approve-selected" disabled' in content
    confirm = buyer.get(reverse("campaigns:job_approve_confirm", args=[job.pk]), {"action": "all"}).content.decode()
    assert "cannot be approved" in confirm and 'id="confirm-button"' not in confirm


def test_after_a_partial_approval_the_rest_is_weighed_against_what_is_left_of_the_budget(buyer):
    # $30,000 booked and $24,500 approved of $60,000: $5,500 is left, so the $3,600 line fits and nothing more.
    job = awaiting_job(costs=(30_000, 24_500, 3_600, 4_000))
    booked, approved, small, large = lines(job)
    Recommendation.objects.filter(pk=booked.pk).update(status=RecommendationStatus.BOOKED)
    Recommendation.objects.filter(pk=approved.pk).update(status=RecommendationStatus.APPROVED)
    url = reverse("campaigns:job_selection", args=[job.pk])

    fits = buyer.get(url, {"chosen": "1", "line": [small.pk]}, **HX).content.decode()
    assert "$5,500</span> left to spend" in fits and 'id="committed-total">$54,500</span>' in fits
    assert 'id="approve-selected">Approve selected ($3,600)' in fits
    assert "Approve all remaining ($7,600)" in fits and "Reject the rest" in fits
    assert 'id="approve-all" disabled' in fits  # both lines together are $2,100 over what is left

    both = buyer.get(url, {"chosen": "1", "line": [small.pk, large.pk]}, **HX).content.decode()
    assert "cost more than what is left of the budget" in both and 'id="approve-selected" disabled' in both
    confirm = buyer.get(
        reverse("campaigns:job_approve_confirm", args=[job.pk]), {"action": "selected", "line": [small.pk, large.pk]}
    ).content.decode()
    assert "what is left of the budget" in confirm and 'id="confirm-button"' not in confirm


def test_a_finished_job_leaves_no_empty_approval_box(buyer):
    job = awaiting_job()
    BookingJob.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, stage=JobStage.DONE)
    content = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert '<div id="selection-summary" aria-live="polite">' in content and 'class="selection"' not in content


def test_the_detail_keeps_a_selection_sent_back_from_the_confirmation(buyer):
    job = awaiting_job()
    first = lines(job)[0]
    content = buyer.get(
        reverse("campaigns:job_detail", args=[job.pk]), {"chosen": "1", "line": [first.pk]}
    ).content.decode()
    assert content.count(" checked") == 1 and "Approve selected ($30,000)" in content


# --- Approving and rejecting through the confirmation ----------------------------------------------------------


def test_approving_selected_lines_asks_for_confirmation_with_the_total_then_books_them(buyer):
    job = awaiting_job()
    first, second, third = lines(job)
    confirm = buyer.get(
        reverse("campaigns:job_approve_confirm", args=[job.pk]),
        {"action": "selected_reject", "line": [first.pk, second.pk]},
    )
    content = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Approve 2 lines for $54,500?" in content and "The other 1 line will be rejected." in content
    assert 'id="confirm-button">Confirm: approve and book for $54,500</button>' in content
    assert f'<input type="hidden" name="line" value="{first.pk}">' in content and "csrfmiddlewaretoken" in content
    assert Recommendation.objects.filter(status=RecommendationStatus.PENDING_APPROVAL).count() == 3  # nothing yet

    response = buyer.post(
        reverse("campaigns:job_approve", args=[job.pk]), {"action": "selected_reject", "line": [first.pk, second.pk]}
    )
    assert response.status_code == 302 and response["Location"] == reverse("campaigns:job_detail", args=[job.pk])
    statuses = dict(Recommendation.objects.values_list("pk", "status"))
    assert statuses == {
        first.pk: RecommendationStatus.APPROVED,
        second.pk: RecommendationStatus.APPROVED,
        third.pk: RecommendationStatus.REJECTED,
    }
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.stage == JobStage.BOOK
    granted = Event.objects.get(event_type=EventType.APPROVAL_GRANTED)
    assert granted.payload["actor"] == "mia" and granted.payload["total_cost"] == "54500"
    page = buyer.get(response["Location"]).content.decode()
    assert "Approved 2 lines for $54,500" in page and "1 line rejected" in page


def test_approving_some_lines_leaves_the_others_for_later(buyer):
    job = awaiting_job()
    first, second, third = lines(job)
    confirm = buyer.get(
        reverse("campaigns:job_approve_confirm", args=[job.pk]), {"action": "selected", "line": [first.pk]}
    ).content.decode()
    assert 'id="confirm-waiting"' in confirm and "The other 2 lines stay awaiting your decision" in confirm
    assert "will be rejected" not in confirm

    response = buyer.post(reverse("campaigns:job_approve", args=[job.pk]), {"action": "selected", "line": [first.pk]})

    statuses = dict(Recommendation.objects.values_list("pk", "status"))
    assert statuses == {
        first.pk: RecommendationStatus.APPROVED,
        second.pk: RecommendationStatus.PENDING_APPROVAL,
        third.pk: RecommendationStatus.PENDING_APPROVAL,
    }
    assert not Event.objects.filter(event_type=EventType.APPROVAL_REJECTED).exists()
    page = buyer.get(response["Location"]).content.decode()
    assert "2 lines still wait for your decision" in page


def test_approve_all_confirms_the_total_then_approves_every_line(buyer):
    job = awaiting_job()
    confirm = buyer.get(reverse("campaigns:job_approve_confirm", args=[job.pk]), {"action": "all"}).content.decode()
    assert "Approve 3 lines for $58,100?" in confirm and 'name="action" value="all"' in confirm
    response = buyer.post(reverse("campaigns:job_approve", args=[job.pk]), {"action": "all"})
    assert response.status_code == 302
    assert set(Recommendation.objects.values_list("status", flat=True)) == {RecommendationStatus.APPROVED}


def test_reject_all_confirms_then_cancels_the_job(buyer):
    job = awaiting_job()
    confirm = buyer.get(reverse("campaigns:job_approve_confirm", args=[job.pk]), {"action": "reject"}).content.decode()
    assert "Reject all recommendations?" in confirm and 'id="confirm-button">Reject all 3 lines</button>' in confirm
    response = buyer.post(reverse("campaigns:job_approve", args=[job.pk]), {"action": "reject"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert set(Recommendation.objects.values_list("status", flat=True)) == {RecommendationStatus.REJECTED}
    assert "Rejected 3 lines; the job is cancelled." in buyer.get(response["Location"]).content.decode()


def test_a_stale_approval_becomes_a_message_not_an_error_page(buyer):
    job = awaiting_job()
    first = lines(job)[0]
    BookingJob.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, stage=JobStage.DONE)
    response = buyer.post(
        reverse("campaigns:job_approve", args=[job.pk]), {"action": "selected", "line": [first.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "Nothing was approved or rejected: Job is cancelled" in response.content.decode()
    assert Recommendation.objects.filter(status=RecommendationStatus.APPROVED).count() == 0
    confirm = buyer.get(reverse("campaigns:job_approve_confirm", args=[job.pk]), {"action": "all"}, follow=True)
    assert "there is nothing to approve now" in confirm.content.decode()


def test_approving_over_budget_through_a_crafted_post_is_refused_with_a_message(buyer):
    job = awaiting_job(budget=50_000)
    response = buyer.post(reverse("campaigns:job_approve", args=[job.pk]), {"action": "all"}, follow=True)
    assert response.status_code == 200 and "exceed the brief budget" in response.content.decode()
    assert Recommendation.objects.filter(status=RecommendationStatus.APPROVED).count() == 0


def test_lines_of_another_job_are_refused_with_a_message(buyer):
    job = awaiting_job()
    stranger = RecommendationFactory(product_name="Other job line")
    response = buyer.post(
        reverse("campaigns:job_approve", args=[job.pk]), {"action": "selected", "line": [stranger.pk]}, follow=True
    )
    assert response.status_code == 200 and "do not belong to this job" in response.content.decode()
    confirm = buyer.get(
        reverse("campaigns:job_approve_confirm", args=[job.pk]),
        {"action": "selected", "line": [stranger.pk]},
        follow=True,
    )
    assert "Select at least one line" in confirm.content.decode()


def test_confirming_nothing_or_an_unknown_action_goes_back_with_a_message(buyer):
    job = awaiting_job()
    url = reverse("campaigns:job_approve_confirm", args=[job.pk])
    assert "Select at least one line" in buyer.get(url, {"action": "selected"}, follow=True).content.decode()
    assert "Choose Approve selected" in buyer.get(url, {"action": "explode"}, follow=True).content.decode()
    posted = buyer.post(reverse("campaigns:job_approve", args=[job.pk]), {"action": "selected"}, follow=True)
    assert "choose the lines to approve" in posted.content.decode()
    assert Recommendation.objects.filter(status=RecommendationStatus.PENDING_APPROVAL).count() == 3


def test_approving_needs_a_post_with_a_csrf_token():
    strict = Client(enforce_csrf_checks=True)
    user_create(username="mia", email="", password=PASSWORD, role=Role.MEDIA_BUYER)
    strict.login(username="mia", password=PASSWORD)
    job = awaiting_job()
    url = reverse("campaigns:job_approve", args=[job.pk])
    assert strict.post(url, {"action": "all"}).status_code == 403
    assert strict.get(url, {"action": "all"}).status_code == 405
    job.refresh_from_db()
    assert job.status == JobStatus.AWAITING_APPROVAL
    # with the token from the confirmation page the same post goes through
    confirm = strict.get(reverse("campaigns:job_approve_confirm", args=[job.pk]), {"action": "all"})
    token = confirm.content.decode().split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    assert strict.post(url, {"action": "all", "csrfmiddlewaretoken": token}).status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


# --- Query counts --------------------------------------------------------------------------------------------


def detail_with(n_lines: int, n_deals: int, n_events: int) -> BookingJob:
    job = awaiting_job(costs=tuple(1_000 for _ in range(n_lines)))
    for n, line in enumerate(lines(job)[:n_deals]):
        book(line, n + 1)
    for n in range(n_events):
        event_emit(EventType.QUOTE_RECEIVED, **flow(job), payload={"seller": f"S{n}", "final_cpm": "10"})
    return job


def test_the_job_detail_takes_a_constant_number_of_queries(buyer, django_assert_max_num_queries):
    small = detail_with(1, 1, 1)
    with CaptureQueriesContext(connection) as few:
        assert buyer.get(reverse("campaigns:job_detail", args=[small.pk])).status_code == 200
    big = detail_with(12, 4, 30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        content = buyer.get(reverse("campaigns:job_detail", args=[big.pk])).content.decode()
    assert "Recommendations (12)" in content and "Booked deals (4)" in content
    assert len(few.captured_queries) <= 13  # one of them the lines' negotiation rounds


def test_approving_a_job_that_does_not_exist_is_the_pages_404(buyer):
    response = buyer.post(reverse("campaigns:job_approve", args=[uuid.uuid4()]), {"action": "all"})
    assert response.status_code == 404


def test_the_page_shows_the_brief_as_submitted_and_what_research_left_out_per_seller(buyer):
    job = awaiting_job()
    job.campaign.__class__.objects.filter(pk=job.campaign_id).update(
        kpis={"max_cpm_usd": 25, "viewability": 70},
        target_audience={"age": "25-54", "interests": ["sports", "news"]},
        formats=["video"],
        constraints={"exclude_publishers": ["pub-bad"]},
    )
    event_emit(
        EventType.RESEARCH_COMPLETED,
        **flow(job),
        payload={
            "quoted": 3,
            "selected": 3,
            "skipped": [
                {
                    "seller": "Acme",
                    "product": "Premium CTV",
                    "channel": "ctv",
                    "reason": "seller floor $40.00 is above the max CPM $25.00",
                },
                {
                    "seller": "Acme",
                    "product": "Run of site",
                    "channel": "branding",
                    "reason": "not enough impressions available",
                },
                {
                    "seller": "Globex",
                    "product": "Live sports",
                    "channel": "ctv",
                    "reason": "cost $9,000.00 would exceed the ctv budget $5,000.00",
                },
            ],
        },
    )
    page = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()

    brief = page.split('id="brief-as-submitted"', 1)[1].split("</details>", 1)[0]
    assert "<dt>Max CPM</dt><dd>$25</dd>" in brief and "interests: sports, news" in brief
    assert "<dt>Excluded publishers</dt><dd>pub-bad</dd>" in brief and "<dt>Formats</dt><dd>video</dd>" in brief
    left = page.split('id="left-out"', 1)[1].split("</section>", 1)[0]
    assert "(2 sellers)" in left and left.index("<h3>Acme</h3>") < left.index("<h3>Globex</h3>")
    assert "seller floor $40.00 is above the max CPM $25.00" in left


def test_a_job_is_cancelled_from_its_page_and_its_brief_booked_again(buyer):
    job = awaiting_job()
    page = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert 'id="cancel-job"' in page and f"?from={job.pk}" in page

    after = buyer.post(reverse("campaigns:job_cancel", args=[job.pk]), follow=True).content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and "The job is cancelled." in after
    again = buyer.post(reverse("campaigns:job_cancel", args=[job.pk]), follow=True).content.decode()
    assert "Nothing was cancelled" in again

    job.campaign.__class__.objects.filter(pk=job.campaign_id).update(
        brief={"name": "Holiday push", "objectives": ["reach"], "budget": "60000", "channels": ["ctv"]}
    )
    form = buyer.get(reverse("campaigns:job_new"), {"from": str(job.pk)}).content.decode()
    assert 'value="Holiday push (copy)"' in form and 'value="60,000"' in form and "set the flight dates" in form


def test_a_line_names_its_publisher_by_the_sellers_domain_and_keeps_the_id_in_reach(buyer):
    job = awaiting_job(costs=(30_000, 20_000))
    named, bare = lines(job)
    Recommendation.objects.filter(pk=named.pk).update(
        publisher="pub-meridian-news", publisher_domain="meridian.example"
    )
    Recommendation.objects.filter(pk=bare.pk).update(publisher="pub-no-domain", publisher_domain="")
    content = buyer.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert '<span class="muted" title="Publisher pub-meridian-news">meridian.example</span>' in content
    assert '<span class="muted">pub-no-domain</span>' in content  # a seller that names no site: its id, as given
