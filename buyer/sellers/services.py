from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from buyer.sellers import crypto
from buyer.sellers.guard import HealthReport
from buyer.sellers.models import BreakerState, Protocol, Seller

logger = logging.getLogger(__name__)


def configured_endpoints() -> list[str]:
    endpoints = list(settings.SELLER_ENDPOINTS)
    if not endpoints and settings.IAB_SERVER_URL_IS_SET:
        endpoints = [settings.IAB_SERVER_URL]
    return endpoints


def seller_seed_from_settings() -> list[Seller]:
    """Create a Seller row for each configured endpoint that has none, named from its agent card; disable the
    sellers seeded earlier from endpoints no longer configured (switching ``make run`` from the sandbox to a
    real seller must not leave the dead sandbox enabled). A seller an admin edited is the admin's: never
    touched here."""
    endpoints = configured_endpoints()
    adcp = [url for url in settings.ADCP_SELLER_ENDPOINTS if url not in endpoints]
    gone = dict(
        Seller.objects.filter(seeded_from_env=True, enabled=True)
        .exclude(base_url__in=endpoints + adcp)
        .values_list("pk", "base_url")
    )
    for url in gone.values():
        logger.info("seller %s is no longer in SELLER_ENDPOINTS: disabled", urlsplit(url).netloc)
    if gone:  # most calls find none: no UPDATE then
        Seller.objects.filter(pk__in=gone, seeded_from_env=True).update(enabled=False)
    seeded = [seller_get_or_create(base_url=url, seeded_from_env=True) for url in endpoints]
    return seeded + [seller_get_or_create(base_url=url, seeded_from_env=True, protocol=Protocol.ADCP) for url in adcp]


def seller_get_or_create(*, base_url: str, seeded_from_env: bool = False, protocol: str = Protocol.REST) -> Seller:
    """The seller at ``base_url``, created if there is none (named from its agent card, else after its host);
    never edits one."""
    seller = Seller.objects.filter(base_url=base_url).first()
    if seller is None:
        try:
            with transaction.atomic():
                seller = Seller.objects.create(
                    name=agent_card_name(base_url) or urlsplit(base_url).netloc,
                    base_url=base_url,
                    seeded_from_env=seeded_from_env,
                    protocol=protocol,
                )
        except IntegrityError:  # another process created it first
            seller = Seller.objects.get(base_url=base_url)
    return seller


def agent_card_name(base_url: str) -> str:
    """The ``name`` of the seller's agent card (``/.well-known/agent.json``), or "" when it has none."""
    try:
        answer = httpx.get(f"{base_url.rstrip('/')}/.well-known/agent.json", timeout=2.0, follow_redirects=False)
        name = answer.json().get("name") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return ""
    if not isinstance(name, str):
        return ""
    cleaned = "".join(ch for ch in name if ch.isprintable()).strip()
    return cleaned[:200]


def seller_save_settings(*, seller: Seller, changed_fields: Iterable[str], created: bool) -> None:
    """Save an admin's edit, writing only the fields the admin changed.

    Health columns are written concurrently by workers (``seller_record_health``); a full ``save()`` from a
    form loaded a moment earlier would put their old values back. A new address or protocol forgets the
    discovered protocol; a new address also starts the breaker afresh.
    """
    if created:
        seller.save()
        return
    fields = set(changed_fields)
    if fields & {"base_url", "protocol"}:
        seller.discovered_protocol, seller.protocol_discovered_at = "", None
        fields |= {"discovered_protocol", "protocol_discovered_at"}
    if "base_url" in fields:
        seller.breaker_state, seller.breaker_opened_at, seller.consecutive_failures = BreakerState.CLOSED, None, 0
        fields |= {"breaker_state", "breaker_opened_at", "consecutive_failures"}
    if fields:
        # An admin's edit makes the seller the admin's: seeding never disables or renames it again.
        seller.seeded_from_env = False
        seller.save(update_fields=sorted(fields | {"updated_at", "seeded_from_env"}))


# --- credentials --------------------------------------------------------------------------------------------


def seller_set_credential(*, seller: Seller, plaintext: str | None) -> None:
    """Store (or with None/blank, remove) the seller's credential, encrypted with the current key."""
    seller.set_credential(plaintext)
    seller.save(update_fields=["credential_ciphertext", "updated_at"])


def seller_rotate_credentials() -> int:
    """Re-encrypt every stored secret (credentials, TLS client keys, request-signing keys) with the first
    SELLER_CREDENTIALS_KEY; returns how many changed.

    Run after putting a new key first, before removing the old one from the list. A credential no key can
    read raises ``crypto.CredentialUnreadable`` before anything is written.
    """
    from buyer.sellers.models import SigningKey

    rotated = {
        pk: crypto.rotate(token)
        for pk, token in Seller.objects.exclude(credential_ciphertext="").values_list("pk", "credential_ciphertext")
    }
    # The mutual-TLS client keys and the request-signing keys are encrypted with the same keys.
    tls_keys = {
        pk: crypto.rotate(token)
        for pk, token in Seller.objects.exclude(tls_client_key_ciphertext="").values_list(
            "pk", "tls_client_key_ciphertext"
        )
    }
    signing = {pk: crypto.rotate(token) for pk, token in SigningKey.objects.values_list("pk", "private_ciphertext")}
    with transaction.atomic():
        for pk, token in rotated.items():
            Seller.objects.filter(pk=pk).update(credential_ciphertext=token)
        for pk, token in tls_keys.items():
            Seller.objects.filter(pk=pk).update(tls_client_key_ciphertext=token)
        for pk, token in signing.items():
            SigningKey.objects.filter(pk=pk).update(private_ciphertext=token)
    return len(rotated) + len(tls_keys) + len(signing)


