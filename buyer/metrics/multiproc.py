"""Where the web workers of one server keep their HTTP counters (prometheus_client's multiprocess mode): a
directory named by ``PROMETHEUS_MULTIPROC_DIR``, emptied before the server starts. Imports nothing of Django: the
launcher (``buyer.stack``) and ``buyer.serve`` call it before the web server's workers exist."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir_prepare(env: Mapping[str, str], *, port: int) -> dict[str, str]:
    """``env`` with ``PROMETHEUS_MULTIPROC_DIR`` set (by default ``<var>/metrics/web-<port>``, one per server on
    the machine) and that directory created and emptied of an earlier run's counters."""
    chosen = env.get(ENV, "").strip()
    if chosen:
        directory = Path(chosen)
    else:
        var = Path(env.get("BUYER_VAR_DIR") or Path(__file__).resolve().parents[2] / "var")
        directory = var / "metrics" / f"web-{port}"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return {**env, ENV: str(directory)}


def multiprocess() -> bool:
    return bool(os.environ.get(ENV, "").strip())
