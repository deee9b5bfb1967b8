"""Dates for tests that talk to processes they started.

``--today`` moves this test process's clock (time-machine); the web server, worker and browser a test starts
keep the real one, so a brief they validate must be dated from the real today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from time_machine import escape_hatch


def processes_today() -> date:
    """Today as the processes this test starts see it: the real date, even while the suite time-travels."""
    if escape_hatch.is_travelling():
        return escape_hatch.datetime.datetime.now(UTC).date()
    return datetime.now(UTC).date()
