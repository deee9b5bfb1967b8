"""The launcher's reaper: stops every process group the launcher (``buyer.stack``) started once the launcher is
gone, however it went — a crash, SIGKILL.

The launcher starts it in a session of its own (a Ctrl-C in the terminal does not reach it) and writes each
service's process group id to its stdin, one per line. After a clean stop it writes ``done`` and the reaper just
exits. Otherwise the kernel closes the pipe when the launcher exits: each group gets SIGTERM, and SIGKILL what is
still there after ``GRACE_SECONDS``. A service's children (Celery's pool and beat, Granian's workers) share its
group, so none outlives it.

    python -m buyer.reaper   # reads process group ids from stdin; nothing else imports it
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

GRACE_SECONDS = 4.0
DONE = "done"  # buyer.stack.REAPER_DONE: written after a clean stop


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_groups(groups: set[int], *, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every group, then SIGKILL the ones still alive after ``grace`` seconds."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(group) for group in groups):
        time.sleep(0.1)
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the launcher's going away stops it
    groups: set[int] = set()
    for line in sys.stdin:
        if line.strip() == DONE:  # the launcher stopped its services itself: nothing is left to stop
            return 0
        with contextlib.suppress(ValueError):
            group = int(line)
            if group > 1:
                groups.add(group)
    stop_groups(groups)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
