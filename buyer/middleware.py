"""Page-side mapping of the services' refusals (see ``buyer.errors``), in one place for every page."""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
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
