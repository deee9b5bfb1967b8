"""Every dashboard URL refuses a POST without a CSRF token, whoever is signed in (the walk finds them all)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from buyer.accounts.models import Role
from buyer.accounts.services import user_create

pytestmark = pytest.mark.django_db

SAMPLES = {"uuid": str(uuid.uuid4()), "int": "1", "str": "x", "slug": "x", "path": "x"}


def dashboard_paths() -> list[str]:
    paths = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("app/"):
                paths.append("/" + re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLES[m.group(1) or "str"], route))

    walk(get_resolver().url_patterns)
    return sorted(set(paths))


def test_the_walk_covers_the_dashboard():
    paths = dashboard_paths()
    assert len(paths) >= 20
    assert "/app/jobs/new/" in paths and "/app/api-keys/new/" in paths


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEDIA_BUYER])
def test_every_dashboard_post_without_a_csrf_token_is_refused(role):
    user_create(username="someone", email="", password="s3cret-pass-word", role=role)
    client = Client(enforce_csrf_checks=True)
    client.login(username="someone", password="s3cret-pass-word")
    for path in dashboard_paths():
        if path.endswith("/login/"):
            continue  # login is covered on its own: it is also refused, before any session exists
        response = client.post(path, {"name": "x", "action": "all"})
        assert response.status_code == 403, (path, response.status_code)
