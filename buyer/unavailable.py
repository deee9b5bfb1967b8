"""A service the product needs is down (the database, or Redis as broker and cache): an answer that says so
quickly, never a request held until a timeout nor an HTML 500. The API answers 503 JSON with ``Retry-After``,
MCP tools a tool error, the pages the product's 503 page, whatever raised it: a view, a middleware (sessions,
the signed-in user) or the connection pool's wait. The connection timeouts that make it quick are the
settings' (``DATABASE_CONNECT_TIMEOUT``, the broker's and cache's socket timeouts)."""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def _types() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    import kombu.exceptions
    import psycopg
    import redis.exceptions

    database = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
    broker = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, kombu.exceptions.OperationalError)
    return database, broker


DATABASE_ERRORS, BROKER_ERRORS = _types()
UNAVAILABLE = DATABASE_ERRORS + BROKER_ERRORS


# PostgreSQL's own codes for "cannot reach me now": connection exceptions (class 08), an administrator's or a crash's
# shutdown, and a server still starting. Anything else (a deadlock, a missing table) is a real error: a 500.
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def _database_unreachable(exc: BaseException) -> bool:
    import psycopg

    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    if isinstance(cause, psycopg.Error):
        # No SQLSTATE: the client could not talk to the server at all (refused, timed out, the pool's wait).
        return cause.sqlstate is None or cause.sqlstate.startswith(_UNREACHABLE_SQLSTATES)
    return isinstance(exc, InterfaceError) or "database is locked" in str(exc)  # SQLite's busy writer


def unavailable_service(exc: BaseException) -> str | None:
    """``database`` or ``broker`` when ``exc`` means that service cannot be reached; None otherwise."""
    if isinstance(exc, DATABASE_ERRORS):
        return "database" if _database_unreachable(exc) else None
    if isinstance(exc, BROKER_ERRORS):
        return "broker"
    return None


def unavailable_message(service: str) -> str:
    return f"The {service} is unavailable; try again in a few seconds"


def unavailable_json(service: str) -> JsonResponse:
    response = JsonResponse({"detail": unavailable_message(service)}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def unavailable_response(request: HttpRequest) -> HttpResponse | None:
    """For the URLconfs' ``handler500`` (Django calls it for any exception a view or a middleware did not
    handle, inside the ``except``): the 503 when the exception being handled means a service is down, else None.
    API paths get JSON, pages the product's 503 page."""
    from buyer.web import is_page

    exc = sys.exc_info()[1]
    service = unavailable_service(exc) if exc is not None else None
    if service is None:
        return None
    logger.warning("%s unavailable for %s: %s", service, request.path, type(exc).__name__)
    if not is_page(request.path_info):
        return unavailable_json(service)
    # No request in the context: the context processors (the signed-in user, the navigation) need the database.
    page = HttpResponse(render_to_string("503.html", {"message": unavailable_message(service)}), status=503)
    page["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return page
