"""The seller admin: health at a glance, a write-only credential, breaker reset and connection test."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse

from buyer.sandbox import create_app
from buyer.sellers.forms import SellerAdminForm
from buyer.sellers.models import BreakerState, Seller
from buyer.sellers.services import seller_set_credential
from tests.conftest import free_port, serve_in_thread
from tests.factories import SellerFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-live-0d8e4c1b-never-shown"


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.fixture
def seller() -> Seller:
    seller = SellerFactory(name="Acme Media", seat_id="seat-1", agency_id="ag-2")
    seller_set_credential(seller=seller, plaintext=SECRET)
    return seller


def _change_url(seller: Seller) -> str:
    return reverse("admin:sellers_seller_change", args=[seller.pk])


def _form_data(seller: Seller, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": seller.name,
        "base_url": seller.base_url,
        "trust_level": seller.trust_level,
        "notes": seller.notes,
        "protocol": seller.protocol,
        "mcp_transport": seller.mcp_transport,
        "timeout_seconds": "" if seller.timeout_seconds is None else seller.timeout_seconds,
        "max_concurrency": seller.max_concurrency,
        "credential_scheme": seller.credential_scheme,
        "seat_id": seller.seat_id,
        "agency_id": seller.agency_id,
        "advertiser_id": seller.advertiser_id,
        "dsp_platform": seller.dsp_platform,
        "credential": "",
        "_save": "Save",
    }
    if seller.enabled:
        data["enabled"] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_the_list_and_change_pages_show_whether_a_credential_is_set_but_never_the_credential(admin_client, seller):
    Seller.objects.filter(pk=seller.pk).update(
        breaker_state=BreakerState.OPEN, calls_total=20, error_rate=0.25, latency_ms=123.4
    )
    ciphertext = Seller.objects.get(pk=seller.pk).credential_ciphertext
    pages = [
        admin_client.get(reverse("admin:sellers_seller_changelist")),
        admin_client.get(_change_url(seller)),
        admin_client.get(reverse("admin:sellers_seller_history", args=[seller.pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert SECRET not in html and ciphertext not in html

    listing, change = pages[0].content.decode(), pages[1].content.decode()
    assert "Acme Media" in listing and "25.0 %" in listing and "123 ms" in listing and ">Open<" in listing
    assert "seat seat-1" in listing and "key set" in listing
    assert 'type="password"' in change and ">set<" in change


def test_saving_with_a_blank_credential_keeps_the_stored_one(admin_client, seller):
    response = admin_client.post(_change_url(seller), _form_data(seller, name="Acme Media Group"))
    assert response.status_code == 302
    seller.refresh_from_db()
    assert (seller.name, seller.get_credential()) == ("Acme Media Group", SECRET)


def test_typing_a_credential_replaces_the_stored_one(admin_client, seller):
    response = admin_client.post(_change_url(seller), _form_data(seller, credential="  sk-live-new  "))
    assert response.status_code == 302
    seller.refresh_from_db()
    assert seller.get_credential() == "sk-live-new"


def test_clear_credential_removes_it(admin_client, seller):
    response = admin_client.post(_change_url(seller), _form_data(seller, clear_credential="on"))
    assert response.status_code == 302
    seller.refresh_from_db()
    assert (seller.has_credential, seller.credential_ciphertext) == (False, "")


def test_typing_a_credential_and_clearing_it_at_once_is_refused(admin_client, seller):
    response = admin_client.post(_change_url(seller), _form_data(seller, credential="x", clear_credential="on"))
    assert response.status_code == 200 and "not both" in response.content.decode()
    seller.refresh_from_db()
    assert seller.get_credential() == SECRET


def test_a_new_seller_with_a_credential_is_stored_encrypted(admin_client):
    data = _form_data(SellerFactory.build(name="New Seller"), credential=SECRET)
    response = admin_client.post(reverse("admin:sellers_seller_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Seller.objects.get(name="New Seller")
    assert created.get_credential() == SECRET and SECRET not in created.credential_ciphertext


def test_the_form_never_offers_the_ciphertext_or_health_columns():
    fields = set(SellerAdminForm.base_fields)
    assert not fields & {"credential_ciphertext", "calls_total", "breaker_state", "error_rate", "last_error"}
    assert SellerAdminForm(instance=SellerFactory.build()).fields["credential"].widget.render_value is False


def test_a_new_address_forgets_the_discovered_protocol_and_the_breaker(admin_client, seller):
    Seller.objects.filter(pk=seller.pk).update(
        protocol="auto", discovered_protocol="mcp", breaker_state=BreakerState.OPEN, consecutive_failures=9
    )
    seller.refresh_from_db()
    response = admin_client.post(_change_url(seller), _form_data(seller, base_url="http://127.0.0.1:18999"))
    assert response.status_code == 302
    seller.refresh_from_db()
    assert (seller.discovered_protocol, seller.breaker_state, seller.consecutive_failures) == (
        "",
        BreakerState.CLOSED,
        0,
    )


def test_the_reset_breaker_action_closes_it(admin_client, seller):
    Seller.objects.filter(pk=seller.pk).update(breaker_state=BreakerState.OPEN, consecutive_failures=7)
    response = admin_client.post(
        reverse("admin:sellers_seller_changelist"),
        {"action": "reset_breaker", "_selected_action": [seller.pk]},
        follow=True,
    )
    seller.refresh_from_db()
    assert (seller.breaker_state, seller.consecutive_failures) == (BreakerState.CLOSED, 0)
    assert "Breaker reset for 1 seller" in response.content.decode()


def test_the_test_connection_action_reports_each_sellers_outcome(admin_client):
    with serve_in_thread(create_app()) as url:
        up = SellerFactory(name="Up Seller", base_url=url)
        down = SellerFactory(name="Down Seller", base_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1)
        response = admin_client.post(
            reverse("admin:sellers_seller_changelist"),
            {"action": "test_connection", "_selected_action": [up.pk, down.pk]},
            follow=True,
        )
    notes = {str(m) for m in get_messages(response.wsgi_request)} | {str(m) for m in response.context["messages"]}
    assert any(n.startswith("Up Seller: healthy over REST") for n in notes), notes
    assert any(n.startswith("Down Seller: no healthy answer") for n in notes), notes
    up.refresh_from_db()
    down.refresh_from_db()
    assert (up.calls_total, up.errors_total, down.errors_total) == (1, 0, 1)


def test_filters_and_search_work(admin_client, seller):
    url = reverse("admin:sellers_seller_changelist")
    for query in [
        "?breaker_state=open",
        "?credential=set",
        "?credential=not_set",
        "?trust_level=restricted",
        "?q=acme",
    ]:
        assert admin_client.get(url + query).status_code == 200
    assert "Acme Media" in admin_client.get(url + "?q=seat-1").content.decode()
