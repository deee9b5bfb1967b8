"""Reads of dashboard users for the admin pages."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Coalesce

from buyer.accounts.models import Role


def user_list(*, q: str = "", role: str = "", active: bool | None = None) -> QuerySet:
    """People who can sign in, with ``role_value`` and ``time_zone_value`` from their profile (defaults
    without one). Superusers count as admins, as ``roles.user_role`` has it."""
    users = (
        get_user_model()
        .objects.annotate(
            role_value=Coalesce("profile__role", Value(Role.MEDIA_BUYER.value)),
            time_zone_value=Coalesce("profile__time_zone", Value("UTC")),
        )
        .order_by("username")
    )
    if q:
        users = users.filter(Q(username__icontains=q) | Q(email__icontains=q))
    if role == Role.ADMIN:
        users = users.filter(Q(role_value=Role.ADMIN) | Q(is_superuser=True))
    elif role == Role.MEDIA_BUYER:
        users = users.filter(role_value=Role.MEDIA_BUYER, is_superuser=False)
    if active is not None:
        users = users.filter(is_active=active)
    return users


def user_get(user_id: int | str) -> AbstractBaseUser | None:
    try:
        return get_user_model().objects.filter(pk=int(user_id)).first()
    except (TypeError, ValueError):
        return None
