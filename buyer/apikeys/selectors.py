"""Reads of API keys for the admin pages. Only the prefix and digest are stored; neither shows the secret."""

from __future__ import annotations

from django.db.models import QuerySet

from buyer.apikeys.models import ApiKey


def api_key_list(*, status: str = "") -> QuerySet[ApiKey]:
    """Keys newest first, with their creator; ``status`` ``active`` or ``revoked`` narrows the list."""
    keys = ApiKey.objects.select_related("created_by").defer("digest").order_by("-created_at", "-pk")
    if status == "active":
        keys = keys.filter(revoked_at__isnull=True)
    elif status == "revoked":
        keys = keys.filter(revoked_at__isnull=False)
    return keys


def api_key_get(key_id: int | str) -> ApiKey | None:
    try:
        return ApiKey.objects.filter(pk=int(key_id)).first()
    except (TypeError, ValueError):
        return None
