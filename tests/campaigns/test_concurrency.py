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


def _at_once(call, n: int = THREADS) -> list:
    """Run ``call`` in ``n`` threads released together; each thread uses and closes its own connection."""
    barrier = Barrier(n)

    def run(_):
        try:
            barrier.wait(timeout=30)
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_twenty_concurrent_bookings_with_one_idempotency_key_make_one_job_and_no_5xx(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    _, key = api_key_create(name="load", scopes=[Scope.WRITE])
    body = {"brief": brief()}

    def post():
        response = Client().post(
            "/bookings", body, content_type="application/json", headers={"Idempotency-Key": "once", "X-API-Key": key}
        )
        return response.status_code, response.json().get("job_id")

    answers = _at_once(post)

    assert {status for status, _ in answers} == {202}
    assert len({job_id for _, job_id in answers}) == 1
    assert BookingJob.objects.count() == 1 and Campaign.objects.count() == 1  # the losers left no campaign
