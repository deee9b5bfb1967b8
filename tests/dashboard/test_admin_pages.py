"""Who may open the admin pages and press their buttons: admins only, checked on the server, CSRF enforced."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import Client
from django.urls import reverse

from buyer.accounts.models import Profile, Role
from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from campaigns.models import BookedDeal, DealStatus
from tests.dashboard._admin import PASSWORD, signed_in
from tests.factories import BookedDealFactory, RecommendationFactory, SellerFactory

pytestmark = pytest.mark.django_db

ADMIN_PAGES = ["sellers:list", "sellers:create", "apikeys:list", "apikeys:create", "accounts:users", "llm:usage"]


@pytest.fixture
def objects(django_user_model):
    seller = SellerFactory(name="Acme Media")
    key, _ = api_key_create(name="reporting", scopes=[Scope.READ])
    other = django_user_model.objects.create_user("other", "other@example.com", PASSWORD)
    return {"seller": seller, "key": key, "user": other}


def _pages(objects) -> list[str]:
    return [reverse(name) for name in ADMIN_PAGES] + [
        reverse("sellers:edit", args=[objects["seller"].pk]),
        reverse("apikeys:revoke", args=[objects["key"].pk]),
    ]


def _posts(objects) -> list[tuple[str, dict]]:
    seller, key, user = objects["seller"].pk, objects["key"].pk, objects["user"].pk
    return [
        (reverse("sellers:create"), {"name": "Sneaky", "base_url": "http://127.0.0.1:1", "max_concurrency": 4}),
        (reverse("sellers:edit", args=[seller]), {"name": "Renamed", "base_url": "http://127.0.0.1:2"}),
        (reverse("sellers:disable", args=[seller]), {}),
        (reverse("sellers:enable", args=[seller]), {}),
        (reverse("sellers:test_connection", args=[seller]), {}),
        (reverse("sellers:reset_breaker", args=[seller]), {}),
        (reverse("apikeys:create"), {"name": "mine", "scopes": ["admin"]}),
        (reverse("apikeys:revoke", args=[key]), {}),
        (
            reverse("accounts:user_create"),
            {"username": "new", "role": "admin", "time_zone": "UTC", "password1": "x", "password2": "x"},
        ),
        (reverse("accounts:user_role", args=[user]), {"role": "admin"}),
        (reverse("accounts:user_deactivate", args=[user]), {}),
        (reverse("accounts:user_reactivate", args=[user]), {}),
    ]


def test_an_admin_sees_every_admin_page(client, objects):
    signed_in(client, username="ada", role=Role.ADMIN)
    for url in [*_pages(objects), reverse("pacing:overview")]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert b'name="csrfmiddlewaretoken"' in response.content or b"<form" not in response.content, url


def test_the_navigation_offers_the_admin_pages_to_admins_only(client):
    admin = Client()
    signed_in(admin, username="ada", role=Role.ADMIN)
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    admin_nav = admin.get(reverse("pacing:overview")).context["dashboard_nav"]
    buyer_nav = client.get(reverse("pacing:overview")).context["dashboard_nav"]
    assert {"Sellers", "API keys", "Users", "LLM usage", "Pacing"} <= {item["label"] for item in admin_nav}
    assert {item["label"] for item in buyer_nav} & {"Sellers", "API keys", "Users", "LLM usage"} == set()
    assert "Pacing" in {item["label"] for item in buyer_nav}


def test_a_media_buyer_gets_403_on_every_admin_page(client, objects):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    for url in _pages(objects):
        assert client.get(url).status_code == 403, url


def test_a_media_buyer_gets_403_on_every_admin_action_and_nothing_changes(client, objects):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    for url, data in _posts(objects):
        assert client.post(url, data).status_code == 403, url
    seller, key, user = objects["seller"], objects["key"], objects["user"]
    seller.refresh_from_db()
    key.refresh_from_db()
    user.refresh_from_db()
    assert (seller.name, seller.enabled, seller.calls_total) == ("Acme Media", True, 0)
    assert key.revoked_at is None and user.is_active and not Profile.objects.filter(user=user).exists()
    assert not type(user).objects.filter(username="new").exists()


def test_signed_out_visitors_are_sent_to_sign_in_for_pages_and_actions(client, objects):
    login = reverse("accounts:login")
    for url in [*_pages(objects), reverse("pacing:overview")]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(login), url
    for url, data in _posts(objects):
        response = client.post(url, data)
        assert response.status_code == 302 and response["Location"].startswith(login), url


def test_a_deactivated_admin_is_turned_away(client, objects):
    admin = signed_in(client, username="ada", role=Role.ADMIN)
    type(admin).objects.filter(pk=admin.pk).update(is_active=False)
    assert client.get(reverse("sellers:list")).status_code == 302


def test_every_admin_action_is_csrf_protected(objects):
    strict = Client(enforce_csrf_checks=True)
    signed_in(strict, username="ada", role=Role.ADMIN)
    for url, data in _posts(objects):
        assert strict.post(url, data).status_code == 403, url
    objects["key"].refresh_from_db()
    assert objects["key"].revoked_at is None


def test_actions_refuse_get(client, objects):
    signed_in(client, username="ada", role=Role.ADMIN)
    seller, user = objects["seller"].pk, objects["user"].pk
    for url in [
        reverse("sellers:disable", args=[seller]),
        reverse("sellers:test_connection", args=[seller]),
        reverse("sellers:reset_breaker", args=[seller]),
        reverse("accounts:user_deactivate", args=[user]),
        reverse("accounts:user_role", args=[user]),
    ]:
        assert client.get(url).status_code == 405, url
    objects["seller"].refresh_from_db()
    assert objects["seller"].enabled


def test_unknown_ids_are_404(client):
    signed_in(client, username="ada", role=Role.ADMIN)
    assert client.get(reverse("sellers:edit", args=[999])).status_code == 404
    assert client.post(reverse("sellers:disable", args=[999])).status_code == 404
    assert client.get(reverse("apikeys:revoke", args=[999])).status_code == 404
    assert client.post(reverse("accounts:user_deactivate", args=[999])).status_code == 404


# --- pacing -------------------------------------------------------------------------------------------------


def _deal(status: str, deal_id: str) -> BookedDeal:
    rec = RecommendationFactory(product_name=f"Product for {deal_id}")
    return BookedDealFactory(
        recommendation=rec,
        deal_id=deal_id,
        impressions=2_000_000,
        cpm_micros=15_000_000,
        cost_micros=30_000 * 1_000_000,
        flight_start=date(2026, 12, 1),
        flight_end=date(2026, 12, 31),
        status=status,
    )


def test_a_media_buyer_sees_the_pacing_empty_state_with_the_deals_that_will_be_paced(client):
    _deal(DealStatus.BOOKED, "DEAL-BOOKED-1")
    _deal(DealStatus.FAILED, "DEAL-FAILED-2")
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    response = client.get(reverse("pacing:overview"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "No campaign is delivering yet" in html and "Booked deals not paced yet (1)" in html
    assert "DEAL-BOOKED-1" in html and "$30,000.00" in html
    assert "DEAL-FAILED-2" not in html


def test_the_pacing_page_without_deals_says_so(client):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    html = client.get(reverse("pacing:overview")).content.decode()
    assert "No campaign is delivering yet" in html and "Booked deals not paced yet" not in html
