"""Every error page is the product's, with a way back; an oversized body is a 413 (JSON on the API)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from buyer.accounts.models import Role
from tests.dashboard._admin import signed_in

pytestmark = pytest.mark.django_db


def test_an_unknown_page_and_job_are_the_products_404(client):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    for path in ("/app/no-such-page/", "/app/jobs/00000000-0000-4000-8000-000000000000/"):
        page = client.get(path)
        html = page.content.decode()
        assert page.status_code == 404 and "Page not found" in html and 'href="/app/"' in html
        assert 'aria-label="Main"' in html  # the navigation is there


def test_a_page_for_admins_is_the_products_403_for_a_media_buyer(client):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    page = client.get(reverse("llm:usage"))
    assert page.status_code == 403 and "Not allowed" in page.content.decode()


def test_a_form_without_its_security_token_is_the_products_403():
    client = Client(enforce_csrf_checks=True)
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    page = client.post(reverse("campaigns:job_new"), {"name": "x"})
    assert page.status_code == 403 and "security token" in page.content.decode()


def test_the_500_page_needs_nothing_that_might_be_broken(client, settings):
    from django.template.loader import get_template

    html = get_template("500.html").render()
    assert "Something went wrong" in html and 'href="/app/"' in html


def test_the_400_page_is_the_products(rf):
    from django.views.defaults import bad_request

    response = bad_request(rf.get("/app/"), Exception("bad"))
    assert response.status_code == 400 and "could not be read" in response.content.decode()


def test_an_oversized_body_is_413_json_on_the_api_and_a_page_on_the_dashboard(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000
    body = '{"text": "' + "x" * 1_200_000 + '"}'
    api = client.post("/bookings", body, content_type="application/json")
    assert api.status_code == 413 and api.json() == {"detail": "The request body is larger than 1 MB."}
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    page = client.post(
        reverse("campaigns:job_new"), "name=" + "x" * 1_200_000, content_type="application/x-www-form-urlencoded"
    )
    assert page.status_code == 413 and "Too much to send" in page.content.decode()


def test_the_favicon_is_served(client):
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301 and answer["Location"].endswith("img/favicon.svg")
