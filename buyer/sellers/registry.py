"""Clients for the sellers in the database, configured from each seller's row and settings.

Every client is guarded (``guard.py``): a circuit breaker shared through the seller's row, a per-process cap
on concurrent calls, and health observations kept in memory. Create clients, close them and record their
health from the same (calling) thread; their calls may run in any thread.

    with clients_for(sellers) as clients:      # or client_for(seller) … record_health(clients)
        fetch_catalogs(clients)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from buyer.sellers import services
from buyer.sellers.client import SellerRestClient
from buyer.sellers.crypto import CredentialUnreadable
from buyer.sellers.errors import SellerError
from buyer.sellers.guard import GuardedSellerClient, SellerBreaker, concurrency_slot
from buyer.sellers.models import BreakerState, Protocol, Seller
from buyer.sellers.selectors import seller_get
from buyer.sellers.signing import SigningUnavailable, active_key
from buyer.sellers.types import BuyerIdentity

__all__ = ["client_for", "clients_for", "connection_test", "identity_for", "record_health"]

logger = logging.getLogger("buyer.sellers")


def client_for(seller: Seller) -> GuardedSellerClient:
    """A guarded REST or MCP client for ``seller``, carrying that seller's credential and no other.

    Reads the seller's breaker from the database once (claiming the half-open trial when the cool-down has
    passed) and, for ``protocol=auto``, reads its agent card when the cached answer is missing or stale.
    Never raises for a seller's own misconfiguration: the client refuses each call with a ``SellerError``.
    """
    current = seller_get(seller.pk) if seller.pk is not None else None
    state = current or seller
    breaker = _breaker(seller, state)
    slot = concurrency_slot(seller.pk if seller.pk is not None else seller.base_url, seller.max_concurrency)
    creator = threading.get_ident()

    def flush_on_close(client: GuardedSellerClient) -> None:
        # Callers already close their clients in the calling thread; that is where health is persisted.
        if threading.get_ident() == creator:
            _record_quietly(client)

    common: dict[str, Any] = {
        "breaker": breaker,
        "slot": slot,
        "base_url": seller.base_url,
        "on_close": flush_on_close,
    }
    try:
        credential = seller.get_credential()
    except CredentialUnreadable as exc:
        logger.error("seller %s: %s", seller.name, exc)
        return GuardedSellerClient(None, refusal=SellerError(str(exc), code="credential_unreadable"), **common)

    protocol = _protocol(seller, state, breaker, slot)
    try:
        inner = _inner_client(seller, protocol, credential)
    except ImportError as exc:
        logger.error("seller %s: MCP client unavailable: %s", seller.name, exc)
        refusal = SellerError("this buyer cannot speak MCP yet", code="mcp_unavailable")
        return GuardedSellerClient(None, refusal=refusal, protocol=protocol, **common)
    except (SigningUnavailable, CredentialUnreadable, ValueError) as exc:
        # The seller's signing or TLS set-up cannot be used: refused before anything is sent, saying why.
        logger.error("seller %s: %s", seller.name, exc)
        code = "signing_unavailable" if isinstance(exc, SigningUnavailable) else "client_setup_unusable"
        refusal = SellerError(str(exc), code=code)
        return GuardedSellerClient(None, refusal=refusal, protocol=protocol, **common)
    return GuardedSellerClient(inner, secret=credential, protocol=protocol, **common)


def identity_for(seller: Seller) -> BuyerIdentity | None:
    """The buyer identity to send this seller (``buyer_identity`` in quotes and deals), if any is set."""
    return seller.buyer_identity()


def record_health(clients: Mapping[Any, GuardedSellerClient] | Iterable[GuardedSellerClient]) -> None:
    """Persist what each guarded client observed since the last call. Call from the thread that made them.

    Draining is idempotent: a client recorded twice (here and on close) is counted once.
    """
    items = clients.values() if isinstance(clients, Mapping) else clients
    for client in items:
        if isinstance(client, GuardedSellerClient):
            report = client.drain_health()
            if report is not None and report.seller_id is not None:  # None: an unsaved seller
                services.seller_record_health(report=report)


@contextmanager
def clients_for(sellers: Mapping[str, Seller]) -> Iterator[dict[str, GuardedSellerClient]]:
    """One guarded client per seller, closed and with health recorded when the block ends."""
    clients: dict[str, GuardedSellerClient] = {}
    try:
        for key, seller in sellers.items():
            clients[key] = client_for(seller)
        yield clients
    finally:
        for client in clients.values():
            client.close()
        record_health(clients)


def connection_test(seller: Seller) -> tuple[str, str]:
    """Probe a seller's health through its guarded client: (``success`` | ``warning`` | ``error``, message).

    The probe counts in the seller's health like any other call; an open breaker is reported, not bypassed."""
    client = client_for(seller)
    started = time.perf_counter()
    try:
        healthy = client.health()
    finally:
        client.close()  # also records the probe in the seller's health
    elapsed = (time.perf_counter() - started) * 1000
    if client.refusal is not None:
        return "error", f"{seller.name}: not tested: {client.refusal.message}"
    if healthy:
        via = f" over {client.protocol.upper()}" if client.protocol else ""
        return "success", f"{seller.name}: healthy{via} ({elapsed:,.0f} ms)."
    if client.breaker.state == BreakerState.OPEN and client.breaker.blocked():
        return "warning", (
            f"{seller.name}: not tested, its breaker is open after repeated failures; reset the breaker to test it now."
        )
    return "error", f"{seller.name}: no healthy answer from {seller.base_url}/health ({elapsed:,.0f} ms)."


