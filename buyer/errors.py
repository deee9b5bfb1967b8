"""Errors the services raise for a request that cannot be carried out as asked. Each interface maps them in one
place (the REST API to a JSON answer with ``http_status``, MCP to a tool error, the pages to a 404 or a
message), so no caller checks that a thing exists before calling a service."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses; ``str(error)`` is the message shown to the caller."""

    http_status = 400


class NotFound(DomainError):
    http_status = 404


class Conflict(DomainError):
    """The thing is not in a state that allows the action (or a key was reused for something else)."""

    http_status = 409
