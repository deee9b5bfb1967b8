"""Seller connections share one TLS context that verifies like httpx's default (CA bundle, host names)."""

from __future__ import annotations

import ssl

from buyer.sellers.client import SellerRestClient
from buyer.sellers.tls import tls_context


def _pool_context(client: SellerRestClient) -> ssl.SSLContext:
    return client._http._client._transport._pool._ssl_context


def test_clients_share_one_context_that_verifies_certificates_and_host_names():
    with SellerRestClient("https://one.test") as one, SellerRestClient("https://two.test") as two:
        shared = _pool_context(one)
        assert shared is _pool_context(two) is tls_context()
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
    assert shared.cert_store_stats()["x509_ca"] > 0  # a CA bundle is loaded
