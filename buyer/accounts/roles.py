"""Who may do what in the dashboard. Checked on the server for every view and action."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from buyer.accounts.models import Profile, Role

# Where the middleware keeps the signed-in user's profile for the rest of one request.
REQUEST_PROFILE = "_request_profile"


def user_role(user) -> str | None:
    """``admin``, ``media_buyer`` or None (signed out or deactivated). Superusers are admins."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    # The time-zone middleware read the profile for this request already (request-scoped, never stale).
    profile = getattr(user, REQUEST_PROFILE, None) or Profile.objects.filter(user=user).only("role").first()
    return profile.role if profile else Role.MEDIA_BUYER


def is_admin(user) -> bool:
    return user_role(user) == Role.ADMIN


View = Callable[..., HttpResponse]


def media_buyer_required(view: View) -> View:
    """Signed-in media buyers and admins; others are sent to sign in."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if user_role(request.user) is None:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def admin_required(view: View) -> View:
    """Admins only: a media buyer gets 403 for pages and actions alike."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_admin(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper
