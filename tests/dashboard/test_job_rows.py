"""The jobs list's rows are kept by every value they show: a job that changes shows its new values at once, and
each reader sees moments in their own time zone. The page counts from the trigger-kept totals where it can."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from buyer.accounts.models import Role
from buyer.accounts.services import user_create
from campaigns import job_rows
from campaigns.models import BookingJob, Campaign, JobStage, JobStatus
from pacing.models import PacingSnapshot
from tests.factories import BookedDealFactory, BookingJobFactory, CampaignFactory, RecommendationFactory

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass-word"
HX = {"HTTP_HX_REQUEST": "true"}


def reader(username: str, time_zone: str = "UTC") -> Client:
    user_create(
        username=username, email=f"{username}@example.com", password=PASSWORD, role=Role.MEDIA_BUYER,
        time_zone=time_zone,
    )  # fmt: skip
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def row_of(content: str, job: BookingJob) -> str:
    start = content.index(f'<tr id="job-{job.pk}"')
    return content[start : content.index("</tr>", start)]


def test_a_row_shows_what_changed_on_the_job_at_once():
    buyer = reader("mia")
    campaign = CampaignFactory(name="Spring push", budget_micros=50_000 * 1_000_000)
    job = BookingJobFactory(campaign=campaign, status=JobStatus.RUNNING, stage=JobStage.BOOK, progress=0.5)
    before = row_of(buyer.get(reverse("campaigns:jobs")).content.decode(), job)
    assert "Spring push" in before and "50%" in before and "hx-trigger" in before

    Campaign.objects.filter(pk=campaign.pk).update(name="Spring push, renamed")
    BookedDealFactory(recommendation=RecommendationFactory(job=job), deal_id="DEAL-0001", cost_micros=1_234_000_000)
    BookingJob.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, stage=JobStage.DONE, progress=1.0)

    after = row_of(buyer.get(reverse("campaigns:jobs")).content.decode(), job)
    assert "Spring push, renamed" in after and "badge-completed" in after and "1 deal" in after
    assert "$1,234" in after and "hx-trigger" not in after
    polled = buyer.get(reverse("campaigns:job_row", args=[job.pk]), **HX)
    assert polled.status_code == 286 and polled.content.decode().strip().startswith(after)


def test_a_row_shows_its_campaigns_pacing_once_a_snapshot_exists():
    buyer = reader("mia")
    job = BookingJobFactory(campaign=CampaignFactory(name="Paced"), status=JobStatus.COMPLETED, stage=JobStage.DONE)
    assert "pacing-link" not in row_of(buyer.get(reverse("campaigns:jobs")).content.decode(), job)
    snapshot = PacingSnapshot(job=job, status="behind", alert_level="warning", in_grace=False)
    row = job_rows.JobRow.of(
        (job.pk, "Paced", None, None, [], 0, 0, JobStatus.COMPLETED, 1.0, "", job.created_at, None, 0), snapshot
    )
    html = job_rows.row_html(row)
    assert "pacing-link" in html and "badge-behind" in html and "badge-warning" in html


def test_each_reader_sees_the_rows_moments_in_their_own_time_zone():
    created = dt.datetime(2026, 3, 10, 23, 30, tzinfo=dt.UTC)
    job = BookingJobFactory(campaign=CampaignFactory(name="Zones"), status=JobStatus.FAILED, stage=JobStage.DONE)
    BookingJob.objects.filter(pk=job.pk).update(created_at=created)
    in_utc = row_of(reader("utc").get(reverse("campaigns:jobs")).content.decode(), job)
    in_tokyo = row_of(reader("tokyo", "Asia/Tokyo").get(reverse("campaigns:jobs")).content.decode(), job)
    assert "Mar\u00a010,\u00a02026" in in_utc and "23:30\u00a0UTC" in in_utc
    assert "Mar\u00a011,\u00a02026" in in_tokyo and "08:30\u00a0JST" in in_tokyo


def test_the_pages_are_counted_for_the_status_asked_and_for_every_other_filter():
    buyer = reader("mia")
    for n in range(27):
        BookingJobFactory(
            campaign=CampaignFactory(name=f"Done {n}", channels=["ctv"] if n < 3 else ["display"]),
            status=JobStatus.COMPLETED,
            stage=JobStage.DONE,
        )
    for n in range(2):
        BookingJobFactory(campaign=CampaignFactory(name=f"Busy {n}"), status=JobStatus.RUNNING, stage=JobStage.PLAN)
    assert "Page 1 of 2" in buyer.get(reverse("campaigns:jobs")).content.decode()
    running = buyer.get(reverse("campaigns:jobs"), {"status": "running"}).content.decode()
    assert running.count('<tr id="job-') == 2 and "Page 1 of" not in running  # one page: no pagination
    completed = buyer.get(reverse("campaigns:jobs"), {"status": "completed", "page": 2}).content.decode()
    assert completed.count('<tr id="job-') == 2 and "Page 2 of 2" in completed
    ctv = buyer.get(reverse("campaigns:jobs"), {"status": "completed", "channel": "ctv"}).content.decode()
    assert ctv.count('<tr id="job-') == 3 and "Page 1 of" not in ctv


def test_the_filters_show_the_values_asked_for_each_time():
    buyer = reader("mia")
    first = buyer.get(reverse("campaigns:jobs"), {"status": "completed", "flight_from": "2026-05-01"}).content
    second = buyer.get(reverse("campaigns:jobs"), {"status": "failed", "channel": "ctv"}).content
    assert b'<option value="completed" selected>' in first and b'value="2026-05-01"' in first
    assert b'<option value="failed" selected>' in second and b'<option value="ctv" selected>' in second
    assert b'<option value="completed" selected>' not in second and b"2026-05-01" not in second
