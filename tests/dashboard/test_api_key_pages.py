"""API key pages: create with scopes, the full key shown once in the POST response only, revoke with confirmation."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from buyer.accounts.models import Role
from buyer.apikeys.models import ApiKey, Scope
from buyer.apikeys.services import api_key_create
from tests.dashboard._admin import message_texts, signed_in

pytestmark = pytest.mark.django_db

KEY_PATTERN = re.compile(r"mba_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def admin_client(client):
    signed_in(client, username="ada", role=Role.ADMIN)
    return client


def _create(client, name: str = "reporting", scopes: list[str] | None = None):
    return client.post(reverse("apikeys:create"), {"name": name, "scopes": scopes or [Scope.READ]})


def test_creating_a_key_shows_it_once_and_never_again(admin_client):
    response = _create(admin_client, scopes=[Scope.READ, Scope.WRITE])
    html = response.content.decode()
    full_key = KEY_PATTERN.search(html).group(0)
    assert response.status_code == 201
    assert "It will not be shown again" in html and "Copy key" in html
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(name="reporting")
    assert key.scopes == ["read", "write"] and key.created_by.username == "ada" and key.prefix in full_key
    assert full_key not in key.digest

    # Neither the list, a reload of the form, nor anything kept for the session holds it.
    listing = admin_client.get(reverse("apikeys:list")).content.decode()
    assert full_key not in listing and key.prefix in listing and "ada" in listing
    assert full_key not in admin_client.get(reverse("apikeys:create")).content.decode()
    assert all(full_key not in str(value) for value in admin_client.session.values())
    assert all(full_key not in morsel.value for morsel in admin_client.cookies.values())


def test_the_created_key_authenticates_the_api_until_it_is_revoked(admin_client, client):
    full_key = KEY_PATTERN.search(_create(admin_client).content.decode()).group(0)
    api_key_create(name="keeps auth configured", scopes=[Scope.READ])
    assert admin_client.get("/bookings", headers={"X-API-Key": full_key}).status_code == 200
    key = ApiKey.objects.get(name="reporting")

    confirm = admin_client.get(reverse("apikeys:revoke", args=[key.pk]))
    assert confirm.status_code == 200 and "Revoke key" in confirm.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None  # the confirmation page changes nothing

    response = admin_client.post(reverse("apikeys:revoke", args=[key.pk]), follow=True)
    assert any("revoked" in text for text in message_texts(response))
    assert 'badge-revoked">Revoked<' in response.content.decode()
    assert admin_client.get("/bookings", headers={"X-API-Key": full_key}).status_code == 401


def test_revoking_twice_is_harmless(admin_client):
    key, _ = api_key_create(name="old", scopes=[Scope.READ])
    admin_client.post(reverse("apikeys:revoke", args=[key.pk]))
    key.refresh_from_db()
    first = key.revoked_at
    response = admin_client.post(reverse("apikeys:revoke", args=[key.pk]), follow=True)
    key.refresh_from_db()
    assert key.revoked_at == first and any("already revoked" in text for text in message_texts(response))


def test_a_key_needs_a_name_and_a_scope(admin_client):
    response = admin_client.post(reverse("apikeys:create"), {"name": "", "scopes": []})
    html = response.content.decode()
    assert response.status_code == 200 and not ApiKey.objects.exists()
    assert 'id="id_name_error"' in html and 'id="id_scopes_error"' in html
    assert not KEY_PATTERN.search(html)


def test_an_unknown_scope_is_refused(admin_client):
    response = _create(admin_client, scopes=["root"])
    assert response.status_code == 200 and not ApiKey.objects.exists()


def test_the_form_offers_each_scope_as_a_labelled_checkbox(admin_client):
    html = admin_client.get(reverse("apikeys:create")).content.decode()
    for scope in Scope.values:
        assert f'type="checkbox" name="scopes" value="{scope}"' in html
    assert "<legend>Scopes</legend>" in html and '<label for="id_name">Name</label>' in html


def test_the_list_filters_by_status(admin_client):
    api_key_create(name="live-one", scopes=[Scope.READ])
    old, _ = api_key_create(name="dead-one", scopes=[Scope.READ])
    admin_client.post(reverse("apikeys:revoke", args=[old.pk]))
    active = admin_client.get(reverse("apikeys:list") + "?status=active").content.decode().split("<tbody>")[1]
    revoked = admin_client.get(reverse("apikeys:list") + "?status=revoked").content.decode().split("<tbody>")[1]
    assert "live-one" in active and "dead-one" not in active
    assert "dead-one" in revoked and "live-one" not in revoked


def test_key_names_are_escaped(admin_client):
    api_key_create(name="<b>bold</b>", scopes=[Scope.READ])
    html = admin_client.get(reverse("apikeys:list")).content.decode()
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_long_lists_are_paginated_keeping_the_filter(admin_client):
    for n in range(51):
        api_key_create(name=f"key-{n:02d}", scopes=[Scope.READ])
    html = admin_client.get(reverse("apikeys:list") + "?status=active").content.decode()
    assert "Page 1 of 2" in html and 'href="?status=active&amp;page=2"' in html
    second = admin_client.get(reverse("apikeys:list") + "?status=active&page=2").content.decode()
    assert "key-00" in second and "Page 2 of 2" in second
