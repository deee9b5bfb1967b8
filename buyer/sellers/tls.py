"""One TLS context for every seller connection.

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