# --- internals ----------------------------------------------------------------------------------------------


def _breaker(seller: Seller, state: Seller) -> SellerBreaker:
    now = timezone.now()
    cooldown = timedelta(seconds=settings.SELLER_BREAKER_COOLDOWN_SECONDS)
    breaker_state, opened_at = state.breaker_state, state.breaker_opened_at
    if breaker_state != BreakerState.CLOSED and (opened_at is None or now >= opened_at + cooldown):
        if seller.pk is not None and services.seller_claim_breaker_trial(seller_id=seller.pk, now=now):
            breaker_state = BreakerState.HALF_OPEN
        else:
            # Another worker holds the trial: stay open for one more cool-down, as its claim does.
            breaker_state = BreakerState.OPEN
        opened_at = now
    elif breaker_state == BreakerState.HALF_OPEN:
        breaker_state = BreakerState.OPEN  # a live trial belongs to someone else
    return SellerBreaker(
        seller_id=seller.pk,
        seller_name=seller.name,
        state=breaker_state,
        opened_at=opened_at,
        consecutive_failures=state.consecutive_failures,
        failure_threshold=settings.SELLER_BREAKER_FAILURES,
        cooldown=cooldown,
    )


def _protocol(seller: Seller, state: Seller, breaker: SellerBreaker, slot: Any) -> str:
    """``rest``, ``mcp`` or ``adcp``. For ``auto``, the cached discovery, refreshed when due and the seller
    answers: the agent card's protocols, then an AdCP capabilities probe on ``{base_url}/mcp``."""
    if seller.protocol != Protocol.AUTO:
        return seller.protocol
    now = timezone.now()
    if not state.discovery_due(now) or seller.pk is None:
        return state.effective_protocol
    # The agent card is public: fetched without the credential, once, through the same breaker.
    probe = GuardedSellerClient(
        SellerRestClient(seller.base_url, timeout=seller.effective_timeout, max_retries=0),
        breaker=breaker,
        slot=slot,
    )
    try:
        card = probe.agent_card()
    except SellerError as exc:
        if exc.status is None or exc.status >= 500 or exc.code == "invalid_response":
            # Unreachable or unwell: keep what we knew and try again next time.
            return state.effective_protocol
        card = {}  # a seller without an agent card (404 and the like) speaks the REST protocol
    finally:
        probe.close()
    protocol = Protocol.MCP if _offers_mcp(card) else Protocol.REST
    if _offers_adcp(card) or (protocol == Protocol.REST and _answers_adcp(seller)):
        protocol = Protocol.ADCP
    services.seller_record_discovery(seller_id=seller.pk, protocol=protocol, now=now)
    state.discovered_protocol, state.protocol_discovered_at = protocol, now
    return protocol


def _card_protocols(card: dict[str, Any]) -> set[str]:
    capabilities = card.get("capabilities")
    protocols = capabilities.get("protocols") if isinstance(capabilities, dict) else None
    if not isinstance(protocols, list):
        return set()
    names = [p.get("name") if isinstance(p, dict) else p for p in protocols]
    return {n.strip().lower() for n in names if isinstance(n, str)}


def _offers_mcp(card: dict[str, Any]) -> bool:
    return "mcp" in _card_protocols(card)


def _offers_adcp(card: dict[str, Any]) -> bool:
    return "adcp" in _card_protocols(card)


def _answers_adcp(seller: Seller) -> bool:
    """Whether ``{base_url}/mcp`` answers ``get_adcp_capabilities`` as a media-buy sales agent (AdCP). Asked
    without the credential (capabilities are public) and bounded by the seller's timeout; any failure is "no"."""
    try:
        from buyer.sellers.adcp_preload import adcp_ready

        adcp_ready()
        from buyer.sellers.adcp_client import SellerAdcpClient
    except ImportError:  # pragma: no cover - adcp is a locked dependency
        return False
    with SellerAdcpClient(seller.base_url, timeout=min(seller.effective_timeout, 5.0), max_retries=0) as probe:
        return probe.health()


def _inner_client(seller: Seller, protocol: str, credential: str | None) -> Any:
    options: dict[str, Any] = {
        "credential": credential,
        "credential_scheme": seller.credential_scheme,
        "timeout": seller.effective_timeout,
        "max_retries": settings.SELLER_MAX_RETRIES,
    }
    if protocol == Protocol.ADCP:
        # Imported here: the AdCP client costs seconds and hundreds of MiB to import (its typed models), and
        # built one thread at a time (adcp_ready).
        from buyer.sellers.adcp_preload import adcp_ready

        adcp_ready()
        from buyer.sellers.adcp_client import SellerAdcpClient

        return SellerAdcpClient(
            seller.base_url,
            brand_domain=settings.ADCP_BRAND_DOMAIN,
            operator_domain=settings.ADCP_OPERATOR_DOMAIN or None,
            webhook_seller=seller.pk,
            signing=active_key() if seller.sign_requests else None,
            tls=(seller.tls_client_cert, seller.get_tls_client_key(), seller.tls_ca),
            **options,
        )
    if protocol == Protocol.MCP:
        # Imported here: the MCP client is optional at import time and pulls in the MCP SDK.
        from buyer.sellers.mcp_client import SellerMcpClient

        return SellerMcpClient(seller.base_url, transport=seller.mcp_transport, **options)
    return SellerRestClient(seller.base_url, **options)


def _record_quietly(client: GuardedSellerClient) -> None:
    try:
        record_health([client])
    except DatabaseError:
        # Health is bookkeeping: losing one report must not replace the exception a caller is handling.
        logger.warning("could not record health for seller %s", client.base_url, exc_info=True)
