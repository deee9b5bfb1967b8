"""Seller credentials encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

Keys come from ``settings.SELLER_CREDENTIALS_KEY``: a list of urlsafe-base64 32-byte Fernet keys, the first
encrypts and all of them decrypt, so a key is rotated by putting the new one first and re-encrypting
(``services.seller_rotate_credentials``) before the old one is dropped. Without a configured key (development
only: production refuses to start) the key is derived from ``SECRET_KEY`` with HKDF-SHA256. That derived key
also stays last in the decrypt list once real keys are configured, so credentials stored before the switch
remain readable until they are rotated.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Changing this label changes every derived key: credentials stored under the old one become unreadable.
DERIVATION_CONTEXT = b"media-buyer-agent/seller-credentials/fernet/v1"


class CredentialUnreadable(Exception):
    """A stored credential that none of the configured keys can decrypt (wrong or rotated-out key)."""


def derive_key(secret_key: str) -> bytes:
    """A Fernet key derived from ``SECRET_KEY``: deterministic, and unrelated to any other use of it."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVATION_CONTEXT).derive(
        secret_key.encode("utf-8")
    )
    return base64.urlsafe_b64encode(raw)


@functools.lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    derived = derive_key(secret_key)
    configured = [key.encode("ascii") for key in keys]
    ordered = [*configured, derived] if derived not in configured else configured
    return MultiFernet([Fernet(key) for key in ordered])


def _current() -> MultiFernet:
    # Read at call time so ``override_settings`` (tests, key rotation) takes effect without a restart.
    return _fernet(tuple(settings.SELLER_CREDENTIALS_KEY), settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        # Nothing from the token or the key in the message: either could end up in a log line.
        raise CredentialUnreadable(
            "stored seller credential cannot be decrypted with SELLER_CREDENTIALS_KEY; re-enter it in the admin"
        ) from None


def rotate(token: str) -> str:
    """The same plaintext, re-encrypted with the first (current) key."""
    try:
        return _current().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise CredentialUnreadable("stored seller credential cannot be decrypted; it was not rotated") from None
