"""schemathesis over the API's own OpenAPI schema, against the web process's WSGI application (the lean API
middleware of ``buyer.web``, the test database): every operation, valid and invalid input, a bounded number of
examples each. No answer may be a server error, and every status must be one the schema documents."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from buyer.health.checks import worker_queues
from buyer.health.heartbeat import heartbeat_record
from buyer.health.models import BEAT, worker_role
from buyer.web import build_wsgi

pytestmark = pytest.mark.django_db(transaction=True)  # the WSGI handler closes connections after each request

# Bounded: enough to reach every validation branch of every route, few enough for CI.
EXAMPLES_PER_OPERATION = 30


@pytest.fixture(autouse=True)
def _quiet_sellers_and_no_rate_limit(settings, fresh_rate_limits):
    settings.API_RATE_LIMIT_PER_MINUTE = 0  # thousands of requests from one key: conformance, not limits
    settings.SELLER_ENDPOINTS = []
    settings.IAB_SERVER_URL_IS_SET = False
    # Workers and beat alive, as in a running deployment: readiness answers 200 (its 503 is a server error).
    heartbeat_record([worker_role(queue) for queue in worker_queues()] + [BEAT], "schemathesis")


@pytest.fixture
def admin_key() -> str:
    _, secret = api_key_create(name="schemathesis", scopes=[Scope.READ, Scope.WRITE, Scope.ADMIN])
    return secret


# Loaded once, at collection: the schema is the one the web process serves (no database needed for it).
schema = schemathesis.openapi.from_wsgi("/openapi.json", build_wsgi())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_no_server_error_and_no_undocumented_status(case, admin_key):
    case.call_and_validate(headers={"X-API-Key": admin_key}, checks=[not_a_server_error, status_code_conformance])
