"""The flow's steps against sandbox sellers over real HTTP (served in a thread), step by step."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone

from buyer.events.models import Event
from buyer.sandbox import create_app
from buyer.sellers.models import Seller
from campaigns import booking, flow, services, tasks
from campaigns.models import BookedDeal, BookingJob, JobStage, JobStatus, Recommendation, RecommendationStatus
from campaigns.sweeper import jobs_sweep
from tests.conftest import free_port, serve_in_thread

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast(fast_sellers):
    """Sellers only from the database, answering fast or failing fast."""


def new_job(*, auto_approve=False, **brief) -> BookingJob:
    start = timezone.now().date() + timedelta(days=7)
    fields = dict(
        name="Holiday push",
        objectives=["brand awareness"],
        budget=Decimal(60000),
        start_date=start,
        end_date=start + timedelta(days=30),
        target_audience={"geo": ["US"]},
        kpis={},
        channels=["branding", "ctv"],
        formats=[],
        constraints={},
        brief={},
    )
    fields.update(brief)
    return services.job_create(auto_approve=auto_approve, **fields)


def run(job: BookingJob, *stages: JobStage) -> BookingJob:
    steps = {
        JobStage.PLAN: tasks.job_plan,
        JobStage.RESEARCH: tasks.job_research,
        JobStage.NEGOTIATE: tasks.job_negotiate,
        JobStage.BOOK: tasks.job_book,
    }
    for stage in stages:
        steps[stage].run(str(job.pk))
    job.refresh_from_db()
    return job


def sandbox_deals(app) -> dict:
    return app.state.sandbox._deals


def test_research_recommends_lines_priced_at_the_sellers_quoted_cpm(sandbox):
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    assert (job.status, job.stage) == (JobStatus.AWAITING_APPROVAL, JobStage.APPROVAL)
    assert set(job.budget_allocations) == {"branding", "ctv"}
    lines = list(job.recommendations.all())
    assert lines
    for line in lines:
        quote = httpx.get(f"{line.seller_url}/api/v1/quotes/{line.quote_id}").json()["quote"]
        assert line.cpm_micros == quote["pricing"]["final_cpm"]["amount_micros"]
        assert line.impressions == quote["terms"]["impressions"]
        assert line.cost_micros <= line.impressions * line.cpm_micros // 1000 + 10_000
        # The publisher is kept by its id (exclusions match it) and named by the domain the seller gives.
        product = httpx.get(f"{line.seller_url}/products/{line.product_id}").json()
        assert (line.publisher, line.publisher_domain) == (product["seller_organization_id"], product["domain"])
        assert line.publisher_domain
    assert sum(r.cost_micros for r in lines) <= job.campaign.budget_micros
    assert Event.objects.filter(flow_id=str(job.pk), event_type="approval.requested").exists()
    assert Event.objects.filter(flow_id=str(job.pk), event_type="quote.received").count() >= len(lines)


def test_a_product_without_a_price_is_skipped_with_a_reason(sandbox):
    job = run(new_job(channels=["dooh"]), JobStage.PLAN, JobStage.RESEARCH)
    assert job.status == JobStatus.FAILED
    skipped = Event.objects.get(flow_id=str(job.pk), event_type="research.completed").payload["skipped"]
    assert any("price on request" in s["reason"] for s in skipped)
    assert "No seller returned a usable quote" in job.failure_reason


def test_auto_approve_books_every_line_and_completes_with_seller_deal_ids(sandbox):
    job = run(new_job(auto_approve=True), JobStage.PLAN, JobStage.RESEARCH)
    assert job.stage == JobStage.BOOK
    job = run(job, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED and job.progress == 1.0
    deals = list(BookedDeal.objects.filter(job=job))
    assert deals and len(deals) == job.recommendations.count()
    assert {d.deal_id for d in deals} == set(sandbox_deals(sandbox))
    assert all(d.activation_instructions.get("ttd") for d in deals)
    assert Event.objects.filter(flow_id=str(job.pk), event_type="deal.booked").count() == len(deals)


class _Overlap:
    """Wraps the sellers' clients and notes how many bookings are at a seller at once, per seller and in all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.most_in_all = 0
        self.most_at_one = 0

    def wrap(self, client):
        overlap, real_book = self, client.book_deal

        def book_deal(**kwargs):
            key = client.base_url
            with overlap.lock:
                overlap.now[key] = overlap.now.get(key, 0) + 1
                overlap.most_in_all = max(overlap.most_in_all, sum(overlap.now.values()))
                overlap.most_at_one = max(overlap.most_at_one, overlap.now[key])
            try:
                time.sleep(0.2)  # a seller taking its time: long enough for the others to start
                return real_book(**kwargs)
            finally:
                with overlap.lock:
                    overlap.now[key] -= 1

        client.book_deal = book_deal
        return client


