"""Dates and times written one way on every page: "Dec 8, 2026" and "Dec 1, 2026, 19:50 CET".

Loaded as template builtins (settings.TEMPLATES), so every template writes ``{{ job.created_at|when }}`` or
``{{ campaign.start_date|day }}`` and gets a ``<time>`` element with the machine-readable value beside the words.
Moments are shown in the reader's time zone (the middleware activates it)."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import dateformat, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

register = template.Library()

DAY = "M j, Y"
CLOCK = "H:i T"
CLOCK_SECONDS = "H:i:s T"
NBSP = "\u00a0"


def _unbroken(words: str) -> str:
    """Words that wrap as one token: a day or a clock time never breaks inside itself in a narrow cell."""
    return words.replace(" ", NBSP)


@register.filter(expects_localtime=True)
def when(value: dt.datetime | str | None, precision: str = "") -> str:
    """A moment as ``<time>``: "Dec 1, 2026, 19:50 CET" (``|when:"seconds"`` adds the seconds).

    Takes an ISO 8601 string too (moments kept in JSON, such as an agent's ``written_at``)."""
    if isinstance(value, str):
        parsed = parse_datetime(value)
        value = timezone.localtime(parsed) if parsed is not None and timezone.is_aware(parsed) else parsed
    if not isinstance(value, dt.datetime):
        return ""
    clock = CLOCK_SECONDS if precision == "seconds" else CLOCK
    words = f"{_unbroken(dateformat.format(value, DAY))}, {_unbroken(dateformat.format(value, clock))}"
    return format_html('<time datetime="{}">{}</time>', value.isoformat(), words)


@register.filter
def day(value: dt.date | None, style: str = "") -> str:
    """A calendar day as ``<time>``: "Dec 8, 2026" (``|day:"weekday"``: "Tue, Dec 8, 2026")."""
    if not isinstance(value, dt.date):
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    words = _unbroken(dateformat.format(value, ("D, " if style == "weekday" else "") + DAY))
    return format_html('<time datetime="{}">{}</time>', value.isoformat(), words)


@register.filter
def flight(start: dt.date | None, end: dt.date | None) -> str:
    """A flight as two ``<time>`` elements: "Dec 8 - Jan 22, 2027" (an en dash), the year once when both share it."""
    if not isinstance(start, dt.date) or not isinstance(end, dt.date):
        return ""
    first = "M j" if start.year == end.year else DAY
    return format_html(
        '<time datetime="{}">{}</time> \N{EN DASH} <time datetime="{}">{}</time>',
        start.isoformat(),
        _unbroken(dateformat.format(start, first)),
        end.isoformat(),
        _unbroken(dateformat.format(end, DAY)),
    )
