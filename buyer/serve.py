"""The web process alone, as a container or a process manager runs it: Granian on ``WEB_HOST:PORT`` with
``WEB_WORKERS`` workers, the same command ``buyer.stack`` uses (``web_argv``), exec'd so signals reach it.

    python -m buyer.serve
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")
    from django.conf import settings  # reads .env and checks every variable before the server starts

    from buyer.metrics.multiproc import metrics_dir_prepare
    from buyer.stack import web_argv

    argv = web_argv(port=settings.PORT, workers=settings.WEB_WORKERS, env=os.environ, host=settings.WEB_HOST)
    # The web workers' HTTP counters, summed by /metrics, in a directory of this server's (emptied first).
    env = metrics_dir_prepare(os.environ, port=settings.PORT)
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own fixed argv, no shell


if __name__ == "__main__":
    main()
