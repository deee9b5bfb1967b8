from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from buyer.api import api
from buyer.apikeys.models import ApiKey, Scope
from buyer.apikeys.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

PUBLIC = {"/health", "/health/ready", "/docs", "/redoc", "/openapi.json", "/.well-known/jwks.json"}
# Open to sellers without an API key, and refused without this seller's signature (tests/campaigns/test_adcp_webhooks).
SIGNED_PREFIX = "/webhooks/adcp/"


def api_operations() -> list[tuple[str, str]]:
    """Every (method, concrete path) the REST API serves, from the URL patterns and the schema's methods."""
    methods_by_path = {
        re.sub(r"\{[^}]+\}", "x", path): [m.upper() for m in ops]
        for path, ops in api.get_openapi_schema()["paths"].items()
    }
    operations = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                path = "/" + re.sub(r"<[^>]+>", "x", prefix + str(pattern.pattern))
                for method in methods_by_path.get(path, []):
                    if (method, path) not in operations:
                        operations.append((method, path))

    walk(get_resolver().url_patterns)
    return operations


def test_the_walk_finds_every_schema_operation():
    assert len(api_operations()) == sum(len(ops) for ops in api.get_openapi_schema()["paths"].values())


def test_with_a_key_configured_every_non_public_route_answers_401_without_it(client, settings):
    settings.API_KEY = "bootstrap-secret"
    checked = 0
    for method, path in api_operations():
        if path in PUBLIC or path.startswith(SIGNED_PREFIX):
            continue
        response = client.generic(method, path, "{}", content_type="application/json")
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json() == {"detail": "Invalid or missing API key"}
        wrong = client.generic(method, path, "{}", content_type="application/json", headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401, (method, path)
        checked += 1
    assert checked >= 8


def test_public_paths_stay_open_with_a_key_configured(client, settings):
    from buyer.health.checks import worker_queues
    from buyer.health.heartbeat import heartbeat_record
    from buyer.health.models import BEAT, worker_role

    settings.API_KEY = "bootstrap-secret"
    heartbeat_record([worker_role(queue) for queue in worker_queues()] + [BEAT], "worker-1@host")  # ready
    for path in PUBLIC:
        assert client.get(path).status_code == 200, path


def test_the_bootstrap_key_opens_the_api(client, settings):
    settings.API_KEY = "bootstrap-secret"
    assert client.get("/bookings", headers={"X-API-Key": "bootstrap-secret"}).status_code == 200


def test_a_stored_key_works_until_revoked_and_is_stored_hashed(client):
    key, secret = api_key_create(name="reporting", scopes=[Scope.READ])
    assert secret not in key.digest and key.prefix in secret
    assert client.get("/bookings", headers={"X-API-Key": secret}).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None
    api_key_revoke(key=key)
    # Another active key keeps auth configured, so the revoked one must be refused, not let through as open dev.
    api_key_create(name="other", scopes=[Scope.READ])
    assert client.get("/bookings", headers={"X-API-Key": secret}).status_code == 401


def test_a_read_only_key_cannot_create_or_approve(client):
    _, secret = api_key_create(name="viewer", scopes=[Scope.READ])
    response = client.post("/bookings", {"brief": {}}, content_type="application/json", headers={"X-API-Key": secret})
    assert response.status_code == 403
    assert client.post("/bookings/x/approve-all", headers={"X-API-Key": secret}).status_code == 403
    for action in ("approve", "reject", "cancel"):
        answer = client.post(
            f"/bookings/x/{action}", {}, content_type="application/json", headers={"X-API-Key": secret}
        )
        assert answer.status_code == 403, action


def test_without_any_key_development_is_open_and_production_is_closed(client, settings):
    settings.API_KEY = ""
    assert not ApiKey.objects.exists()
    settings.ENVIRONMENT = "development"
    assert client.get("/bookings").status_code == 200
    settings.ENVIRONMENT = "production"
    assert client.get("/bookings").status_code == 401


def test_admin_needs_a_signed_in_staff_user(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_create_api_key_command_prints_the_key_once(capsys):
    from django.core.management import call_command

    call_command("create_api_key", "ci-bot", "--scope", "read")
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    key = ApiKey.objects.get(name="ci-bot")
    assert secret.startswith("mba_") and key.scopes == ["read"]
    assert secret not in str(ApiKey.objects.values_list())
