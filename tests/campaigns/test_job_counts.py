"""The job list's total comes from counts the database keeps with triggers: equal to a count of the jobs after
every kind of write (save, bulk insert, queryset update, delete), under concurrent writers too."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from campaigns import selectors
from campaigns.models import BookingJob, JobStatus, JobStatusCount
from tests.factories import BookingJobFactory, CampaignFactory

pytestmark = pytest.mark.django_db(transaction=True)


def assert_counts_agree() -> None:
    for status in [None, *JobStatus.values]:
        real = BookingJob.objects.filter(status=status).count() if status else BookingJob.objects.count()
        assert selectors.job_count(status=status) == real, status


def test_counts_follow_saves_bulk_inserts_updates_and_deletes():
    assert_counts_agree()
    jobs = BookingJobFactory.create_batch(5, status=JobStatus.PENDING)
    assert_counts_agree()
    jobs[0].status = JobStatus.RUNNING
    jobs[0].save()
    jobs[1].save()  # saved without a change of status: counted once still
    assert_counts_agree()
    BookingJob.objects.bulk_create(
        [BookingJob(campaign=CampaignFactory(), status=JobStatus.AWAITING_APPROVAL) for _ in range(4)]
    )
    BookingJob.objects.filter(status=JobStatus.PENDING).update(status=JobStatus.CANCELLED)
    assert_counts_agree()
    BookingJob.objects.filter(pk=jobs[0].pk).delete()
    BookingJob.objects.filter(status=JobStatus.AWAITING_APPROVAL).delete()
    assert_counts_agree()
    assert selectors.job_count() == 4 and selectors.job_count(status=JobStatus.CANCELLED) == 4


def test_the_api_total_is_the_count(client, settings):
    settings.API_KEY = ""
    BookingJobFactory.create_batch(3, status=JobStatus.COMPLETED)
    BookingJobFactory.create_batch(2, status=JobStatus.FAILED)
    body = client.get("/bookings", {"limit": 1}).json()
    assert body["total"] == 5 and len(body["jobs"]) == 1
    assert client.get("/bookings", {"status": "failed"}).json()["total"] == 2


def test_concurrent_writers_of_one_status_lose_no_count(needs_postgres):
    campaigns = [CampaignFactory() for _ in range(40)]
    errors: list[BaseException] = []

    def write(chunk):
        try:
            for campaign in chunk:
                job = BookingJob.objects.create(campaign=campaign, status=JobStatus.PENDING)
                BookingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(campaigns[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert_counts_agree()
    assert selectors.job_count(status=JobStatus.RUNNING) == 40
    assert JobStatusCount.objects.filter(status=JobStatus.RUNNING).count() > 1  # spread over slots


def test_the_dashboard_pages_by_the_kept_count_and_counts_rows_when_narrowed(client):
    from buyer.accounts.models import Role
    from buyer.accounts.services import user_create

    user_create(username="mia", email="mia@example.com", password="a-long-password-123", role=Role.MEDIA_BUYER)
    client.login(username="mia", password="a-long-password-123")
    BookingJobFactory.create_batch(30, status=JobStatus.COMPLETED)
    BookingJobFactory.create_batch(2, status=JobStatus.FAILED, campaign__channels=["dooh"])
    assert "Page 1 of 2 · 32 in all" in client.get("/app/").content.decode()
    assert "2 in all" in client.get("/app/", {"status": "failed"}).content.decode()
    narrowed = client.get("/app/", {"channel": "dooh"}).content.decode()
    assert "2 in all" in narrowed and "32 in all" not in narrowed
