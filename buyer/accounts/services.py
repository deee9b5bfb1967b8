from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from buyer.accounts.models import Profile, Role


@transaction.atomic
def user_create(*, username: str, email: str, password: str | None, role: Role, time_zone: str = "UTC"):
    """Create a person who can sign in to the dashboard. Without a password they cannot sign in until
    an admin sets one (Django's password reset or `manage.py changepassword`)."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    if password is None:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    Profile.objects.create(user=user, role=role, time_zone=time_zone)
    return user


class SelfLockout(ValueError):
    """An admin tried to demote or deactivate themselves; another admin has to do that."""


@transaction.atomic
def user_set_role(*, user, role: Role, actor=None) -> None:
    if actor is not None and actor.pk == user.pk and role != Role.ADMIN:
        raise SelfLockout("You cannot demote yourself: another admin has to change your role.")
    Profile.objects.update_or_create(user=user, defaults={"role": role})


def user_set_active(*, user, active: bool, actor=None) -> None:
    if actor is not None and actor.pk == user.pk and not active:
        raise SelfLockout("You cannot deactivate yourself: another admin has to do it.")
    type(user).objects.filter(pk=user.pk).update(is_active=active)
