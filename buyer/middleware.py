"""Page-side mapping of the services' refusals (see ``buyer.errors``), in one place for every page."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.defaults import page_not_found

from buyer.errors import NotFound


class DomainErrorMiddleware:
    """A service that found nothing answers the page's 404; other refusals are handled by each page, which
    knows what to tell the user and where to send them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # The REST API maps these itself (buyer.api) before they reach here.
        if isinstance(exception, NotFound):
            return page_not_found(request, Http404(str(exception)))
        return None


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """The product's 403 for a form sent without (or with a stale) security token."""
    page = render(request, "403.html")
    page.status_code = 403
    return page


class BodySizeMiddleware:
    """A request body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (file uploads aside, which their own views
    bound) is refused before it is read: the API with a JSON 413, the pages with the product's 413 page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and (request.content_type or "").startswith("multipart/"):
            limit += settings.BRIEF_UPLOAD_MAX_BYTES  # an upload: the PDF of a brief, bounded by its own view
        if limit is not None and length > limit:
            message = f"The request body is larger than {limit // 1_000_000 or 1} MB."
            if not request.path.startswith("/app/"):
                return JsonResponse({"detail": message}, status=413)
            page = render(request, "413.html", {"message": f"{message} Shorten what you typed and send it again."})
            page.status_code = 413
            return page
        return self.get_response(request)
