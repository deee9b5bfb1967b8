"""The buyer's RFC 9421 request-signing identity for AdCP sellers that demand signed orders.

One Ed25519 key pair signs every signed call (the buyer is one agent to its sellers). The private key is stored
only encrypted, like seller credentials (``crypto``, ``SELLER_CREDENTIALS_KEY``); the public keys are published
as a JWKS at ``GET /.well-known/jwks.json`` for sellers to verify against. ``manage.py adcp_signing_key create``
makes a key (the newest unretired one signs; older ones stay published until retired, so a rotation never
breaks a seller's cached JWKS), ``list`` shows them, ``retire KID`` withdraws one.

A seller row with ``sign_requests`` set gets the key on its client; the ``adcp`` library then signs each
operation the seller's ``get_adcp_capabilities`` lists under ``request_signing`` (``required_for``,
``warn_for``, ``supported_for``). Written with ``cryptography`` alone: the web process, which serves the JWKS,
never imports the ``adcp`` package (``tests/sellers/test_signing.py`` checks the JWK against the package's own).
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

ALG = "ed25519"


class SigningUnavailable(Exception):
    """Signing is asked for but no active key exists (run ``manage.py adcp_signing_key create``)."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(private_pem: bytes, *, kid: str) -> dict[str, Any]:
    """The AdCP request-signing JWK of an Ed25519 private key (the shape ``adcp-keygen`` publishes)."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("an Ed25519 private key is required")
    raw = key.public_key().public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "key_ops": ["verify"],
        "adcp_use": "request-signing",
        "kid": kid,
        "x": _b64url(raw),
    }


def key_create() -> Any:
    """A new signing key, stored encrypted; it signs from now on."""
    from buyer.sellers.models import SigningKey

    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    kid = "buyer-" + secrets.token_hex(8)
    key = SigningKey(kid=kid, alg=ALG, public_jwk=public_jwk(pem, kid=kid))
    key.set_private_pem(pem)
    key.save()
    return key


def active_key() -> tuple[bytes, str]:
    """The private key (PEM) and kid that sign now; ``SigningUnavailable`` when there is none."""
    from buyer.sellers.models import SigningKey

    key = SigningKey.objects.filter(retired_at__isnull=True).order_by("-created_at", "-pk").first()
    if key is None:
        raise SigningUnavailable(
            "this seller requires signed requests and the buyer has no signing key: "
            "run `python manage.py adcp_signing_key create`"
        )
    return key.private_pem(), key.kid


def jwks() -> dict[str, Any]:
    """The published public keys: every unretired one, newest first."""
    from buyer.sellers.models import SigningKey

    keys = SigningKey.objects.filter(retired_at__isnull=True).order_by("-created_at", "-pk")
    return {"keys": [dict(k.public_jwk) for k in keys]}
