"""Counts written as sentences say them: "1 line", "4 lines" (never "4 line(s)")."""

from __future__ import annotations


def count(n: object, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number it needs: count(1, "deal") is "1 deal", count(3, "deal") "3 deals".

    Takes what an event's payload holds too: a number that is not an int is written as it came, plural."""
    try:
        one = int(n) == 1  # type: ignore[call-overload]
    except (TypeError, ValueError):
        one = False
    shown = f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else str(n)
    return f"{shown} {singular if one else plural or singular + 's'}"


def verb(n: int, singular: str, plural: str) -> str:
    """The verb agreeing with ``n``: verb(1, "awaits", "await") is "awaits"."""
    return singular if n == 1 else plural
