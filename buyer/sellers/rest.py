"""HTTP plumbing shared by every seller REST call: credentials, bounded retries, error envelopes.

Nothing here knows about products or deals; ``client.py`` turns the decoded JSON into domain types.
Sellers are counterparties, not trusted services: bodies are size-capped, every piece of seller text that
reaches an exception message is truncated, and the credential is scrubbed from anything we echo back.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from buyer.sellers.tls import tls_context
from buyer.words import count

from .errors import SellerError

logger = logging.getLogger("buyer.sellers")

USER_AGENT = "media-buyer-agent/0.1.0 (AI media buyer; seller REST client)"
CREDENTIAL_SCHEMES = ("api_key", "bearer")
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_BACKOFF_S = 5.0
MAX_RETRY_AFTER_S = 10.0
MAX_EXCERPT = 200
_MAX_VALIDATION_ITEMS = 10
_CODE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

# Resolved at call time (not bound as a default argument) so tests can monkeypatch
# ``buyer.sellers.rest.sleep`` without touching the global ``time`` module.
sleep: Callable[[float], None] = time.sleep


class Secret:
    """A credential that cannot leak through ``repr``/``str``/logging by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def excerpt(text: str, limit: int = MAX_EXCERPT) -> str:
    """Seller text made safe for an exception message: printable and at most ``limit`` characters."""
    head = text[: limit + 1]
    cleaned = "".join(ch if ch.isprintable() else " " for ch in head).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def path_segment(value: str) -> str:
    """Quote an identifier for use as one path segment.

    Identifiers come from seller responses and LLM output; unquoted, ``"../auth/api-keys"`` would
    address a different endpoint of the seller with our credential attached.
    """
    if not isinstance(value, str) or not value.strip() or value in {".", ".."}:
        raise ValueError("identifier must be a non-empty string other than '.' or '..'")
    return quote(value, safe="")


