"""Django as the web process serves it: two WSGI handlers behind one WSGI callable.

The REST API (every path the dashboard, the Django admin and static files do not own) runs through a lean
middleware stack: no sessions, CSRF, messages, HTMX or user time zone, none of which an ``X-API-Key`` client
uses; the pages run through the full ``settings.MIDDLEWARE``. Both are the same Django project (one settings
module, one URLconf for the pages; the API's URLconf holds only the API and answers an unknown path with JSON).

``buyer.asgi`` runs this callable in a thread pool beside the MCP transports; ``buyer.wsgi`` serves it alone."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import set_urlconf

# What an API request passes through, in order. Its request id (for the logs); the API's URLconf (so even an
# error raised by a later middleware, such as a disallowed host, is answered by the API's JSON handlers);
# security headers; the body bound (413 JSON); CORS for browser clients; text the database cannot store (422
# JSON); host validation (CommonMiddleware asks for the host); no framing; domain errors mapped to their status.
API_MIDDLEWARE = [
    "buyer.logs.RequestIdMiddleware",
    "buyer.web.ApiUrlconfMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "buyer.middleware.BodySizeMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "buyer.storable.StorableTextMiddleware",  # after CORS: a browser client reads its 422 too
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",  # /docs is HTML: never framed
    "buyer.middleware.DomainErrorMiddleware",
]
API_URLCONF = "buyer.urls_api"

# Paths that belong to the pages (the full middleware): the dashboard, the Django admin, static files and the
# few top-level page routes. Everything else is the API.
PAGE_PREFIXES = ("/app/", "/admin/", "/static/")
PAGE_PATHS = frozenset({"/", "/app", "/admin", "/favicon.ico", "/redoc"})  # "/app" and "/admin" redirect to "…/"


def is_page(path: str) -> bool:
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)


class ApiUrlconfMiddleware:
    """Resolve the request, and answer its errors, with the API's URLconf."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        request.urlconf = API_URLCONF
        set_urlconf(API_URLCONF)
        return self.get_response(request)


class ApiHandler(WSGIHandler):
    """Django's WSGI handler with ``API_MIDDLEWARE`` (and so the API's URLconf)."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler reads the list from settings; it is swapped only while this handler builds its chain, which
        # happens once, when the web process builds its application and before it serves anything.
        pages = settings.MIDDLEWARE
        settings.MIDDLEWARE = API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = pages


StartResponse = Callable[..., Any]


def build_wsgi() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """One WSGI callable: pages to the full handler, the API to the lean one."""
    pages, api = WSGIHandler(), ApiHandler()

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        handler = pages if is_page(environ.get("PATH_INFO", "")) else api
        return handler(environ, start_response)

    return application
