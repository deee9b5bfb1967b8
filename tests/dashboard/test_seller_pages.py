"""The sellers pages: health at a glance, add and edit with a write-only credential, and the actions."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from buyer.accounts.models import Role
from buyer.sandbox import create_app
from buyer.sellers.models import BreakerState, Seller
from buyer.sellers.services import seller_set_credential
from tests.campaigns.test_adcp_mtls import pki as pki  # the fixture: a test CA and client certificates
from tests.conftest import free_port, serve_in_thread
from tests.dashboard._admin import message_texts, signed_in
from tests.factories import SellerFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-live-7f3a-dashboard-never-shown"


@pytest.fixture
def admin_client(client):
    signed_in(client, username="ada", role=Role.ADMIN, time_zone="Asia/Tokyo")
    return client


@pytest.fixture
def seller() -> Seller:
    seller = SellerFactory(name="Acme Media", seat_id="seat-1", agency_id="ag-2")
    seller_set_credential(seller=seller, plaintext=SECRET)
    return seller


def _form_data(seller: Seller, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": seller.name,
        "base_url": seller.base_url,
        "enabled": "on" if seller.enabled else None,
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
        "sign_requests": "on" if seller.sign_requests else None,
        "tls_client_cert": seller.tls_client_cert,
        "tls_ca": seller.tls_ca,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _edit(seller: Seller) -> str:
    return reverse("sellers:edit", args=[seller.pk])


def _assert_no_secret(html: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in html


def test_the_list_shows_health_identity_and_credential_status_in_the_users_time_zone(admin_client, seller):
    from datetime import UTC, datetime

    Seller.objects.filter(pk=seller.pk).update(
        breaker_state=BreakerState.OPEN,
        calls_total=20,
        error_rate=0.25,
        latency_ms=1234.4,
        last_success_at=datetime(2026, 11, 20, 3, 0, tzinfo=UTC),
    )
    html = admin_client.get(reverse("sellers:list")).content.decode()
    assert "Acme Media" in html and seller.base_url in html and "REST" in html
    assert "25.0 % errors" in html and "1,234 ms" in html
    assert 'badge-open" title="Circuit breaker">breaker open<' in html
    assert "seat seat-1, agency ag-2" in html and "credential set<" in html
    assert "Nov\u00a020,\u00a02026, 12:00\u00a0JST" in html  # 03:00 UTC in Tokyo


def test_the_credential_never_appears_on_any_page(admin_client, seller):
    ciphertext = Seller.objects.get(pk=seller.pk).credential_ciphertext
    pages = [
        admin_client.get(reverse("sellers:list")),
        admin_client.get(_edit(seller)),
        admin_client.post(_edit(seller), _form_data(seller, name="Acme Media Group"), follow=True),
        # A refused save re-renders the form: the typed credential is not echoed back either.
        admin_client.post(_edit(seller), _form_data(seller, base_url="not a url", credential="sk-typed-new")),
    ]
    for page in pages:
        assert page.status_code == 200
        _assert_no_secret(page.content.decode(), SECRET, ciphertext, "sk-typed-new")
    edit = pages[1].content.decode()
    assert 'type="password"' in edit and "Stored credential: <strong>set</strong>" in edit


def test_adding_a_seller_stores_the_credential_encrypted_and_never_shows_it(admin_client):
    data = _form_data(SellerFactory.build(name="New Seller", base_url="http://127.0.0.1:18001"), credential=SECRET)
    response = admin_client.post(reverse("sellers:create"), data, follow=True)
    created = Seller.objects.get(name="New Seller")
    assert response.redirect_chain[-1][0] == _edit(created)
    assert created.get_credential() == SECRET and SECRET not in created.credential_ciphertext
    assert any("added" in text for text in message_texts(response))
    _assert_no_secret(response.content.decode(), SECRET, created.credential_ciphertext)


def test_a_new_seller_needs_a_name_and_a_valid_url_and_errors_sit_next_to_the_fields(admin_client):
    response = admin_client.post(reverse("sellers:create"), {"name": "", "base_url": "nope", "max_concurrency": 4})
    html = response.content.decode()
    assert response.status_code == 200 and not Seller.objects.exists()
    assert 'id="id_name_error"' in html and 'id="id_base_url_error"' in html and 'aria-invalid="true"' in html


def test_saving_with_a_blank_credential_keeps_it(admin_client, seller):
    response = admin_client.post(_edit(seller), _form_data(seller, name="Acme Media Group"))
    assert response.status_code == 302 and response["Location"] == _edit(seller)
    seller.refresh_from_db()
    assert (seller.name, seller.get_credential()) == ("Acme Media Group", SECRET)


def test_typing_a_credential_replaces_it(admin_client, seller):
    assert admin_client.post(_edit(seller), _form_data(seller, credential="  sk-live-new  ")).status_code == 302
    seller.refresh_from_db()
    assert seller.get_credential() == "sk-live-new"


def test_the_clear_checkbox_removes_the_credential(admin_client, seller):
    assert admin_client.post(_edit(seller), _form_data(seller, clear_credential="on")).status_code == 302
    seller.refresh_from_db()
    assert not seller.has_credential
    assert "Stored credential: <strong>not set</strong>" in admin_client.get(_edit(seller)).content.decode()


def test_typing_and_clearing_the_credential_at_once_is_refused(admin_client, seller):
    response = admin_client.post(_edit(seller), _form_data(seller, credential="sk-other", clear_credential="on"))
    assert response.status_code == 200 and "not both" in response.content.decode()
    seller.refresh_from_db()
    assert seller.get_credential() == SECRET


def test_editing_keeps_health_written_meanwhile_by_workers(admin_client, seller):
    page = admin_client.get(_edit(seller))
    assert page.status_code == 200
    Seller.objects.filter(pk=seller.pk).update(calls_total=7, errors_total=2)
    admin_client.post(_edit(seller), _form_data(seller, trust_level="restricted"))
    seller.refresh_from_db()
    assert (seller.trust_level, seller.calls_total, seller.errors_total) == ("restricted", 7, 2)


def test_disable_and_enable_toggle_the_seller_and_return_to_the_list(admin_client, seller):
    back = reverse("sellers:list") + "?status=enabled"
    response = admin_client.post(reverse("sellers:disable", args=[seller.pk]), {"next": back})
    assert response.status_code == 302 and response["Location"] == back
    seller.refresh_from_db()
    assert not seller.enabled
    html = admin_client.get(reverse("sellers:list")).content.decode()
    assert "disabled: new bookings no longer search it" in html and 'badge-disabled">Disabled<' in html
    admin_client.post(reverse("sellers:enable", args=[seller.pk]))
    seller.refresh_from_db()
    assert seller.enabled and seller.get_credential() == SECRET


def test_an_action_never_redirects_off_the_site(admin_client, seller):
    response = admin_client.post(reverse("sellers:disable", args=[seller.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == _edit(seller)


def test_reset_breaker_closes_it(admin_client, seller):
    Seller.objects.filter(pk=seller.pk).update(breaker_state=BreakerState.OPEN, consecutive_failures=7)
    response = admin_client.post(reverse("sellers:reset_breaker", args=[seller.pk]), follow=True)
    seller.refresh_from_db()
    assert (seller.breaker_state, seller.consecutive_failures) == (BreakerState.CLOSED, 0)
    assert any(text.startswith("Breaker reset for “Acme Media”") for text in message_texts(response))


def test_test_connection_reports_a_healthy_sandbox_seller_and_an_unreachable_one(admin_client):
    with serve_in_thread(create_app()) as url:
        up = SellerFactory(name="Up Seller", base_url=url)
        down = SellerFactory(name="Down Seller", base_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1)
        healthy = admin_client.post(reverse("sellers:test_connection", args=[up.pk]), follow=True)
        failed = admin_client.post(reverse("sellers:test_connection", args=[down.pk]), follow=True)
    assert any(text.startswith("Up Seller: healthy over REST") for text in message_texts(healthy))
    assert any(text.startswith("Down Seller: no healthy answer") for text in message_texts(failed))
    up.refresh_from_db()
    down.refresh_from_db()
    assert (up.calls_total, up.errors_total, down.errors_total) == (1, 0, 1)
    assert up.last_success_at is not None


def test_test_connection_of_a_seller_with_a_credential_never_shows_it(admin_client):
    with serve_in_thread(create_app(api_keys={SECRET: "seat"})) as url:
        seller = SellerFactory(name="Keyed Seller", base_url=url)
        seller_set_credential(seller=seller, plaintext=SECRET)
        response = admin_client.post(reverse("sellers:test_connection", args=[seller.pk]), follow=True)
    assert any(text.startswith("Keyed Seller: healthy") for text in message_texts(response))
    _assert_no_secret(response.content.decode(), SECRET)


def test_seller_text_is_escaped(admin_client):
    SellerFactory(name="<script>alert('x')</script>", notes="<img src=x onerror=alert(1)>")
    html = admin_client.get(reverse("sellers:list")).content.decode()
    assert "<script>alert(" not in html and "&lt;script&gt;alert(" in html


def test_filters_narrow_the_list(admin_client, seller):
    SellerFactory(name="Other Seller", enabled=False)
    url = reverse("sellers:list")
    assert "Other Seller" not in admin_client.get(url + "?status=enabled").content.decode()
    assert "Acme Media" not in admin_client.get(url + "?status=disabled").content.decode()
    assert "Acme Media" in admin_client.get(url + "?q=acme").content.decode()
    assert "No seller matches" in admin_client.get(url + "?breaker=open").content.decode()


def test_the_htmx_filter_returns_only_the_table(admin_client, seller):
    response = admin_client.get(reverse("sellers:list") + "?q=acme", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="seller-table"') and "Acme Media" in html
    assert "<html" not in html and "Add seller" not in html


def test_an_empty_list_says_how_to_add_sellers(admin_client):
    assert "No sellers yet" in admin_client.get(reverse("sellers:list")).content.decode()


# --- request signing and mutual TLS ---------------------------------------------------------------------------


def test_sign_requests_and_the_tls_fields_are_on_the_page_and_survive_other_edits(admin_client, seller):
    page = admin_client.get(_edit(seller)).content.decode()
    for name in ("sign_requests", "tls_client_cert", "tls_client_key", "clear_tls_client_key", "tls_ca"):
        assert f'name="{name}"' in page, name
    assert 'id="tls-key-status"' in page
    admin_client.post(_edit(seller), _form_data(seller, sign_requests="on"))
    seller.refresh_from_db()
    assert seller.sign_requests
    admin_client.post(_edit(seller), _form_data(seller, notes="renewed contract"))
    seller.refresh_from_db()
    assert seller.sign_requests and seller.notes == "renewed contract"


def test_the_tls_client_key_is_replaced_cleared_and_never_shown_back(admin_client, seller, pki):
    cert, key = pki["client"]
    other_cert, other_key = pki["client_2"]
    assert (
        admin_client.post(_edit(seller), _form_data(seller, tls_client_cert=cert, tls_client_key=key)).status_code
        == 302
    )
    seller.refresh_from_db()
    assert seller.get_tls_client_key().strip() == key.strip()
    page = admin_client.get(_edit(seller)).content.decode()
    _assert_no_secret(page, key.splitlines()[1])
    assert "Stored TLS client key: <strong>set" in page
    # Replaced together with its certificate.
    data = _form_data(seller, tls_client_cert=other_cert, tls_client_key=other_key)
    assert admin_client.post(_edit(seller), data).status_code == 302
    seller.refresh_from_db()
    assert (seller.tls_client_cert.strip(), seller.get_tls_client_key().strip()) == (
        other_cert.strip(),
        other_key.strip(),
    )
    # A refused save (an unreadable CA) names the field and never echoes the key typed.
    refused = admin_client.post(_edit(seller), _form_data(seller, tls_client_key=key, tls_ca="garbage"))
    assert refused.status_code == 200
    html = refused.content.decode()
    _assert_no_secret(html, key.splitlines()[1])
    assert "the seller CA certificate is not a PEM certificate" in html
    # Cleared with its certificate; the next save still works.
    data = _form_data(seller, tls_client_cert="", clear_tls_client_key="on")
    assert admin_client.post(_edit(seller), data).status_code == 302
    seller.refresh_from_db()
    assert not seller.tls_client_cert and not seller.has_tls_client_key
    assert admin_client.post(_edit(seller), _form_data(seller, notes="x")).status_code == 302


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"tls_client_cert": "not a pem", "tls_client_key": "k"},
            "the TLS client certificate is not a PEM certificate",
        ),
        ({"tls_client_cert": "-----BEGIN CERTIFICATE-----", "tls_client_key": "nope"}, "not a PEM certificate"),
        ({"tls_client_cert": "not a pem"}, "a client certificate needs its private key"),
        ({"tls_client_key": "key only"}, "a client key needs its certificate"),
    ],
)
def test_unusable_tls_pems_are_refused_next_to_their_field(admin_client, seller, fields, message):
    response = admin_client.post(_edit(seller), _form_data(seller, **fields))
    assert response.status_code == 200 and message in response.content.decode()


def test_a_key_that_is_not_the_certificates_is_refused(admin_client, seller, pki):
    cert, _ = pki["client"]
    _, other_key = pki["client_2"]
    response = admin_client.post(_edit(seller), _form_data(seller, tls_client_cert=cert, tls_client_key=other_key))
    assert (
        response.status_code == 200 and "the TLS client key is not the certificate&#x27;s" in response.content.decode()
    )


def test_typing_and_clearing_the_tls_key_at_once_and_a_private_key_in_a_public_field_are_refused(
    admin_client, seller, pki
):
    cert, key = pki["client"]
    both = admin_client.post(
        _edit(seller), _form_data(seller, tls_client_cert=cert, tls_client_key=key, clear_tls_client_key="on")
    )
    assert both.status_code == 200 and "not both" in both.content.decode()
    for field in ("tls_client_cert", "tls_ca"):
        pasted = admin_client.post(_edit(seller), _form_data(seller, **{field: cert + key}))
        assert pasted.status_code == 200 and "takes certificates only" in pasted.content.decode()
        seller.refresh_from_db()
        assert "PRIVATE KEY" not in seller.tls_client_cert + seller.tls_ca
