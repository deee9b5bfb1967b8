from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from buyer.accounts.models import Profile
from buyer.accounts.roles import REQUEST_PROFILE


class UserTimeZoneMiddleware:
    """Show dates in the signed-in person's time zone (their profile), UTC otherwise."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = "UTC"
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            profile = Profile.objects.filter(user=user).only("time_zone", "role").first()
            if profile is not None:
                name = profile.time_zone
                setattr(user, REQUEST_PROFILE, profile)  # for user_role(), for the rest of this request
        try:
            timezone.activate(zoneinfo.ZoneInfo(name))
        except zoneinfo.ZoneInfoNotFoundError:
            timezone.activate(zoneinfo.ZoneInfo("UTC"))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
