"""Counts written as sentences say them: "1 line", "4 lines" (never "4 line(s)")."""

from __future__ import annotations


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number it needs: count(1, "deal") is "1 deal", count(3, "deal") "3 deals"."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def verb(n: int, singular: str, plural: str) -> str:
    """The verb agreeing with ``n``: verb(1, "awaits", "await") is "awaits"."""
    return singular if n == 1 else plural
