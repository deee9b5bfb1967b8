"""Text the database cannot store: a NUL character (PostgreSQL refuses it in text and in jsonb) or an unpaired
surrogate (no UTF-8 for it, so no database takes it). Input is checked for both where it enters — the REST API's
query strings, bodies and form fields (``StorableTextMiddleware``), MCP tool arguments — and refused naming the
field, before anything reaches the database. Dashboard forms refuse NUL through Django's own CharField validator,
and a page's address holding one gets the error page; form data is UTF-8 decoded with replacement, so it never
carries a surrogate."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render

from buyer.web import is_page

REFUSED_TEXT = "Text must not contain NUL characters (U+0000) or unpaired surrogates"
REFUSED_TYPE = "string_unstorable"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Enough places to fix an input by; a body of thousands of bad strings gets the first ones.
MAX_REPORTED = 20
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Loc = tuple[str | int, ...]


def refused_text(value: Any, loc: Loc = ()) -> list[Loc]:
    """Where a decoded JSON value (or query dict) holds text the database refuses, keys included: the first
    ``MAX_REPORTED`` locations, each ``loc`` followed by the path to the string."""
    found: list[Loc] = []
    for where in _walk(value, loc):
        if where not in found:  # a refused key whose value is refused too is one place
            found.append(where)
            if len(found) == MAX_REPORTED:
                break
    return found


def _walk(value: Any, loc: Loc) -> Iterator[Loc]:
    # A stack, not recursion (a deeply nested body cannot exhaust Python's stack here), in document order; each
    # entry says whether its location ends with a dict key to check too.
    pending: list[tuple[Any, Loc, bool]] = [(value, loc, False)]
    while pending:
        item, where, keyed = pending.pop()
        if keyed and isinstance(where[-1], str) and _UNSTORABLE.search(where[-1]):
            yield where
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                yield where
        elif isinstance(item, dict):
            pending.extend((inner, (*where, key), True) for key, inner in reversed(item.items()))
        elif isinstance(item, list | tuple):
            pending.extend((inner, (*where, index), False) for index, inner in reversed(list(enumerate(item))))


def refusal(locations: list[Loc]) -> list[dict[str, Any]]:
    """The entries of a 422 naming each place, shaped like the API's other validation errors."""
    return [{"type": REFUSED_TYPE, "loc": list(where), "msg": REFUSED_TEXT} for where in locations]


def _fields(data: QueryDict) -> dict[str, Any]:
    """Query or form fields by name: a value, or the list of a repeated field's values (located by index)."""
    return {key: values[0] if len(values) == 1 else values for key, values in data.lists()}


class StorableTextMiddleware:
    """The API's query strings, JSON bodies and form fields, refused with a 422 when they hold text the database
    cannot store. A JSON body that does not parse is left to the route (which answers 400)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_page(request.path_info):
            return self._page(request)
        locations = refused_text(_fields(request.GET), ("query",))
        if not locations and request.method not in SAFE_METHODS:
            locations = self._body(request)
        if locations:
            return JsonResponse({"detail": refusal(locations)}, status=422)
        return self.get_response(request)

    def _page(self, request: HttpRequest) -> HttpResponse:
        """A page's address (filters, searches) and its urlencoded forms (the ones without a form class too) are
        refused here, with the product's error page; an upload's fields are left to their form's own check."""
        posted = (request.content_type or "") == "application/x-www-form-urlencoded"  # not uploads: unread here
        if not refused_text(_fields(request.GET)) and not (posted and refused_text(_fields(request.POST))):
            return self.get_response(request)
        message = (
            "A filter or search in the address, or a field of the form, holds a character that cannot be used "
            "(a NUL character). Remove it and try again."
        )
        page = render(request, "_error.html", {"title": "A character that cannot be used", "message": message})
        page.status_code = 400
        return page

    @staticmethod
    def _body(request: HttpRequest) -> list[Loc]:
        content_type = request.content_type or ""
        if content_type.startswith("multipart/"):
            return []  # an upload (a brief's PDF): its route bounds it before reading; text fields are checked there
        if content_type.startswith("application/x-www-form-urlencoded"):
            return refused_text(_fields(request.POST), ("form",))
        if not request.body:
            return []
        try:
            data = json.loads(request.body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past parsing: the route answers it
            return []
        return refused_text(data, ("body",))
