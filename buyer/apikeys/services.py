"""API keys: create (secret shown once), authenticate in constant time, revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from buyer.apikeys.models import API_SCOPES, ApiKey, Scope

KEY_PREFIX = "mba"
_LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a stored key, the bootstrap ``API_KEY``, or nobody in an open development setup."""

    name: str
    scopes: frozenset[str]
    api_key_id: int | None = None

    def has_scope(self, scope: str) -> bool:
        """``admin`` has every scope; any key that may use the API (not a metrics-only one) may read it."""
        return (
            Scope.ADMIN in self.scopes
            or scope in self.scopes
            or (scope == Scope.READ and not API_SCOPES.isdisjoint(self.scopes))
        )


BOOTSTRAP = Principal(name="bootstrap API_KEY", scopes=frozenset({Scope.ADMIN}))
OPEN_DEVELOPMENT = Principal(name="open development access", scopes=frozenset({Scope.ADMIN}))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, name: str, scopes: list[str], created_by=None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the full key, which is never retrievable again."""
    unknown = set(scopes) - set(Scope.values)
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(Scope.values)}")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    full_key = f"{KEY_PREFIX}_{prefix}_{secret}"
    key = ApiKey.objects.create(
        name=name, prefix=prefix, digest=_digest(full_key), scopes=sorted(set(scopes)), created_by=created_by
    )
    return key, full_key


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def auth_is_configured() -> bool:
    return bool(settings.API_KEY) or ApiKey.objects.filter(revoked_at__isnull=True).exists()


def api_key_authenticate(presented: str | None) -> Principal | None:
    """The caller for a presented key, or None. With no key configured anywhere, development stays open."""
    if presented:
        prefix = api_key_prefix(presented)
        key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first() if prefix else None
        principal = api_key_match(presented, key)
        if principal is not None and key is not None and principal.api_key_id == key.pk:
            _touch(key)
        return principal
    if settings.ENVIRONMENT == "development" and not auth_is_configured():
        return OPEN_DEVELOPMENT
    return None


def api_key_presented(headers: Mapping[str, str]) -> str | None:
    """The key a request presents: ``X-API-Key``, else ``Authorization: Bearer <key>`` (``headers`` looked up
    case-insensitively, as Django's and Starlette's are)."""
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def api_key_prefix(presented: str) -> str | None:
    """The stored key a presented one names (``mba_<prefix>_<secret>``), or None for any other shape."""
    parts = presented.split("_", 2)
    return parts[1] if len(parts) == 3 and parts[0] == KEY_PREFIX else None


def api_key_match(presented: str, key: ApiKey | None) -> Principal | None:
    """Who a presented key proves to be: the bootstrap ``API_KEY``, or ``key`` (the unrevoked row its prefix
    names, None when there is none). Compared in constant time either way."""
    if settings.API_KEY and hmac.compare_digest(_digest(presented), _digest(settings.API_KEY)):
        return BOOTSTRAP
    if api_key_prefix(presented) is None:
        return None
    # Compare even when no row matched, so timing does not reveal which prefixes exist.
    expected = key.digest if key else _digest(secrets.token_hex(16))
    if hmac.compare_digest(_digest(presented), expected) and key is not None:
        return Principal(name=key.name, scopes=frozenset(key.scopes), api_key_id=key.pk)
    return None


def api_key_use_is_recorded(key: ApiKey) -> bool:
    """Whether ``last_used_at`` is recent enough that this use need not be written."""
    return key.last_used_at is not None and timezone.now() - key.last_used_at <= _LAST_USED_RESOLUTION


def _touch(key: ApiKey) -> None:
    if not api_key_use_is_recorded(key):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
