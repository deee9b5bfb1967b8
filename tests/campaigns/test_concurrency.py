"""Races on PostgreSQL, for real: many requests at once against the money path (SQLite has a single writer)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.db import connection
from django.test import Client

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from campaigns.models import BookingJob, Campaign
from tests.api.test_bookings_api import brief

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("needs_postgres")]

THREADS = 20


def _at_once(calls: list) -> list:
    """Run each of ``calls`` in a thread of its own, released together; each uses and closes its own connection."""
    barrier = Barrier(len(calls))

    def run(call):
        try:
            barrier.wait(timeout=30)
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_twenty_concurrent_bookings_with_one_idempotency_key_make_one_job_and_no_5xx(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    _, key = api_key_create(name="load", scopes=[Scope.WRITE])
    body = {"brief": brief()}

    def post():
        response = Client().post(
            "/bookings", body, content_type="application/json", headers={"Idempotency-Key": "once", "X-API-Key": key}
        )
        return response.status_code, response.json().get("job_id")

    answers = _at_once([post] * THREADS)

    assert {status for status, _ in answers} == {202}
    assert len({job_id for _, job_id in answers}) == 1
    assert BookingJob.objects.count() == 1 and Campaign.objects.count() == 1  # the losers left no campaign


def _awaiting(costs, *, budget=50_000, parent=None):
    from campaigns.models import JobStage, JobStatus
    from tests.factories import BookingJobFactory, CampaignFactory, RecommendationFactory

    job = BookingJobFactory(
        campaign=CampaignFactory(budget_micros=budget * 1_000_000),
        status=JobStatus.AWAITING_APPROVAL,
        stage=JobStage.APPROVAL,
        parent=parent,
    )
    for cost in costs:
        RecommendationFactory(job=job, cost_micros=cost * 1_000_000)
    return job


def test_twenty_concurrent_approvals_of_one_job_approve_it_once(settings, monkeypatch):
    from buyer.events.models import Event
    from campaigns import services
    from campaigns.ledger import committed_micros

    monkeypatch.setattr(services, "job_dispatch", lambda job: None)
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    _, key = api_key_create(name="approver", scopes=[Scope.WRITE])
    job = _awaiting([10_000, 15_000])

    def approve():
        return Client().post(f"/bookings/{job.pk}/approve-all", headers={"X-API-Key": key}).status_code

    answers = _at_once([approve] * THREADS)

    assert sorted(answers) == [202] + [409] * (THREADS - 1)
    assert Event.objects.filter(flow_id=str(job.pk), event_type="approval.granted").count() == 1
    assert committed_micros(job) == 25_000 * 1_000_000


def test_a_campaign_and_its_top_up_approved_at_once_never_commit_more_than_its_budget(monkeypatch):
    from campaigns import services
    from campaigns.ledger import BudgetExceeded, committed_micros

    monkeypatch.setattr(services, "job_dispatch", lambda job: None)
    root = _awaiting([25_000, 15_000], budget=50_000)  # $40,000 of $50,000
    top_up = _awaiting([20_000], budget=20_000, parent=root)  # its own brief fits; the campaign does not

    def approve(job):
        def call():
            try:
                services.job_approve_all(job_id=str(job.pk), actor="ada")
                return "approved"
            except BudgetExceeded:
                return "refused"

        return call

    answers = _at_once([approve(root), approve(top_up)])

    assert sorted(answers) == ["approved", "refused"]
    assert committed_micros(root) <= 50_000 * 1_000_000
