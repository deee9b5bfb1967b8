from __future__ import annotations

import pytest

from buyer.sellers.models import Seller
from buyer.sellers.services import seller_seed_from_settings

pytestmark = pytest.mark.django_db


def test_seller_endpoints_seed_sellers_without_overwriting_admin_edits(settings):
    settings.SELLER_ENDPOINTS = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
    seller_seed_from_settings()
    assert Seller.objects.count() == 2
    Seller.objects.filter(base_url="http://127.0.0.1:9001").update(name="Acme Media", enabled=False)
    seller_seed_from_settings()
    edited = Seller.objects.get(base_url="http://127.0.0.1:9001")
    assert (edited.name, edited.enabled, Seller.objects.count()) == ("Acme Media", False, 2)


def test_iab_server_url_is_a_seller_only_when_set_and_no_endpoints_are(settings):
    settings.SELLER_ENDPOINTS = []
    settings.IAB_SERVER_URL = "http://127.0.0.1:9100"
    settings.IAB_SERVER_URL_IS_SET = False
    assert seller_seed_from_settings() == []
    settings.IAB_SERVER_URL_IS_SET = True
    assert [s.base_url for s in seller_seed_from_settings()] == ["http://127.0.0.1:9100"]


def test_a_seeded_seller_is_named_from_its_agent_card(settings):
    from buyer.sandbox import create_app
    from tests.conftest import serve_in_thread

    with serve_in_thread(create_app(catalog="premium-video")) as url:
        settings.SELLER_ENDPOINTS = [url]
        (seller,) = seller_seed_from_settings()
    assert seller.name == "Sandbox Seller (premium video)"


def test_a_seller_no_longer_configured_is_disabled_unless_an_admin_made_it_theirs(settings):
    from buyer.sellers.services import seller_save_settings

    settings.SELLER_ENDPOINTS = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
    old, kept = seller_seed_from_settings()
    kept.notes = "ours now"
    seller_save_settings(seller=kept, changed_fields=["notes"], created=False)

    settings.SELLER_ENDPOINTS = ["http://127.0.0.1:9003"]
    (new,) = seller_seed_from_settings()

    old.refresh_from_db(), kept.refresh_from_db()
    assert (old.enabled, kept.enabled, new.enabled) == (False, True, True)
