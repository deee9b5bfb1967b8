from __future__ import annotations

import pytest
from django.urls import reverse

from buyer.accounts.models import Role
from buyer.accounts.services import user_create

pytestmark = pytest.mark.django_db


def test_the_root_sends_people_to_the_dashboard_and_the_dashboard_to_sign_in(client):
    assert client.get("/")["Location"] == reverse("campaigns:jobs")
    response = client.get(reverse("campaigns:jobs"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_a_media_buyer_signs_in_sees_the_jobs_and_signs_out(client):
    user_create(username="mia", email="mia@example.com", password="s3cret-pass-word", role=Role.MEDIA_BUYER)
    page = client.get(reverse("accounts:login"))
    assert b'name="csrfmiddlewaretoken"' in page.content and b'<label for="id_username">' in page.content
    response = client.post(reverse("accounts:login"), {"username": "mia", "password": "s3cret-pass-word"})
    assert response.status_code == 302 and response["Location"] == reverse("campaigns:jobs")
    jobs = client.get(reverse("campaigns:jobs"))
    assert jobs.status_code == 200 and b"media buyer" in jobs.content
    assert client.post(reverse("accounts:logout")).status_code == 302
    assert client.get(reverse("campaigns:jobs")).status_code == 302


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(client):
    user_create(username="mia", email="", password="s3cret-pass-word", role=Role.MEDIA_BUYER)
    response = client.post(reverse("accounts:login"), {"username": "mia", "password": "nope"})
    assert response.status_code == 200 and b'role="alert"' in response.content


def test_a_deactivated_user_cannot_sign_in(client):
    user = user_create(username="gone", email="", password="s3cret-pass-word", role=Role.ADMIN)
    user.is_active = False
    user.save(update_fields=["is_active"])
    response = client.post(reverse("accounts:login"), {"username": "gone", "password": "s3cret-pass-word"})
    assert response.status_code == 200
    assert client.get(reverse("campaigns:jobs")).status_code == 302


def test_dates_show_in_the_users_time_zone(client):
    from tests.factories import BookingJobFactory

    BookingJobFactory()
    user_create(username="tokyo", email="", password="s3cret-pass-word", role=Role.MEDIA_BUYER, time_zone="Asia/Tokyo")
    client.login(username="tokyo", password="s3cret-pass-word")
    assert b"JST" in client.get(reverse("campaigns:jobs")).content


def test_login_is_csrf_protected(client):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    user_create(username="mia", email="", password="s3cret-pass-word", role=Role.MEDIA_BUYER)
    assert (
        strict.post(reverse("accounts:login"), {"username": "mia", "password": "s3cret-pass-word"}).status_code == 403
    )
