"""User pages: create with Django's password checks, change roles, deactivate; nobody locks themselves out."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from buyer.accounts.models import Profile, Role
from buyer.accounts.roles import user_role
from tests.dashboard._admin import PASSWORD, message_texts, signed_in

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def admin(client):
    return signed_in(client, username="ada", role=Role.ADMIN)


@pytest.fixture
def mia():
    from buyer.accounts.services import user_create

    return user_create(
        username="mia", email="mia@example.com", password=PASSWORD, role=Role.MEDIA_BUYER, time_zone="Europe/Paris"
    )


def _new_user(**overrides):
    data = {
        "username": "sam",
        "email": "sam@example.com",
        "role": Role.MEDIA_BUYER,
        "time_zone": "America/New_York",
        "password1": "plum-orbit-canyon-42",
        "password2": "plum-orbit-canyon-42",
    }
    data.update(overrides)
    return data


def test_the_list_shows_role_time_zone_status_and_last_login(client, admin, mia):
    html = client.get(reverse("accounts:users")).content.decode()
    assert "mia@example.com" in html and "Europe/Paris" in html and "Media buyer" in html
    assert 'badge-active">Active<' in html and "never" in html
    assert "You cannot change your own role or deactivate yourself." in html


def test_an_admin_creates_a_user_who_can_then_sign_in(client, admin):
    response = client.post(reverse("accounts:user_create"), _new_user(), follow=True)
    assert response.redirect_chain[-1][0] == reverse("accounts:users")
    assert any("created as media buyer" in text for text in message_texts(response))
    sam = User.objects.get(username="sam")
    assert (sam.email, sam.profile.role, sam.profile.time_zone) == (
        "sam@example.com",
        "media_buyer",
        "America/New_York",
    )
    assert Client().login(username="sam", password="plum-orbit-canyon-42")


def test_creating_a_user_runs_djangos_password_validators_and_the_confirmation(client, admin):
    weak = client.post(reverse("accounts:user_create"), _new_user(password1="password", password2="password"))
    assert weak.status_code == 200 and "too common" in weak.content.decode()
    mismatch = client.post(reverse("accounts:user_create"), _new_user(password2="something-else-99"))
    assert mismatch.status_code == 200 and 'id="id_password2_error"' in mismatch.content.decode()
    assert not User.objects.filter(username="sam").exists()


def test_usernames_are_unique_whatever_the_case_and_time_zones_must_exist(client, admin, mia):
    taken = client.post(reverse("accounts:user_create"), _new_user(username="MIA"))
    assert taken.status_code == 200 and 'id="id_username_error"' in taken.content.decode()
    bad_zone = client.post(reverse("accounts:user_create"), _new_user(time_zone="Mars/Olympus"))
    assert bad_zone.status_code == 200 and 'id="id_time_zone_error"' in bad_zone.content.decode()
    assert User.objects.count() == 2


def test_the_create_form_labels_every_field_and_never_echoes_the_password(client, admin):
    html = client.get(reverse("accounts:user_create")).content.decode()
    for field, label in [
        ("username", "Username"),
        ("email", "Email"),
        ("role", "Role"),
        ("time_zone", "Time zone"),
        ("password1", "Password"),
        ("password2", "Password confirmation"),
    ]:
        assert f'<label for="id_{field}">{label}</label>' in html
    refused = client.post(reverse("accounts:user_create"), _new_user(password2="different-pass-77")).content.decode()
    assert "plum-orbit-canyon-42" not in refused


def test_an_admin_changes_another_users_role(client, admin, mia):
    response = client.post(reverse("accounts:user_role", args=[mia.pk]), {"role": Role.ADMIN}, follow=True)
    assert any("is now admin" in text for text in message_texts(response))
    assert user_role(User.objects.get(pk=mia.pk)) == Role.ADMIN


def test_an_unknown_role_is_refused(client, admin, mia):
    response = client.post(reverse("accounts:user_role", args=[mia.pk]), {"role": "root"}, follow=True)
    assert any("Choose a role" in text for text in message_texts(response))
    assert Profile.objects.get(user=mia).role == Role.MEDIA_BUYER


def test_an_admin_cannot_demote_themselves(client, admin):
    response = client.post(reverse("accounts:user_role", args=[admin.pk]), {"role": Role.MEDIA_BUYER}, follow=True)
    assert "You cannot demote yourself" in response.content.decode()
    assert Profile.objects.get(user=admin).role == Role.ADMIN


def test_an_admin_deactivates_and_reactivates_someone(client, admin, mia):
    response = client.post(reverse("accounts:user_deactivate", args=[mia.pk]), follow=True)
    assert any("deactivated" in text for text in message_texts(response))
    assert 'badge-inactive">Deactivated<' in response.content.decode()
    assert not Client().login(username="mia", password=PASSWORD)
    client.post(reverse("accounts:user_reactivate", args=[mia.pk]))
    assert Client().login(username="mia", password=PASSWORD)


def test_deactivating_someone_ends_their_session(client, admin, mia):
    theirs = Client()
    theirs.force_login(mia)
    assert theirs.get(reverse("pacing:overview")).status_code == 200
    client.post(reverse("accounts:user_deactivate", args=[mia.pk]))
    assert theirs.get(reverse("pacing:overview")).status_code == 302


def test_an_admin_cannot_deactivate_themselves(client, admin):
    response = client.post(reverse("accounts:user_deactivate", args=[admin.pk]), follow=True)
    assert "You cannot deactivate yourself" in response.content.decode()
    admin.refresh_from_db()
    assert admin.is_active


def test_the_list_filters_by_role_and_status(client, admin, mia):
    # Which rows are listed, by their ids: a bare substring test failed whenever the random
    # CSRF token happened to contain a username.
    def listed(query: str) -> set[int]:
        html = client.get(reverse("accounts:users") + query).content.decode()
        return {int(pk) for pk in re.findall(r'<tr id="user-(\d+)"', html)}

    assert listed("?role=admin") == {admin.pk}
    assert listed("?role=media_buyer") == {mia.pk}
    assert "No user matches" in client.get(reverse("accounts:users") + "?status=inactive").content.decode()


def test_a_superuser_without_a_profile_is_listed_as_admin(client, admin):
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    html = client.get(reverse("accounts:users")).content.decode()
    assert "root@example.com" in html and "(superuser)" in html