# --- protocol discovery -------------------------------------------------------------------------------------


def seller_record_discovery(*, seller_id: int, protocol: str, now: datetime | None = None) -> None:
    if protocol not in {Protocol.REST, Protocol.MCP, Protocol.ADCP}:
        raise ValueError(f"discovered protocol must be rest, mcp or adcp, not {protocol!r}")
    Seller.objects.filter(pk=seller_id).update(
        discovered_protocol=protocol, protocol_discovered_at=now or timezone.now()
    )


# --- breaker and health -------------------------------------------------------------------------------------


def seller_claim_breaker_trial(*, seller_id: int, now: datetime | None = None) -> bool:
    """Claim the single trial call of a breaker whose cool-down has passed; True for exactly one claimant.

    A conditional UPDATE, so of several workers creating clients at once only one sees a changed row. The
    claim restarts the cool-down: a trial whose worker died is claimable again one cool-down later.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SELLER_BREAKER_COOLDOWN_SECONDS)
    claimed = (
        Seller.objects.filter(pk=seller_id, breaker_state__in=[BreakerState.OPEN, BreakerState.HALF_OPEN])
        .filter(Q(breaker_opened_at__isnull=True) | Q(breaker_opened_at__lte=cutoff))
        .update(breaker_state=BreakerState.HALF_OPEN, breaker_opened_at=now)
    )
    return claimed == 1


def seller_reset_breaker(*, seller: Seller) -> None:
    """Close the breaker and forget the failure streak (admin action); counters and averages are kept."""
    Seller.objects.filter(pk=seller.pk).update(
        breaker_state=BreakerState.CLOSED, breaker_opened_at=None, consecutive_failures=0
    )
    seller.breaker_state, seller.breaker_opened_at, seller.consecutive_failures = BreakerState.CLOSED, None, 0


def seller_record_health(*, report: HealthReport) -> None:
    """Fold one client's observations into the seller's row in a single atomic UPDATE.

    Every new value is an expression over the row's current value (F), so workers recording at the same
    time add up instead of overwriting each other. A streak of failures that crosses
    SELLER_BREAKER_FAILURES only when added to another worker's streak opens the breaker here, in the
    database, even though neither worker opened it in memory.
    """
    updates: dict[str, Any] = {}
    if report.calls:
        updates.update(
            calls_total=F("calls_total") + report.calls,
            errors_total=F("errors_total") + report.errors,
            error_rate=F("error_rate") * report.decay + report.error_rate_term,
            latency_ms=Coalesce(F("latency_ms"), Value(report.first_latency_ms)) * report.decay + report.latency_term,
            consecutive_failures=(
                Value(report.trailing_failures)
                if report.any_success
                else F("consecutive_failures") + report.trailing_failures
            ),
        )
    if report.last_success_at is not None:
        updates["last_success_at"] = _later("last_success_at", report.last_success_at)
    if report.last_failure_at is not None:
        newer = Q(last_failure_at__isnull=True) | Q(last_failure_at__lt=report.last_failure_at)
        updates["last_failure_at"] = _later("last_failure_at", report.last_failure_at)
        updates["last_error"] = Case(When(newer, then=Value(report.last_error)), default=F("last_error"))
    if report.trailing_failures:
        # The step ended with the seller failing: an auto seller's agent card is read again next time,
        # in case it moved to another protocol.
        updates["protocol_discovered_at"] = Case(
            When(protocol=Protocol.AUTO, then=Value(None)), default=F("protocol_discovered_at")
        )

    if report.opened_at is not None:
        updates.update(breaker_state=Value(BreakerState.OPEN), breaker_opened_at=Value(report.opened_at))
    elif report.closed:
        # Only the trial's owner closes, and only a breaker still waiting on that trial.
        updates.update(
            breaker_state=Case(
                When(breaker_state=BreakerState.HALF_OPEN, then=Value(BreakerState.CLOSED)),
                default=F("breaker_state"),
            ),
            breaker_opened_at=Case(
                When(breaker_state=BreakerState.HALF_OPEN, then=Value(None)), default=F("breaker_opened_at")
            ),
        )
    elif report.trailing_failures and not report.any_success:
        crossing = Q(breaker_state=BreakerState.CLOSED) & Q(
            consecutive_failures__gte=settings.SELLER_BREAKER_FAILURES - report.trailing_failures
        )
        updates.update(
            breaker_state=Case(When(crossing, then=Value(BreakerState.OPEN)), default=F("breaker_state")),
            breaker_opened_at=Case(When(crossing, then=Value(report.last_failure_at)), default=F("breaker_opened_at")),
        )
    if updates and report.seller_id is not None:  # None: an unsaved seller (record_health skips those)
        Seller.objects.filter(pk=report.seller_id).update(**updates)


def _later(field: str, moment: datetime) -> Case:
    newer = Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": moment})
    return Case(When(newer, then=Value(moment)), default=F(field))
