"""HTTP requests by route, method and status, counted where the web process answers them: the ASGI dispatcher
(``buyer.asgi``) observes every request, whether ``/health``, MCP, a fast read or Django answered it.

The route is the URL pattern (``/bookings/<job_id>``), never the raw path, so the number of series stays small;
a path no pattern takes is ``<unmatched>``. In a server with several workers each writes its own files under
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them (``buyer.metrics.multiproc``)."""

from __future__ import annotations

import time
from functools import lru_cache

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The in-process registry, exposed when the server runs one process without a multiprocess directory. In
# multiprocess mode the values live in files and ``/metrics`` reads them through a MultiProcessCollector.
REGISTRY = CollectorRegistry(auto_describe=True)
UNMATCHED = "<unmatched>"
STATIC = "/static/"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "buyer_http_requests",
    "HTTP requests answered, by route pattern, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "buyer_http_request_duration_seconds",
    "Time from a request's arrival to its last byte, by route pattern and method.",
    ["route", "method"],
    registry=REGISTRY,
)


@lru_cache(maxsize=4096)
def route_label(path: str) -> str:
    """The URL pattern that serves ``path`` in the URLconf that answers it (the pages' or the API's)."""
    from django.conf import settings
    from django.urls import Resolver404, resolve

    from buyer.web import API_URLCONF, is_page

    if path.startswith(STATIC):
        return STATIC
    try:
        match = resolve(path, settings.ROOT_URLCONF if is_page(path) else API_URLCONF)
    except Resolver404:
        return UNMATCHED
    except Exception:  # noqa: BLE001 - a path the resolver cannot even read (NUL bytes): counted, never raised
        return UNMATCHED
    return "/" + match.route if match.route else UNMATCHED


def http_observe(*, route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "other"
    REQUESTS.labels(route, method, str(status)).inc()
    DURATION.labels(route, method).observe(seconds)


async def observed(app: ASGIApp, scope: Scope, receive: Receive, send: Send, *, route: str | None = None) -> None:
    """Run the ASGI ``app`` on an HTTP request and count its answer (500 when it raised before answering)."""
    started = time.perf_counter()
    status = 500

    async def send_observed(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, send_observed)
    finally:
        http_observe(
            route=route or route_label(scope["path"]),
            method=scope["method"],
            status=status,
            seconds=time.perf_counter() - started,
        )
