from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

# Pacing's set-based SQL uses UPDATE … FROM and INSERT … ON CONFLICT … DO UPDATE on SQLite.
MIN_SQLITE = (3, 33, 0)


class PacingConfig(AppConfig):
    name = "pacing"
    verbose_name = "Budget pacing"

    def ready(self) -> None:
        checks.register(sqlite_is_recent_enough, checks.Tags.database)


def sqlite_is_recent_enough(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    import sqlite3

    from django.db import connections

    found = tuple(int(part) for part in sqlite3.sqlite_version.split("."))
    if any(c.vendor == "sqlite" for c in connections.all()) and found < MIN_SQLITE:
        return [
            checks.Error(
                f"SQLite {sqlite3.sqlite_version} is too old for pacing (needs 3.33 or newer)",
                hint="Use a Python built with a newer SQLite, or DATABASE_URL=postgresql://…",
                id="pacing.E001",
            )
        ]
    return []
