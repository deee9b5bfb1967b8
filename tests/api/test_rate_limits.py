from __future__ import annotations

import pytest

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from buyer.ratelimit import rate_limit_check

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters(settings, fresh_rate_limits):
    settings.API_RATE_LIMIT_PER_MINUTE = 3


def test_a_key_over_its_limit_gets_429_with_retry_after_and_other_keys_do_not(client):
    _, first = api_key_create(name="busy", scopes=[Scope.READ])
    _, second = api_key_create(name="quiet", scopes=[Scope.READ])
    statuses = [client.get("/bookings", headers={"X-API-Key": first}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/bookings", headers={"X-API-Key": first})
    assert limited.status_code == 429 and 1 <= int(limited["Retry-After"]) <= 60
    assert "per minute" in limited.json()["detail"]
    assert client.get("/bookings", headers={"X-API-Key": second}).status_code == 200


def test_health_is_never_rate_limited(client):
    assert {client.get("/health").status_code for _ in range(6)} == {200}


def test_zero_disables_the_limit(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    assert all(rate_limit_check("bucket")[0] for _ in range(10))


def test_buckets_count_independently():
    assert [rate_limit_check("a")[0] for _ in range(4)] == [True, True, True, False]
    assert rate_limit_check("b")[0] is True
