"""Fixtures for the sandbox seller tests: in-process apps via Starlette's TestClient, and a movable clock."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

# Under ``-p no:django`` nothing puts the project root on sys.path (pyproject sets no ``pythonpath``).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

with warnings.catch_warnings():
    # Starlette 1.x warns at import that its TestClient prefers ``httpx2``; the pinned httpx works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from buyer.sandbox import create_app  # noqa: E402

from ._support import API_KEYS, Clock  # noqa: E402

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Starlette 1.x warns that its TestClient prefers ``httpx2``; the pinned httpx works and is what we have.
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"))


def _client(app: Any) -> TestClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TestClient(app)


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Factory: ``make_client(**create_app_kwargs)`` → a TestClient on a fresh sandbox seller."""
    clients: list[TestClient] = []

    def make(**kwargs: Any) -> TestClient:
        kwargs.setdefault("api_keys", API_KEYS)
        client = _client(create_app(**kwargs))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """A default-catalog seller that knows the ``API_KEYS``."""
    return make_client()


@pytest.fixture
def clock(client: TestClient) -> Clock:
    """The default ``client``'s clock, frozen at 2026-11-23 15:00 UTC (a week before ``FLIGHT``)."""
    fake = Clock(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))
    client.app.state.sandbox.clock = fake  # type: ignore[attr-defined]
    return fake
