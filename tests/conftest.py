"""Shared fixtures. Services are real: PostgreSQL and Redis when DATABASE_URL/REDIS_URL point at them
(CI always does), otherwise SQLite and the embedded broker. In CI (``CI=true``) a skipped test fails."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--today",
        default=os.environ.get("TEST_TODAY") or None,
        metavar="YYYY-MM-DD",
        help="run the whole suite as if today were this date (time-machine, clock ticking); proves no test "
        "depends on the real date. Processes the tests start (the stack, the browser) keep the real clock.",
    )


def pytest_configure(config: pytest.Config) -> None:
    today = config.getoption("--today")
    if today:
        import datetime as dt

        import time_machine

        moment = dt.datetime.combine(dt.date.fromisoformat(today), dt.time(9, 30), tzinfo=dt.UTC)
        traveller = time_machine.travel(moment, tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


def pytest_report_header(config: pytest.Config) -> str | None:
    today = config.getoption("--today")
    return f"today (time-machine): {today}" if today else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI nothing may be skipped: the run promises PostgreSQL, Redis and a worker, so a skip is a failure."""
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where every service must be present: {reason}"
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_thread(app, *, port: int | None = None, **uvicorn_options) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread; yields its base URL (https when
    ``ssl_certfile`` is among the uvicorn options)."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **uvicorn_options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if uvicorn_options.get('ssl_certfile') else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _readiness_not_kept(monkeypatch):
    """Each test sees readiness as it is now (the public route keeps it a second per process, across tests)."""
    monkeypatch.setattr("buyer.health.checks.READINESS_KEPT_S", 0.0)


@pytest.fixture
def fast_sellers(settings):
    """Sellers only from the database, answering fast or failing fast: for flows against sandbox sellers."""
    settings.SELLER_ENDPOINTS = []
    settings.IAB_SERVER_URL_IS_SET = False
    settings.SELLER_TIMEOUT_SECONDS = 2
    settings.SELLER_MAX_RETRIES = 0
    return settings


@pytest.fixture
def using_postgres() -> bool:
    from django.conf import settings

    return settings.DATABASE_ENGINE == "postgresql"


@pytest.fixture
def needs_postgres(using_postgres: bool) -> None:
    if not using_postgres:
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgresql://... (SQLite has a single writer)")


@pytest.fixture
def needs_redis() -> None:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs Redis: set REDIS_URL=redis://...")


@pytest.fixture
def fresh_rate_limits(settings) -> Iterator[None]:
    """Rate-limit counters of this test alone: a key prefix of its own, in every thread (changing CACHES resets
    Django's cache connections). Never ``clear()``: on Redis that is FLUSHDB, which wipes the counters of the
    test running beside it in another xdist worker — and those workers' API keys share primary keys.

    The clock jumps to the start of the next one-minute window (and ticks on), so a test's requests never
    straddle two windows however slow the machine is."""
    import uuid

    import time_machine

    prefix = f"test-{uuid.uuid4().hex}"
    ratelimit = {**settings.CACHES["ratelimit"], "KEY_PREFIX": prefix}
    if "locmem" in ratelimit["BACKEND"]:
        ratelimit["LOCATION"] = prefix
    settings.CACHES = {**settings.CACHES, "ratelimit": ratelimit}
    window_start = (time.time() // 60 + 1) * 60 + 0.1
    with time_machine.travel(window_start, tick=True):
        yield


@pytest.fixture
def fake_llm(settings, monkeypatch):
    """Agents on, answered by a scripted model provider (``tests/llm/fake.py``); the gateway's backoff waits
    are recorded in ``fake_llm.slept`` instead of slept."""
    import litellm

    from tests.llm.fake import ScriptedLLM

    fake = ScriptedLLM()
    fake.slept = []
    monkeypatch.setattr(litellm, "custom_provider_map", [{"provider": "scripted", "custom_handler": fake.handler()}])
    monkeypatch.setattr("buyer.llm.gateway.pause", fake.slept.append)
    settings.LLM_MODE = "on"
    settings.MANAGER_LLM_MODEL = "scripted/manager"
    settings.DEFAULT_LLM_MODEL = "scripted/specialist"
    settings.LLM_FALLBACK_MODEL = ""
    settings.LLM_PROVIDER_PARAMS = {}
    return fake
