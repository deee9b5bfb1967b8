"""The job list's total and the versions of the list and of each job: rows PostgreSQL triggers keep exact, folded
into a row per status, for the list and per job."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Q, Sum

from campaigns import selectors, services, tasks
from campaigns.models import (
    BookedDeal,
    BookingJob,
    Campaign,
    JobCount,
    JobListVersion,
    JobStatus,
    JobVersion,
    NegotiationRound,
    Recommendation,
    VersionEpoch,
)
from tests.factories import BookedDealFactory, BookingJobFactory, RecommendationFactory

pytestmark = pytest.mark.django_db


def _counted() -> Counter[str]:
    return Counter(BookingJob.objects.values_list("status", flat=True))


def _assert_totals_match() -> None:
    counted = _counted()
    assert selectors.job_total() == sum(counted.values())
    for status in JobStatus.values:
        assert selectors.job_total(status) == counted[status], status


def test_totals_follow_every_kind_of_write(using_postgres):
    jobs = BookingJobFactory.create_batch(4, status=JobStatus.RUNNING)
    BookingJobFactory.create_batch(3, status=JobStatus.COMPLETED)
    _assert_totals_match()

    jobs[0].status = JobStatus.FAILED
    jobs[0].save()  # one row through the model
    BookingJob.objects.filter(pk__in=[jobs[1].pk, jobs[2].pk]).update(status=JobStatus.CANCELLED)  # a bulk update
    BookingJob.objects.filter(pk=jobs[3].pk).update(progress=0.5)  # no status change: no delta
    _assert_totals_match()

    jobs[1].delete()
    BookingJob.objects.bulk_create([BookingJob(campaign=jobs[0].campaign, status=JobStatus.PENDING)])
    _assert_totals_match()
    assert selectors.job_total(JobStatus.AWAITING_APPROVAL) == 0
    if not using_postgres:  # elsewhere the total is a COUNT: no counts are kept and a fold has nothing to do
        assert not JobCount.objects.exists()
        assert services.job_counts_fold() == (0, 0)


def test_a_fold_keeps_the_sums_and_leaves_a_row_per_status(needs_postgres):
    job = BookingJobFactory(status=JobStatus.PENDING)
    for status in (JobStatus.RUNNING, JobStatus.AWAITING_APPROVAL, JobStatus.RUNNING, JobStatus.COMPLETED):
        BookingJob.objects.filter(pk=job.pk).update(status=status)
    BookingJobFactory.create_batch(2, status=JobStatus.FAILED)
    versions = _versions(job.pk)

    folded = tasks.fold_job_counts()
    assert folded["read"] > folded["left"]
    assert dict(JobCount.objects.values_list("status", "delta")) == {"completed": 1, "failed": 2}  # the rest sum to 0
    _assert_totals_match()
    assert _versions(job.pk) == versions
    assert JobListVersion.objects.count() == 1
    assert JobVersion.objects.filter(job_id=job.pk).count() == 1
    epoch = VersionEpoch.objects.get().epoch  # a new one: the fold removed version rows
    assert services.job_counts_fold() == (0, 0)  # folded rows are left alone, and so is the epoch
    assert VersionEpoch.objects.get().epoch == epoch
    _assert_totals_match()
    assert _versions(job.pk) == versions


def test_removing_version_rows_by_any_means_starts_a_new_epoch(needs_postgres):
    job = BookingJobFactory()
    BookingJob.objects.filter(pk=job.pk).update(progress=0.5)  # a second version row for the fold to fold
    epochs = [VersionEpoch.objects.get().epoch]
    services.job_counts_fold()
    epochs.append(VersionEpoch.objects.get().epoch)
    JobVersion.objects.filter(pk__in=JobVersion.objects.values("pk")[:1]).delete()
    epochs.append(VersionEpoch.objects.get().epoch)
    VersionEpoch.objects.all().delete()  # even the epoch itself: a new one takes its place
    epochs.append(VersionEpoch.objects.get().epoch)
    assert len(set(epochs)) == 4


def _versions(job_id) -> tuple[int, int]:
    """(the list's version, the job's)."""
    listed = JobListVersion.objects.aggregate(n=Sum("delta"))["n"] or 0
    job = JobVersion.objects.filter(Q(job_id=job_id) | Q(job_id__isnull=True)).aggregate(n=Sum("delta"))["n"] or 0
    return int(listed), int(job)


def test_every_write_a_job_shows_moves_its_version_and_only_list_writes_move_the_lists(needs_postgres):
    job, other = BookingJobFactory(), BookingJobFactory()
    line = RecommendationFactory(job=job)
    writes = [  # (what, moves the list too)
        (lambda: BookingJob.objects.filter(pk=job.pk).update(progress=0.5), True),
        (lambda: Campaign.objects.filter(pk=job.campaign_id).update(name="Renamed"), True),
        (lambda: Recommendation.objects.filter(pk=line.pk).update(status="approved"), False),
        (lambda: NegotiationRound.objects.create(recommendation=line, round_number=1, action="counter"), False),
        (lambda: NegotiationRound.objects.filter(recommendation=line).update(status="active"), False),
        (lambda: BookedDealFactory(recommendation=line), False),
        (lambda: BookedDeal.objects.filter(job=job).update(seller_status="active"), False),
        (lambda: NegotiationRound.objects.filter(recommendation=line).delete(), False),
    ]
    for write, lists in writes:
        listed, own = _versions(job.pk)
        others = _versions(other.pk)[1]
        write()
        after = _versions(job.pk)
        assert after[1] > own
        assert (after[0] > listed) is lists
        assert _versions(other.pk)[1] == others  # another job's answer stays as it was
    spare = RecommendationFactory(job=other)
    NegotiationRound.objects.create(recommendation=line, round_number=2, action="counter")
    moves = [  # a row moved to another job moves both jobs' versions
        lambda: NegotiationRound.objects.filter(recommendation=line).update(recommendation=spare),
        lambda: Recommendation.objects.filter(pk=line.pk).update(job=other),
        lambda: BookedDeal.objects.filter(recommendation=line).update(job=other),
    ]
    for move in moves:
        before = _versions(job.pk)[1], _versions(other.pk)[1]
        move()
        assert _versions(job.pk)[1] > before[0] and _versions(other.pk)[1] > before[1]
    listed, own = _versions(job.pk)
    BookingJob.objects.filter(pk=job.pk).update(progress=0.5)  # an update that changes no row still counts
    BookingJob.objects.filter(pk=uuid.uuid4()).update(progress=0.5)  # one that matches no row does not
    assert _versions(job.pk) == (listed + 1, own + 1)


@pytest.mark.django_db(transaction=True)  # TRUNCATE waits for no deferred constraint of this transaction
def test_truncating_the_jobs_empties_the_counts(needs_postgres):
    BookingJobFactory.create_batch(2)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE campaigns_bookingjob CASCADE")
    assert selectors.job_total() == 0
    assert not JobCount.objects.exists()
    before = _versions(uuid.uuid4())
    with connection.cursor() as cursor:  # every version moves on: a truncate cannot say which jobs it removed
        cursor.execute("TRUNCATE campaigns_bookeddeal CASCADE")
    after = _versions(uuid.uuid4())
    assert after[0] > before[0] and after[1] > before[1]
    epoch = VersionEpoch.objects.get().epoch
    with connection.cursor() as cursor:  # the version rows themselves: the sums start again, in a new epoch
        cursor.execute("TRUNCATE campaigns_jobversion, campaigns_joblistversion, campaigns_versionepoch")
    assert VersionEpoch.objects.get().epoch != epoch