def test_lines_at_different_sellers_are_booked_at_once_and_one_at_a_time_at_each_seller(sandbox, monkeypatch):
    with serve_in_thread(create_app(catalog="default")) as second_url:
        Seller.objects.create(name="Second sandbox", base_url=second_url)
        job = run(new_job(auto_approve=True, budget=Decimal(120000)), JobStage.PLAN, JobStage.RESEARCH)
        lines = job.recommendations.all()
        assert len({line.seller_url for line in lines}) == 2 and lines.count() > 2
        overlap, real_client_for = _Overlap(), booking.client_for
        monkeypatch.setattr(booking, "client_for", lambda seller: overlap.wrap(real_client_for(seller)))
        job = run(job, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED
    assert BookedDeal.objects.filter(job=job).count() == lines.count()
    assert overlap.most_in_all == 2 and overlap.most_at_one == 1


def test_the_booking_step_run_twice_after_a_crash_makes_exactly_one_deal_per_line(sandbox, monkeypatch):
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    approved = job.recommendations.count()

    # First delivery: the seller books, then the worker dies before our record is written.
    real_record = booking.deal_record
    monkeypatch.setattr(booking, "deal_record", lambda **kw: (_ for _ in ()).throw(SystemExit("worker killed")))
    claimed = services.job_claim(str(job.pk), stage=JobStage.BOOK)
    with pytest.raises(SystemExit):
        booking.step_book(claimed)
    assert len(sandbox_deals(sandbox)) == 1 and BookedDeal.objects.count() == 0
    monkeypatch.setattr(booking, "deal_record", real_record)

    # Redelivery once the dead worker's lease has run out, and then a duplicate delivery.
    BookingJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    run(job, JobStage.BOOK)
    run(job, JobStage.BOOK)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert len(sandbox_deals(sandbox)) == approved
    assert BookedDeal.objects.filter(job=job).count() == approved


def test_recording_a_deal_again_for_its_line_returns_the_stored_deal_and_writes_nothing(sandbox, monkeypatch):
    from buyer.events.models import Event
    from campaigns.models import BudgetEntry, DealTransition, LedgerKind

    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    recorded = []
    real_record = booking.deal_record

    def keep(**kwargs):
        recorded.append(kwargs)
        return real_record(**kwargs)

    monkeypatch.setattr(booking, "deal_record", keep)
    job = run(job, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED and recorded
    counts = lambda: (  # noqa: E731
        BookedDeal.objects.count(),
        DealTransition.objects.count(),
        BudgetEntry.objects.filter(kind=LedgerKind.COMMIT).count(),
        Event.objects.filter(event_type="deal.booked").count(),
    )
    before = counts()
    for kwargs in recorded:
        line = Recommendation.objects.get(pk=kwargs["recommendation"].pk)
        again = services.deal_record(recommendation=line, deal=kwargs["deal"], flag=kwargs.get("flag", ""))
        assert again == BookedDeal.objects.get(recommendation=line)
    assert counts() == before
    # Each deal's history: quoted, accepted, booking requested, booked; in that order.
    deal = BookedDeal.objects.filter(job=job).first()
    assert [t.to_status for t in deal.transitions.order_by("at", "pk")] == ["quoted", "accepted", "booking", "booked"]


def _lease_runs_out(job: BookingJob) -> None:
    BookingJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_a_booking_killed_in_every_attempt_still_records_every_deal_the_seller_made(
    sandbox, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.JOB_MAX_ATTEMPTS = 2  # two lines recorded, one booked and lost by a kill, one never tried
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    assert job.recommendations.count() >= 4

    # Each attempt records one deal, has the seller book the next line, and dies before recording it.
    real_record, calls = booking.deal_record, []

    def record_then_die(**kw):
        calls.append(1)
        if len(calls) % 2 == 0:
            raise SystemExit("worker killed")
        return real_record(**kw)

    monkeypatch.setattr(booking, "deal_record", record_then_die)
    for _ in range(settings.JOB_MAX_ATTEMPTS):
        with pytest.raises(SystemExit):
            run(job, JobStage.BOOK)
        _lease_runs_out(job)
    monkeypatch.setattr(booking, "deal_record", real_record)
    assert len(sandbox_deals(sandbox)) == BookedDeal.objects.filter(job=job).count() + 1  # one made, not recorded

    # The watchdog finds the step stalled with its attempts spent, and resumes it to read back, not to fail.
    with django_capture_on_commit_callbacks() as dispatched:
        assert jobs_sweep() == {"resumed": 1, "failed": 0, "expired": 0, "cancelled": 0}
    assert len(dispatched) == 1
    job = run(job, JobStage.BOOK)  # the resumed step, as a worker receives it

    assert job.status == JobStatus.COMPLETED and job.finished_at is not None
    assert {d.deal_id for d in BookedDeal.objects.filter(job=job)} == set(sandbox_deals(sandbox))
    assert not job.recommendations.filter(status=RecommendationStatus.APPROVED).exists()
    released = job.recommendations.filter(status=RecommendationStatus.BOOKING_FAILED)
    assert released.exists() and all("holds no deal for quote" in r.status_reason for r in released)
    assert Event.objects.filter(flow_id=str(job.pk), event_type="booking.started", payload__recovery=True).exists()


def test_a_recovery_that_is_killed_too_ends_failed_but_releases_every_approved_line(sandbox, settings):
    settings.JOB_MAX_ATTEMPTS = 1
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    BookingJob.objects.filter(pk=job.pk).update(attempts=1 + services.BOOK_RECOVERY_ATTEMPTS)
    _lease_runs_out(job)

    assert jobs_sweep()["failed"] == 1

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "Stalled in step 'book'" in job.failure_reason
    assert not job.recommendations.filter(status=RecommendationStatus.APPROVED).exists()
    assert all(r.status_reason.startswith("not booked: Stalled") for r in job.recommendations.all())


def test_a_second_claim_of_a_leased_step_is_refused(sandbox):
    job = run(new_job(), JobStage.PLAN)
    assert services.job_claim(str(job.pk), stage=JobStage.RESEARCH) is not None
    assert services.job_claim(str(job.pk), stage=JobStage.RESEARCH) is None


def test_an_expired_quote_is_requoted_and_booked_when_the_price_did_not_rise(sandbox):
    job = run(new_job(channels=["ctv"]), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    state = sandbox.state.sandbox
    later = timezone.now() + timedelta(hours=30)
    state.clock = lambda: later
    job = run(job, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    line = job.recommendations.first()
    assert line.deal.quote_id == line.quote_id
    assert Event.objects.filter(
        flow_id=str(job.pk), event_type="quote.received", payload__requote_of__isnull=False
    ).exists()


def test_sellers_that_are_down_slow_or_garbage_do_not_stop_the_job(sandbox, settings):
    settings.SELLER_TIMEOUT_SECONDS = 0.5
    Seller.objects.create(name="Down", base_url=f"http://127.0.0.1:{free_port()}")
    with (
        serve_in_thread(create_app(catalog="performance", garbage=True)) as garbage_url,
        serve_in_thread(create_app(catalog="premium-video", latency_ms=1500)) as slow_url,
    ):
        Seller.objects.create(name="Garbage", base_url=garbage_url)
        Seller.objects.create(name="Slow", base_url=slow_url)
        job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    assert job.status == JobStatus.AWAITING_APPROVAL
    assert {r.seller_name for r in job.recommendations.all()} == {"Sandbox"}
    errors = " ".join(job.errors)
    for name in ("Down", "Garbage", "Slow"):
        assert f"Seller {name}" in errors
    failed = Event.objects.filter(flow_id=str(job.pk), event_type="seller.failed")
    assert {e.payload["seller"] for e in failed} == {"Down", "Garbage", "Slow"}


def test_a_job_that_books_nothing_ends_failed_with_a_reason(settings):
    settings.JOB_MAX_ATTEMPTS = 1
    app = create_app(catalog="default")
    with serve_in_thread(app) as url:
        Seller.objects.create(name="Sandbox", base_url=url)
        job = run(new_job(auto_approve=True), JobStage.PLAN, JobStage.RESEARCH)
    # The seller is gone by the time the lines are booked: retried, then read back (in vain), then failed.
    job = run(job, JobStage.BOOK)
    assert job.status == JobStatus.RUNNING  # a timed-out booking may exist: never failed blind
    for _ in range(1 + services.BOOK_RECOVERY_ATTEMPTS):
        _lease_runs_out(job)
        job = run(job, JobStage.BOOK)
        if job.is_terminal:
            break
    assert job.status == JobStatus.FAILED
    assert all("check with the seller" in r.status_reason for r in job.recommendations.all())
    assert job.failure_reason.startswith("No approved line could be booked")
    assert job.recommendations.filter(status=RecommendationStatus.BOOKING_FAILED).count() == job.recommendations.count()
    assert Event.objects.filter(flow_id=str(job.pk), event_type="booking.failed").exists()


def test_no_sellers_fails_the_job_with_a_reason():
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    assert job.status == JobStatus.FAILED and "No sellers are configured" in job.failure_reason


def test_max_cpm_keeps_every_line_under_the_ceiling(sandbox):
    job = run(
        new_job(kpis={"max_cpm_usd": 12}, channels=["branding", "performance", "ctv"]), JobStage.PLAN, JobStage.RESEARCH
    )
    assert job.recommendations.exists()
    assert all(r.cpm <= Decimal(12) for r in job.recommendations.all())


def test_a_cancelled_job_is_not_advanced_by_a_late_step(sandbox):
    job = run(new_job(), JobStage.PLAN)
    claimed = services.job_claim(str(job.pk), stage=JobStage.RESEARCH)
    services.job_cancel(job_id=str(job.pk))
    flow.step_research(claimed)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert not Recommendation.objects.filter(job=job).exists()


def test_the_sweeper_resumes_a_dead_workers_step_and_fails_it_after_the_attempt_limit(
    sandbox, settings, django_capture_on_commit_callbacks
):
    job = run(new_job(), JobStage.PLAN)
    services.job_claim(str(job.pk), stage=JobStage.RESEARCH)
    BookingJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks() as dispatched:
        assert jobs_sweep()["resumed"] == 1
    assert len(dispatched) == 1
    assert Event.objects.filter(flow_id=str(job.pk), event_type="job.resumed").exists()

    BookingJob.objects.filter(pk=job.pk).update(
        attempts=settings.JOB_MAX_ATTEMPTS, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert jobs_sweep()["failed"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "Stalled in step 'research'" in job.failure_reason


def test_the_sweeper_cancels_approvals_past_their_expiry(sandbox):
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    BookingJob.objects.filter(pk=job.pk).update(approval_expires_at=timezone.now() - timedelta(minutes=1))
    assert jobs_sweep()["expired"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and "Approval window" in job.failure_reason


def test_cancelling_during_booking_stops_before_the_next_line_and_releases_the_rest(sandbox, monkeypatch):
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    claimed = services.job_claim(str(job.pk), stage=JobStage.BOOK)
    real_record = booking.deal_record

    def record_then_cancel(**kw):
        booked = real_record(**kw)
        services.job_cancel(job_id=str(job.pk), reason="Brief withdrawn.")  # a user, while the step runs
        return booked

    monkeypatch.setattr(booking, "deal_record", record_then_cancel)
    booking.step_book(claimed)

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and "1 deal was already booked" in job.failure_reason
    assert BookedDeal.objects.filter(job=job).count() == 1 == len(sandbox_deals(sandbox))
    assert not job.recommendations.filter(status=RecommendationStatus.APPROVED).exists()
    released = job.recommendations.filter(status=RecommendationStatus.BOOKING_FAILED)
    assert released.count() == job.recommendations.count() - 1
    assert all(r.status_reason.startswith("not booked: Brief withdrawn. Cancelled during booking") for r in released)


def test_the_sweeper_finishes_a_cancel_the_dead_booking_step_never_saw(sandbox, django_capture_on_commit_callbacks):
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    services.job_claim(str(job.pk), stage=JobStage.BOOK)
    services.job_cancel(job_id=str(job.pk), reason="Brief withdrawn.")  # the step holds its lease: only flagged
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested
    _lease_runs_out(job)  # the worker died before it looked at the flag

    # The dead step may have booked: the watchdog resumes it, and it reads back before ending the job cancelled.
    with django_capture_on_commit_callbacks() as dispatched:
        assert jobs_sweep()["resumed"] == 1
    assert len(dispatched) == 1
    job = run(job, JobStage.BOOK)

    assert job.status == JobStatus.CANCELLED and "Brief withdrawn." in job.failure_reason
    assert Event.objects.filter(flow_id=str(job.pk), event_type="job.cancelled").count() == 1
    assert not job.recommendations.filter(status=RecommendationStatus.APPROVED).exists()
    finished = job.finished_at
    with pytest.raises(services.JobStateError):
        services.job_cancel(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.finished_at == finished  # set once


def test_the_sweeper_redispatches_a_step_whose_message_was_lost(sandbox, settings, django_capture_on_commit_callbacks):
    job = new_job()  # pending, its plan task sent to nowhere
    BookingJob.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.JOB_STALL_SECONDS + 1)
    )
    with django_capture_on_commit_callbacks() as dispatched:
        assert jobs_sweep()["resumed"] == 1
    assert len(dispatched) == 1
    assert jobs_sweep()["resumed"] == 0  # touched: not sent again before the task runs
    job = run(job, JobStage.PLAN)
    assert job.stage == JobStage.RESEARCH


# --- a seller that books other terms than approved ------------------------------------------------------------


@pytest.mark.parametrize(
    ("drift", "what"), [("overbook_pct", "impressions (approved"), ("overprice_pct", "CPM (approved")]
)
def test_a_deal_booked_beyond_the_approved_line_is_held_not_booked_and_stops_auto_approval(sandbox, drift, what):
    setattr(sandbox.state.sandbox, drift, Decimal(20))
    job = run(new_job(auto_approve=True), JobStage.PLAN, JobStage.RESEARCH)
    lines = job.recommendations.count()
    assert lines >= 2 and len({r.seller_url for r in job.recommendations.all()}) == 1

    job = run(job, JobStage.BOOK)

    (held,) = BookedDeal.objects.filter(job=job)
    assert held.status == "booking" and what in held.flag
    first = held.recommendation
    assert (first.status, first.status_reason) == (RecommendationStatus.FLAGGED, held.flag)
    event = Event.objects.get(flow_id=str(job.pk), event_type="deal.price_mismatch")
    assert event.deal_id == held.deal_id and event.payload["approved"]["impressions"] == first.impressions
    assert not Event.objects.filter(flow_id=str(job.pk), event_type="deal.booked").exists()
    # The seller's other lines were not booked on auto-approval: the job now waits for a person.
    assert len(sandbox_deals(sandbox)) == 1
    assert (job.status, job.stage) == (JobStatus.AWAITING_APPROVAL, JobStage.APPROVAL)
    waiting = job.recommendations.filter(status=RecommendationStatus.PENDING_APPROVAL)
    assert waiting.count() == lines - 1
    assert all(r.status_reason.startswith("auto-approval stopped: ") for r in waiting)
    assert job.approval_expires_at is not None


def test_a_seller_within_the_tolerance_books_as_usual(sandbox, settings):
    settings.BOOKING_TOLERANCE_PCT = Decimal(25)
    sandbox.state.sandbox.overbook_pct = Decimal(20)
    job = run(new_job(auto_approve=True), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED
    assert not BookedDeal.objects.filter(job=job).exclude(flag="").exists()


def test_a_held_deal_is_accepted_within_budget_or_refused_by_a_person(sandbox):
    sandbox.state.sandbox.overprice_pct = Decimal(10)
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    job = run(job, JobStage.BOOK)
    held = list(BookedDeal.objects.filter(job=job).order_by("pk"))
    assert len(held) == job.recommendations.count() and all(d.status == "booking" for d in held)
    assert job.status == JobStatus.COMPLETED  # a person approved every line: each was tried, each is held

    accepted = services.deal_flag_resolve(deal_pk=held[0].pk, accept=True, actor="ada")
    refused = services.deal_flag_resolve(deal_pk=held[1].pk, accept=False, actor="ada", note="asked to cancel")

    assert (accepted.status, refused.status) == ("booked", "failed")
    assert accepted.recommendation.__class__.objects.get(pk=held[0].recommendation_id).status == "booked"
    history = list(held[1].transitions.values_list("to_status", "actor", "reason"))
    last = history[-1]
    assert last[:2] == ("failed", "ada")
    assert "the seller is to cancel deal" in last[2] and "asked to cancel" in last[2]
    with pytest.raises(services.DealTransitionError, match="only a deal held for a decision"):
        services.deal_flag_resolve(deal_pk=held[0].pk, accept=True, actor="ada")
    with pytest.raises(services.DealNotFound):
        services.deal_flag_resolve(deal_pk=999_999, accept=True, actor="ada")


def test_accepting_a_held_deal_that_no_longer_fits_the_budget_is_refused(sandbox):
    sandbox.state.sandbox.overprice_pct = Decimal(10)
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    job = run(job, JobStage.BOOK)
    deals = list(BookedDeal.objects.filter(job=job).order_by("pk"))
    job.campaign.__class__.objects.filter(pk=job.campaign_id).update(budget_micros=deals[0].cost_micros - 1)

    with pytest.raises(services.DealTransitionError, match=r"cannot be accepted: .*budget"):
        services.deal_flag_resolve(deal_pk=deals[0].pk, accept=True, actor="ada")
    deals[0].refresh_from_db()
    assert deals[0].status == "booking"


def test_accepting_a_held_deal_above_the_per_line_maximum_is_refused(sandbox, settings):
    sandbox.state.sandbox.overprice_pct = Decimal(10)
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    job = run(job, JobStage.BOOK)
    deal = BookedDeal.objects.filter(job=job).order_by("pk").first()
    settings.MAX_LINE_USD = deal.cost - Decimal("0.01")

    with pytest.raises(services.DealTransitionError, match=r"cannot be accepted: .*per-line maximum"):
        services.deal_flag_resolve(deal_pk=deal.pk, accept=True, actor="ada")
    deal.refresh_from_db()
    assert deal.held


# --- negotiation against the sandbox seller -------------------------------------------------------------------


def negotiate_all(job: BookingJob) -> BookingJob:
    for _ in range(12):
        job.refresh_from_db()
        if job.stage != JobStage.NEGOTIATE:
            break
        _lease_runs_out(job)
        run(job, JobStage.NEGOTIATE)
    job.refresh_from_db()
    return job


def test_quotes_above_the_target_are_negotiated_round_by_round_and_the_rounds_match_the_sellers(sandbox):
    job = run(new_job(kpis={"target_cpm_usd": 5, "max_cpm_usd": 60}), JobStage.PLAN, JobStage.RESEARCH)
    assert job.stage == JobStage.NEGOTIATE
    negotiating = list(job.recommendations.filter(negotiation_status="active"))
    assert negotiating

    job = negotiate_all(job)

    assert (job.status, job.stage) == (JobStatus.AWAITING_APPROVAL, JobStage.APPROVAL)
    state = sandbox.state.sandbox
    for line in job.recommendations.exclude(negotiation_status=""):
        ours = list(line.negotiation_rounds.all())
        theirs = state._negotiations[state._negotiation_by_quote[line.quote_id]].rounds
        # Message for message, the same actions and prices as the seller recorded them.
        assert [(r.seller_action, r.buyer_price, r.seller_price) for r in ours] == [
            (
                t["action"],
                Decimal(t["buyer_price"]["amount_micros"]) / 1_000_000,
                Decimal(t["seller_price"]["amount_micros"]) / 1_000_000,
            )
            for t in theirs
        ]
        assert line.negotiation_status in {"agreed", "walked_away", "ended"} and line.negotiation_outcome
        if line.negotiation_status == "agreed":
            assert line.cpm_micros < line.quoted_cpm_micros
    agreed = job.recommendations.filter(negotiation_status="agreed")
    assert agreed.exists()
    kinds = set(Event.objects.filter(flow_id=str(job.pk)).values_list("event_type", flat=True))
    assert {"negotiation.started", "negotiation.round", "negotiation.concluded"} <= kinds

    services.job_approve_all(job_id=str(job.pk))
    job = run(job, JobStage.BOOK)
    for line in agreed:
        deal = BookedDeal.objects.get(recommendation=line)
        assert deal.cpm_micros == line.cpm_micros and deal.flag == ""  # the deal carries the negotiated price


@pytest.mark.parametrize("strategy", ["threshold", "adaptive", "competitive"])
def test_every_strategy_concludes_each_negotiation_within_its_bounds(sandbox, strategy):
    brief = {"kpis": {"target_cpm_usd": 5, "max_cpm_usd": 60}}
    job = run(new_job(**brief), JobStage.PLAN)
    job.campaign.__class__.objects.filter(pk=job.campaign_id).update(negotiation_strategy=strategy)
    job = negotiate_all(run(job, JobStage.RESEARCH))

    assert job.status == JobStatus.AWAITING_APPROVAL
    lines = list(job.recommendations.exclude(negotiation_status=""))
    assert lines and all(line.negotiation_terms["strategy"] == strategy for line in lines)
    for line in lines:
        assert line.negotiation_status in {"agreed", "walked_away", "ended"}, line.negotiation_outcome
        assert line.cpm_micros <= line.quoted_cpm_micros  # never dearer than the quote
        assert all(
            r.buyer_price is None or r.buyer_price <= Decimal(line.negotiation_terms["walk_away"])
            for r in line.negotiation_rounds.all()
        )
        assert (
            len([r for r in line.negotiation_rounds.all() if r.action == "counter"])
            <= line.negotiation_terms["max_rounds"]
        )


def test_a_seller_that_counters_above_its_own_quote_ends_the_negotiation_and_the_quote_stands(sandbox, monkeypatch):
    state = sandbox.state.sandbox
    real = state.negotiate

    def greedy(msg, caller):
        answer = real(msg, caller)
        answer["round"]["seller_price"] = {"amount_micros": 99_000_000, "currency": "USD"}
        return answer

    monkeypatch.setattr(state, "negotiate", greedy)
    job = negotiate_all(run(new_job(kpis={"target_cpm_usd": 5, "max_cpm_usd": 60}), JobStage.PLAN, JobStage.RESEARCH))

    lines = list(job.recommendations.exclude(negotiation_status=""))
    assert lines and all(line.negotiation_status == "ended" for line in lines)
    assert all(line.negotiation_outcome.startswith("counter_above_quote") for line in lines)
    assert all(line.cpm_micros == line.quoted_cpm_micros for line in lines)
    concluded = Event.objects.filter(flow_id=str(job.pk), event_type="negotiation.concluded")
    assert {e.payload["outcome"] for e in concluded} == {"ended"}


def test_a_worker_killed_mid_negotiation_resumes_without_a_duplicate_round(sandbox, monkeypatch):
    job = run(new_job(kpis={"target_cpm_usd": 5, "max_cpm_usd": 60}), JobStage.PLAN, JobStage.RESEARCH)
    state = sandbox.state.sandbox
    real_record = flow._record_exchange
    monkeypatch.setattr(flow, "_record_exchange", lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        run(job, JobStage.NEGOTIATE)  # the seller answered; nothing of it was stored
    monkeypatch.setattr(flow, "_record_exchange", real_record)
    asked = {q: len(state._negotiations[n].rounds) for q, n in state._negotiation_by_quote.items()}
    assert asked and set(asked.values()) == {1}

    job = negotiate_all(job)

    for line in job.recommendations.exclude(negotiation_status=""):
        theirs = state._negotiations[state._negotiation_by_quote[line.quote_id]].rounds
        assert line.negotiation_rounds.count() == len(theirs)  # the replayed message was not a new round


def test_the_job_page_shows_each_negotiation_round_and_the_price_it_reached(sandbox, client):
    from buyer.accounts.models import Role
    from buyer.accounts.services import user_create

    job = negotiate_all(run(new_job(kpis={"target_cpm_usd": 5, "max_cpm_usd": 60}), JobStage.PLAN, JobStage.RESEARCH))
    user_create(username="nia", email="nia@example.com", password="s3cret-pass-word", role=Role.MEDIA_BUYER)
    client.login(username="nia", password="s3cret-pass-word")
    page = client.get(f"/app/jobs/{job.pk}/").content.decode()

    agreed = job.recommendations.filter(negotiation_status="agreed").first()
    assert f'id="rounds-{agreed.pk}"' in page and "negotiated</span>" in page
    assert f"quoted ${agreed.quoted_cpm_micros / 1_000_000:,.2f}" in page
    timeline = f"{agreed.seller_name} · {agreed.product_name} · agreed"
    assert "Negotiation concluded" in page and timeline in page


def test_the_api_answers_each_lines_negotiation_with_its_rounds(sandbox, client):
    job = negotiate_all(run(new_job(kpis={"target_cpm_usd": 5, "max_cpm_usd": 60}), JobStage.PLAN, JobStage.RESEARCH))
    body = client.get(f"/bookings/{job.pk}").json()

    negotiated = [r for r in body["recommendations"] if r["negotiation"]]
    assert negotiated
    for line in negotiated:
        stored = Recommendation.objects.get(pk=line["recommendation_id"])
        assert line["negotiation"]["status"] == stored.negotiation_status
        assert len(line["negotiation"]["rounds"]) == stored.negotiation_rounds.count()
        assert line["cpm"] <= line["quoted_cpm"] and line["negotiation"]["walk_away_cpm"] <= line["quoted_cpm"]
    assert all(r["negotiation"] is None for r in body["recommendations"] if r not in negotiated)


@pytest.mark.parametrize(
    ("limit", "value", "why"),
    [
        ("AUTO_APPROVE_MAX_LINE_USD", 1_000, "above the auto-approval limit of $1,000.00 a line"),
        ("AUTO_APPROVE_MAX_JOB_USD", 10_000, "above the auto-approval limit of $10,000.00 a job"),
    ],
)
def test_auto_approve_above_the_amount_limits_waits_for_a_person(sandbox, settings, limit, value, why):
    setattr(settings, limit, Decimal(value))
    job = run(new_job(auto_approve=True), JobStage.PLAN, JobStage.RESEARCH)

    assert (job.status, job.stage) == (JobStatus.AWAITING_APPROVAL, JobStage.APPROVAL)
    assert set(job.recommendations.values_list("status", flat=True)) == {RecommendationStatus.PENDING_APPROVAL}
    ready = Event.objects.get(flow_id=str(job.pk), event_type="approval.requested")
    assert why in ready.payload["auto_approve_withheld"]
    assert not sandbox_deals(sandbox)


def test_no_line_costs_more_than_the_platform_maximum_and_no_seller_holds_more_than_its_share(sandbox, settings):
    settings.MAX_LINE_USD = Decimal(10_000)
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    assert all(r.cost_micros <= 10_000_000_000 for r in job.recommendations.all())
    skipped = Event.objects.get(flow_id=str(job.pk), event_type="research.completed").payload["skipped"]
    assert any("above the per-line maximum $10,000.00" in s["reason"] for s in skipped)

    settings.MAX_LINE_USD, settings.SELLER_MAX_SHARE_PCT = Decimal(1_000_000), Decimal(30)
    other = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    assert sum(r.cost_micros for r in other.recommendations.all()) <= 60_000 * 1_000_000 * 30 // 100


def test_a_re_quote_dearer_than_approved_goes_back_to_a_person_at_the_new_price(sandbox):
    # Negotiated prices live on their quotes: once those expire, the seller re-quotes at its usual price.
    job = negotiate_all(run(new_job(kpis={"target_cpm_usd": 5, "max_cpm_usd": 60}), JobStage.PLAN, JobStage.RESEARCH))
    agreed = {r.pk: r.cpm_micros for r in job.recommendations.filter(negotiation_status="agreed")}
    assert agreed
    services.job_approve_all(job_id=str(job.pk))
    later = timezone.now() + timedelta(hours=30)
    sandbox.state.sandbox.clock = lambda: later

    job = run(job, JobStage.BOOK)

    assert (job.status, job.stage) == (JobStatus.AWAITING_APPROVAL, JobStage.APPROVAL)
    for line in job.recommendations.filter(pk__in=agreed):
        assert line.status == RecommendationStatus.PENDING_APPROVAL and line.cpm_micros > agreed[line.pk]
        assert "approve the new price or reject it" in line.status_reason
        assert not BookedDeal.objects.filter(recommendation=line).exists()
    from campaigns.ledger import committed_micros

    booked = sum(d.cost_micros for d in BookedDeal.objects.filter(job=job))
    assert committed_micros(job) == booked  # the re-quoted lines hold nothing until approved again


def test_a_quote_an_earlier_attempt_booked_under_another_key_is_read_back_not_booked_twice(sandbox):
    job = run(new_job(channels=["ctv"]), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    line = job.recommendations.order_by("priority").first()
    # An earlier attempt (another key: an older buyer version, say) already booked this quote at the seller.
    earlier = httpx.post(
        f"{line.seller_url}/api/v1/deals", json={"idempotency_key": "an-older-key", "quote_id": line.quote_id}
    ).json()["deal"]["deal_id"]

    job = run(job, JobStage.BOOK)

    assert job.status == JobStatus.COMPLETED
    assert BookedDeal.objects.get(recommendation=line).deal_id == earlier
    assert len(sandbox_deals(sandbox)) == job.recommendations.count()  # no second deal for that quote


def test_a_cancel_after_a_killed_booking_step_still_records_the_deal_the_seller_made(
    sandbox, monkeypatch, django_capture_on_commit_callbacks
):
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    services.job_approve_all(job_id=str(job.pk))
    monkeypatch.setattr(booking, "deal_record", lambda **kw: (_ for _ in ()).throw(SystemExit("worker killed")))
    with pytest.raises(SystemExit):
        run(job, JobStage.BOOK)  # the seller booked the first line; nothing was recorded
    monkeypatch.undo()
    _lease_runs_out(job)
    services.job_cancel(job_id=str(job.pk), reason="Brief withdrawn.")  # after the worker died
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested  # not ended blind

    with django_capture_on_commit_callbacks():
        assert jobs_sweep()["resumed"] == 1
    job = run(job, JobStage.BOOK)

    assert job.status == JobStatus.CANCELLED
    assert {d.deal_id for d in BookedDeal.objects.filter(job=job)} == set(sandbox_deals(sandbox)) != set()
    assert not job.recommendations.filter(status=RecommendationStatus.APPROVED).exists()


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (lambda answer: answer["round"].__setitem__("seller_price", None), "countered without a price"),
        (lambda answer: answer.__setitem__("status", "haggling"), "unknown negotiation status"),
    ],
)
def test_an_answer_that_breaks_the_protocol_ends_the_negotiation_at_once(sandbox, monkeypatch, tamper, why):
    state = sandbox.state.sandbox
    real = state.negotiate

    def broken(msg, caller):
        answer = real(msg, caller)
        tamper(answer)
        return answer

    monkeypatch.setattr(state, "negotiate", broken)
    job = negotiate_all(run(new_job(kpis={"target_cpm_usd": 5, "max_cpm_usd": 60}), JobStage.PLAN, JobStage.RESEARCH))

    lines = list(job.recommendations.exclude(negotiation_status=""))
    assert lines and all(line.negotiation_status == "ended" and why in line.negotiation_outcome for line in lines)
    assert all(line.negotiation_rounds.count() == 1 for line in lines)  # not hammered until the time limit


def test_an_approval_that_expires_after_some_lines_were_booked_completes_on_those_deals(sandbox):
    sandbox.state.sandbox.overprice_pct = Decimal(20)  # the first deal is held: the seller's other lines come back
    job = run(new_job(auto_approve=True), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.AWAITING_APPROVAL
    services.deal_flag_resolve(deal_pk=BookedDeal.objects.get(job=job).pk, accept=True, actor="ada")
    BookingJob.objects.filter(pk=job.pk).update(approval_expires_at=timezone.now() - timedelta(minutes=1))

    assert jobs_sweep()["expired"] == 1

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.failure_reason == ""
    assert any("the 1 deal booked before stays booked" in e for e in job.errors)
    assert set(job.recommendations.exclude(deal__isnull=False).values_list("status", flat=True)) == {"rejected"}
    assert all(r.status_reason.startswith("not decided") for r in job.recommendations.filter(status="rejected"))


def test_lines_a_person_approves_after_auto_approval_stopped_are_booked_not_sent_back(sandbox):
    sandbox.state.sandbox.overprice_pct = Decimal(20)
    job = run(new_job(auto_approve=True), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.AWAITING_APPROVAL
    waiting = job.recommendations.filter(status=RecommendationStatus.PENDING_APPROVAL).count()

    services.job_approve_all(job_id=str(job.pk), actor="bob")
    job = run(job, JobStage.BOOK)

    assert job.status == JobStatus.COMPLETED  # each line tried once, at a person's word (and each held)
    assert BookedDeal.objects.filter(job=job).count() == 1 + waiting
    assert set(job.recommendations.values_list("approved_by", flat=True)) == {"auto", "bob"}


def test_a_buyer_approves_some_lines_books_them_and_comes_back_for_another(sandbox):
    job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    lines = list(job.recommendations.order_by("priority"))
    assert len(lines) >= 3
    deadline = job.approval_expires_at

    services.job_approve(job_id=str(job.pk), recommendation_ids=[str(lines[0].pk), str(lines[1].pk)], keep_rest=True)
    job = run(job, JobStage.BOOK)

    # The two are booked; the rest still await a decision, until the deadline the buyer had.
    assert (job.status, job.stage) == (JobStatus.AWAITING_APPROVAL, JobStage.APPROVAL)
    assert job.approval_expires_at == deadline
    assert BookedDeal.objects.filter(job=job).count() == 2
    waiting = job.recommendations.filter(status=RecommendationStatus.PENDING_APPROVAL)
    assert waiting.count() == len(lines) - 2

    services.job_approve(job_id=str(job.pk), recommendation_ids=[str(lines[2].pk)])  # the rest rejected now
    job = run(job, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED and BookedDeal.objects.filter(job=job).count() == 3
    assert job.recommendations.filter(status=RecommendationStatus.REJECTED).count() == len(lines) - 3
