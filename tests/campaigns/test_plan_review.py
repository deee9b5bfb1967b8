"""Plan review: a brief may stop after the budget split for a person to keep or adjust it before research."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from buyer.events.models import Event, EventType
from campaigns import services
from campaigns.models import JobStage, JobStatus
from campaigns.sweeper import jobs_sweep
from tests.campaigns.test_flow import new_job, run

pytestmark = pytest.mark.django_db


def reviewing(**brief):
    job = run(new_job(brief={"plan_review": True}, **brief), JobStage.PLAN)
    assert (job.status, job.stage) == (JobStatus.AWAITING_PLAN_REVIEW, JobStage.PLAN_REVIEW)
    return job


def test_the_job_stops_after_the_split_and_continues_with_the_amounts_a_person_set(sandbox):
    job = reviewing()
    assert Event.objects.filter(flow_id=str(job.pk), event_type=EventType.PLAN_REVIEW_REQUESTED).exists()
    assert not job.recommendations.exists()  # no seller was asked

    job = services.job_plan_review(
        job_id=str(job.pk), amounts={"branding": Decimal("45000"), "ctv": Decimal("15000")}, actor="ada"
    )

    assert (job.status, job.stage) == (JobStatus.RUNNING, JobStage.RESEARCH)
    assert job.budget_allocations["ctv"]["budget"] == "15000.00"
    assert job.budget_allocations["ctv"]["percentage"] == "25.00"
    assert "by ada in plan review" in job.budget_allocations["ctv"]["rationale"]
    reviewed = Event.objects.get(flow_id=str(job.pk), event_type=EventType.PLAN_REVIEWED)
    assert reviewed.payload["actor"] == "ada" and reviewed.payload["adjusted"] is True
    job = run(job, JobStage.RESEARCH)
    ctv = sum(r.cost_micros for r in job.recommendations.filter(channel="ctv"))
    assert 0 < ctv <= 15_000_000_000


@pytest.mark.parametrize(
    ("amounts", "says"),
    [
        ({"branding": 40000, "ctv": 10000}, r"add up to \$50,000.00; they must add up to the budget, \$60,000.00"),
        ({"branding": 50000, "dooh": 10000}, "not in the plan"),
        ({"branding": 70000, "ctv": -10000}, "must not be negative"),
    ],
)
def test_a_split_that_cannot_stand_changes_nothing(sandbox, amounts, says):
    job = reviewing()
    with pytest.raises(services.PlanReviewError, match=says):
        services.job_plan_review(job_id=str(job.pk), amounts={k: Decimal(v) for k, v in amounts.items()}, actor="ada")
    job.refresh_from_db()
    assert job.status == JobStatus.AWAITING_PLAN_REVIEW


def test_over_the_api_and_only_while_awaiting_review(client, sandbox):
    job = reviewing()
    key = {"X-API-Key": api_key_create(name="ops", scopes=[Scope.WRITE])[1]}
    kept = client.post(f"/bookings/{job.pk}/plan", {}, content_type="application/json", headers=key)
    assert kept.status_code == 202 and kept.json()["status"] == "running"
    again = client.post(f"/bookings/{job.pk}/plan", {}, content_type="application/json", headers=key)
    assert again.status_code == 409 and "only a job awaiting plan review" in again.json()["detail"]
    bad = reviewing()
    wrong = client.post(
        f"/bookings/{bad.pk}/plan", {"allocations": {"branding": 1}}, content_type="application/json", headers=key
    )
    assert wrong.status_code == 400 and "add up to" in wrong.json()["detail"]


def test_an_unreviewed_plan_lapses_and_the_job_is_cancelled(sandbox, settings):
    job = reviewing()
    with time_machine.travel(timezone.now() + timedelta(hours=settings.APPROVAL_TTL_HOURS + 1)):
        assert jobs_sweep()["expired"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and "Plan review window" in job.failure_reason


def test_the_page_shows_the_review_form_and_takes_the_buyers_amounts(client, sandbox):
    from buyer.accounts.models import Role
    from tests.dashboard._admin import signed_in

    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    job = reviewing()
    page = client.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert 'id="plan-review"' in page and 'name="amount_ctv"' in page

    client.post(
        reverse("campaigns:job_plan_review", args=[job.pk]),
        {"action": "adjusted", "amount_branding": "30,000", "amount_ctv": "30000.00"},
    )
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.budget_allocations["branding"]["budget"] == "30000.00"
