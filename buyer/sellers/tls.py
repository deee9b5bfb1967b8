"""One TLS context for every seller connection, and one per seller that demands mutual TLS.

Building a context loads the CA bundle (about 30 ms of CPU); a client per seller per step, and one per MCP
session, made that a tenth of a booking job's time. A context holds no per-connection state and is safe to
share between threads; it is built on first use the way httpx builds its own (``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` honoured, else certifi), so it verifies exactly what a default client verifies.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def client_tls_context(*, cert_pem: str = "", key_pem: str = "", ca_pem: str = "") -> ssl.SSLContext:
    """A context for one seller that demands mutual TLS and/or has its own CA: our client certificate and key
    (PEM; loaded through a private file that is removed at once, as ``ssl`` reads chains only from files), and
    the seller's CA instead of the default trust when given. Raises ``ValueError`` naming what cannot be read."""
    import os
    import secrets
    import tempfile

    from cryptography.hazmat.primitives import serialization

    try:
        context = ssl.create_default_context(cadata=ca_pem) if ca_pem.strip() else httpx.create_ssl_context()
    except ssl.SSLError as exc:
        raise ValueError(f"the seller's CA certificate cannot be read: {exc}") from None
    if cert_pem.strip():
        # The key goes to the file only encrypted, under a password that lives in this process alone: a file a
        # killed process leaves behind holds nothing usable.
        password = secrets.token_bytes(32)
        try:
            key = serialization.load_pem_private_key(key_pem.strip().encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError("the client key is not an unencrypted PEM private key") from None
        locked = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        ).decode()
        with tempfile.TemporaryDirectory(prefix="buyer-tls-") as folder:
            path = os.path.join(folder, "client.pem")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as chain:
                chain.write(cert_pem.strip() + "\n" + locked)
            try:
                context.load_cert_chain(path, password=password)
            except ssl.SSLError as exc:
                raise ValueError(f"the client certificate and key cannot be used together: {exc}") from None
    return context


class TlsFieldError(ValueError):
    """One of the seller's TLS PEMs is unusable: ``field`` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_client_tls(*, cert_pem: str, key_pem: str, ca_pem: str) -> None:
    """``TlsFieldError`` naming the field and the problem when these PEMs cannot make a TLS client context."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if cert_pem.strip() and not key_pem.strip():
        raise TlsFieldError("tls_client_key", "a client certificate needs its private key")
    if key_pem.strip() and not cert_pem.strip():
        raise TlsFieldError("tls_client_cert", "a client key needs its certificate")
    checks = (
        (
            "tls_client_cert",
            cert_pem,
            "the TLS client certificate is not a PEM certificate",
            x509.load_pem_x509_certificates,
        ),
        ("tls_ca", ca_pem, "the seller CA certificate is not a PEM certificate", x509.load_pem_x509_certificates),
        (
            "tls_client_key",
            key_pem,
            "the TLS client key is not an unencrypted PEM private key",
            lambda data: serialization.load_pem_private_key(data, password=None),
        ),
    )
    for field, pem, message, load in checks:
        if pem.strip():
            try:
                load(pem.strip().encode())
            except (ValueError, TypeError):
                raise TlsFieldError(field, message) from None
    try:
        client_tls_context(cert_pem=cert_pem, key_pem=key_pem, ca_pem=ca_pem)
    except ValueError as exc:
        field = "tls_client_key" if "together" in str(exc) else "tls_ca"
        raise TlsFieldError(
            field, "the TLS client key is not the certificate's" if field == "tls_client_key" else str(exc)
        ) from None
