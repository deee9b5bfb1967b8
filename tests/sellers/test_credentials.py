"""Seller credentials: encrypted at rest, readable after a key rotation, never shown."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from buyer.sellers import crypto
from buyer.sellers.crypto import CredentialUnreadable
from buyer.sellers.models import Seller
from buyer.sellers.registry import client_for, identity_for, record_health
from buyer.sellers.services import seller_rotate_credentials, seller_set_credential
from buyer.sellers.types import BuyerIdentity
from tests.factories import SellerFactory
from tests.sellers._guard_support import FakeSellerClient, install_fakes

pytestmark = pytest.mark.django_db


@pytest.fixture
def fakes(monkeypatch) -> dict[str, FakeSellerClient]:
    return install_fakes(monkeypatch)


SECRET = "sk-live-5f3a9d7e-agency"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _raw_column(seller: Seller) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Seller._meta.db_table} WHERE id = %s", [seller.pk])
        return " ".join(str(value) for value in cursor.fetchone())


def test_the_credential_is_stored_encrypted_and_never_in_plain_text(settings):
    settings.SELLER_CREDENTIALS_KEY = [NEW_KEY]
    seller = SellerFactory()
    seller_set_credential(seller=seller, plaintext=SECRET)

    assert SECRET not in _raw_column(seller)
    values = Seller.objects.filter(pk=seller.pk).values().get()
    assert SECRET not in repr(values) and values["credential_ciphertext"].startswith("gAAAAA")
    fresh = Seller.objects.get(pk=seller.pk)
    assert fresh.get_credential() == SECRET and fresh.has_credential
    assert SECRET not in str(fresh) and SECRET not in repr(fresh)


def test_a_credential_stays_readable_through_a_key_rotation(settings):
    settings.SELLER_CREDENTIALS_KEY = [OLD_KEY]
    seller = SellerFactory()
    seller_set_credential(seller=seller, plaintext=SECRET)

    settings.SELLER_CREDENTIALS_KEY = [NEW_KEY, OLD_KEY]  # the new key first: it encrypts, both decrypt
    assert Seller.objects.get(pk=seller.pk).get_credential() == SECRET
    assert seller_rotate_credentials() == 1

    settings.SELLER_CREDENTIALS_KEY = [NEW_KEY]  # the old key retired
    assert Seller.objects.get(pk=seller.pk).get_credential() == SECRET
    settings.SELLER_CREDENTIALS_KEY = [OLD_KEY]
    with pytest.raises(CredentialUnreadable) as unreadable:
        Seller.objects.get(pk=seller.pk).get_credential()
    assert "SELLER_CREDENTIALS_KEY" in str(unreadable.value) and SECRET not in str(unreadable.value)


def test_without_a_configured_key_one_is_derived_from_secret_key(settings):
    settings.SELLER_CREDENTIALS_KEY = []
    seller = SellerFactory()
    seller_set_credential(seller=seller, plaintext=SECRET)
    assert Seller.objects.get(pk=seller.pk).get_credential() == SECRET
    assert crypto.derive_key(settings.SECRET_KEY) != crypto.derive_key(settings.SECRET_KEY + "x")

    # Configuring a key later keeps what was stored under the derived key readable, until rotated.
    settings.SELLER_CREDENTIALS_KEY = [NEW_KEY]
    assert Seller.objects.get(pk=seller.pk).get_credential() == SECRET
    seller_rotate_credentials()
    settings.SECRET_KEY = "another-secret-key"
    assert Seller.objects.get(pk=seller.pk).get_credential() == SECRET


def test_a_blank_credential_removes_it_and_control_characters_are_refused():
    seller = SellerFactory()
    seller.set_credential(SECRET)
    seller.set_credential("  ")
    assert (seller.has_credential, seller.get_credential()) == (False, None)
    with pytest.raises(ValueError, match="control characters"):
        seller.set_credential("key\r\nX-Injected: 1")


def test_an_unreadable_credential_refuses_that_sellers_calls_without_blaming_the_seller(settings, fakes):
    settings.SELLER_CREDENTIALS_KEY = [OLD_KEY]
    broken, fine = SellerFactory(), SellerFactory()
    seller_set_credential(seller=broken, plaintext=SECRET)
    fakes[fine.base_url] = FakeSellerClient(fine.base_url)
    settings.SELLER_CREDENTIALS_KEY = [NEW_KEY]

    refused = client_for(broken)
    with pytest.raises(Exception) as error:
        refused.list_products()
    assert getattr(error.value, "code", None) == "credential_unreadable"
    assert refused.health() is False
    assert client_for(fine).list_products() == []
    record_health([refused])
    broken.refresh_from_db()
    assert (broken.calls_total, broken.errors_total) == (0, 0)


def test_the_buyer_identity_comes_from_the_sellers_row():
    seller = SellerFactory(seat_id="seat-7", agency_id="ag-1", dsp_platform="ttd")
    assert identity_for(seller) == BuyerIdentity(seat_id="seat-7", agency_id="ag-1", dsp_platform="ttd")
    assert identity_for(SellerFactory()) is None


def test_a_rotation_re_encrypts_the_tls_client_keys_and_the_signing_keys_too(settings):
    from buyer.sellers.models import SigningKey
    from buyer.sellers.signing import key_create

    settings.SELLER_CREDENTIALS_KEY = [OLD_KEY]
    seller = SellerFactory()
    seller.set_tls_client_key("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----")
    seller.save()
    key = key_create()
    pem = key.private_pem()

    settings.SELLER_CREDENTIALS_KEY = [NEW_KEY, OLD_KEY]
    assert seller_rotate_credentials() == 2
    settings.SELLER_CREDENTIALS_KEY = [NEW_KEY]
    assert "abc" in Seller.objects.get(pk=seller.pk).get_tls_client_key()
    assert SigningKey.objects.get(pk=key.pk).private_pem() == pem
    # Unreadable under a wrong key: each says what it is and what to do.
    settings.SELLER_CREDENTIALS_KEY = [OLD_KEY]
    with pytest.raises(CredentialUnreadable, match="TLS client key"):
        Seller.objects.get(pk=seller.pk).get_tls_client_key()
    with pytest.raises(CredentialUnreadable, match="adcp_signing_key create"):
        SigningKey.objects.get(pk=key.pk).private_pem()