def retry_after_seconds(value: str | None) -> float | None:
    """Numeric ``Retry-After`` capped at 10 s; the HTTP-date form falls back to our own backoff."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


class SellerHttp:
    """One seller's HTTP connection: sends a request, retries transient failures, decodes JSON."""

    # Bodies are read in chunks and abandoned past this size (after decompression), so a hostile or
    # broken seller cannot exhaust the worker's memory.
    max_response_bytes: int = 16 * 1024 * 1024

    def __init__(
        self,
        base_url: str,
        *,
        credential: str | None,
        credential_scheme: str,
        timeout: float,
        max_retries: int,
        backoff_base: float,
        transport: httpx.BaseTransport | None,
        sleep_fn: Callable[[float], None] | None,
    ) -> None:
        if credential_scheme not in CREDENTIAL_SCHEMES:
            raise ValueError(f"credential_scheme must be one of {CREDENTIAL_SCHEMES}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.credential_scheme = credential_scheme
        self._credential = Secret(credential) if credential else None
        self._sleep_fn = sleep_fn
        # The credential is added per request rather than as a default header: httpx masks
        # ``Authorization`` in ``repr(headers)`` but not ``X-Api-Key``. Redirects are not followed so the
        # key is never replayed to whatever host a seller (or an attacker in its path) points us at.
        self._client = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            verify=tls_context(),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    @property
    def has_credential(self) -> bool:
        return self._credential is not None

    def close(self) -> None:
        self._client.close()

    def scrub(self, text: str, limit: int = MAX_EXCERPT) -> str:
        """Seller-supplied text → short, printable, and without our credential (sellers echo keys back)."""
        if self._credential is not None:
            secret = self._credential.reveal()
            text = text[: limit + len(secret) + 1].replace(secret, "***")
        return excerpt(text, limit)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
    ) -> tuple[int, Any]:
        """Send with bounded retries; return ``(status, decoded JSON)`` or raise ``SellerError``.

        Retrying a POST is safe because every buyer POST that changes seller state (quotes, deals,
        negotiation messages) carries an ``idempotency_key``: the seller replays the original answer
        instead of creating a second quote or deal. The only other POST, media-kit search, is a read.
        """
        retries = self.max_retries if max_retries is None else max_retries
        attempts = retries + 1
        for attempt in range(attempts):
            started = time.monotonic()
            retry_after: float | None = None
            try:
                status, headers, content = self._send(method, path, params, body)
            except httpx.TimeoutException:
                self._log(method, path, "timeout", started)
                code, status_or_none, message = "timeout", None, f"no response within {self.timeout:g}s"
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                # Refused, reset, or dropped mid-response: the seller may be restarting.
                self._log(method, path, "connection_error", started)
                code, status_or_none, message = "connection_error", None, self._describe(exc)
            except httpx.HTTPError as exc:
                # Bad URL, unsupported scheme and the like: a retry cannot fix configuration.
                self._log(method, path, "transport_error", started)
                raise SellerError(self._describe(exc), code="transport_error") from None
            else:
                self._log(method, path, status, started)
                if 200 <= status < 300:
                    return status, self._decode(method, path, status, content)
                if status not in RETRY_STATUSES:
                    code, message = self._error_details(status, content)
                    raise SellerError(message, status=status, code=code)
                code, status_or_none = f"http_{status}", status
                message = self._error_details(status, content)[1]
                retry_after = retry_after_seconds(headers.get("retry-after"))
            if attempt == attempts - 1:
                raise SellerError(
                    f"{message} (gave up after {count(attempts, 'attempt')})",
                    status=status_or_none,
                    code=code,
                    retryable=True,
                )
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            logger.debug("seller %s %s: %s, retrying in %.2f s", method, path, code, delay)
            self._pause(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    # -- internals -------------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: Mapping[str, Any] | None
    ) -> tuple[int, httpx.Headers, bytes]:
        with self._client.stream(method, path, params=params, json=body, headers=self._auth_headers()) as response:
            return response.status_code, response.headers, self._read_capped(response)

    def _auth_headers(self) -> dict[str, str]:
        if self._credential is None:
            return {}
        if self.credential_scheme == "bearer":
            return {"Authorization": f"Bearer {self._credential.reveal()}"}
        return {"X-Api-Key": self._credential.reveal()}

    def _read_capped(self, response: httpx.Response) -> bytes:
        limit = self.max_response_bytes
        declared = response.headers.get("content-length", "")
        too_large = SellerError(
            f"response body exceeds {limit} bytes", status=response.status_code, code="invalid_response"
        )
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode(self, method: str, path: str, status: int, content: bytes) -> Any:
        try:
            return json.loads(content)
        except (ValueError, RecursionError):
            # RecursionError: deeply nested JSON is a cheap way to crash a naive client.
            head = self.scrub(content[: 4 * MAX_EXCERPT].decode("utf-8", "replace"), 60)
            raise SellerError(
                f"{method} {path}: response is not JSON ({head!r})", status=status, code="invalid_response"
            ) from None

    def _error_details(self, status: int, content: bytes) -> tuple[str, str]:
        """Any of the seller's three error envelopes (or none) → ``(code, message)``."""
        fallback_code = f"http_{status}"
        fallback_message = httpx.codes.get_reason_phrase(status) or "error"
        try:
            payload = json.loads(content)
        except (ValueError, RecursionError):
            text = self.scrub(content[: 4 * MAX_EXCERPT].decode("utf-8", "replace"))
            return fallback_code, text or fallback_message
        detail = payload.get("detail") if isinstance(payload, dict) else None
        if isinstance(detail, list):
            return "validation_error", self._validation_message(detail)
        if isinstance(detail, str):
            return fallback_code, self.scrub(detail) or fallback_message
        envelope = detail if isinstance(detail, dict) else payload if isinstance(payload, dict) else {}
        raw_code = envelope.get("error")
        code = raw_code if isinstance(raw_code, str) and _CODE_RE.match(raw_code) else fallback_code
        raw_message = envelope.get("message")
        message = self.scrub(raw_message) if isinstance(raw_message, str) else ""
        return code, message or (code if code != fallback_code else fallback_message)

    def _validation_message(self, items: list[Any]) -> str:
        # Pydantic echoes our request back in ``input``; only ``loc`` and ``msg`` are useful to a human.
        parts: list[str] = []
        for item in items[:_MAX_VALIDATION_ITEMS]:
            if not isinstance(item, dict):
                continue
            loc = item.get("loc")
            where = ".".join(str(p) for p in loc) if isinstance(loc, list) else str(loc or "?")
            parts.append(f"{self.scrub(where, 80)}: {self.scrub(str(item.get('msg') or 'invalid'), 120)}")
        if len(items) > _MAX_VALIDATION_ITEMS:
            parts.append(f"(+{len(items) - _MAX_VALIDATION_ITEMS} more)")
        return "; ".join(parts) or "request failed validation"

    def _describe(self, exc: Exception) -> str:
        return self.scrub(f"{type(exc).__name__}: {exc}")

    def _backoff(self, attempt: int) -> float:
        # Jitter keeps many workers that failed together from hammering a recovering seller in lockstep.
        ceiling = min(self.backoff_base * 2**attempt, MAX_BACKOFF_S)
        return random.uniform(ceiling / 2, ceiling)

    def _pause(self, seconds: float) -> None:
        (self._sleep_fn if self._sleep_fn is not None else sleep)(seconds)

    @staticmethod
    def _log(method: str, path: str, outcome: int | str, started: float) -> None:
        logger.debug("seller %s %s -> %s in %.1f ms", method, path, outcome, (time.monotonic() - started) * 1000)
