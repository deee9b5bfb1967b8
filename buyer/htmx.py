"""The request type of pages that read ``request.htmx`` (set by ``django_htmx.middleware.HtmxMiddleware``)."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """For type checking only: every request the middleware has seen carries ``htmx``."""

    htmx: HtmxDetails
