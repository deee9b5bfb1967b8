"""The REST API's URLconf (``buyer.web.ApiHandler``): only the API, and JSON for a path it does not have."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from buyer.api import api
from buyer.metrics.views import metrics
from buyer.unavailable import unavailable_response

urlpatterns = [path("metrics", metrics, name="metrics"), path("", api.urls)]


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Not Found"}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """A 503 when the database or the broker is down (``buyer.unavailable``), otherwise the JSON 500."""
    return unavailable_response(request) or JsonResponse({"detail": "Internal server error"}, status=500)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Bad request"}, status=400)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Forbidden"}, status=403)


handler400 = bad_request
handler403 = forbidden
handler404 = not_found
handler500 = server_error
