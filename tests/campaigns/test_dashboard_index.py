"""The dashboard's jobs list reads its first page in the order of an index, not by sorting every job."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from campaigns import selectors
from tests.factories import BookingJobFactory

pytestmark = pytest.mark.django_db


def test_the_first_page_of_the_dashboard_is_read_through_its_index(needs_postgres):
    BookingJobFactory.create_batch(5)
    query = selectors.job_list_for_dashboard()[:20]
    with transaction.atomic(), connection.cursor() as cursor:
        # With sorting priced out, the planner reads in index order only if the query's ORDER BY is the
        # index's expressions exactly (dashboard_order() builds both).
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()
    assert "job_dashboard_order" in plan and "Sort" not in plan, plan
