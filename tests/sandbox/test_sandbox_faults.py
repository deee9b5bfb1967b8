"""Fault injection: deterministic 503s, garbage bodies and latency; /health stays clean."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from ._support import product_id, quote_body


def _statuses(client: TestClient, n: int) -> list[int]:
    return [client.get("/products").status_code for _ in range(n)]


def test_failure_rate_follows_the_seeded_sequence(make_client: Callable[..., TestClient]) -> None:
    client = make_client(failure_rate=0.5, seed=7)
    statuses = _statuses(client, 40)
    rng = random.Random(7)
    assert statuses == [503 if rng.random() < 0.5 else 200 for _ in range(40)]
    assert 5 < statuses.count(503) < 35
    # Same seed, fresh seller: the very same failures, request for request.
    assert _statuses(make_client(failure_rate=0.5, seed=7), 40) == statuses
    assert _statuses(make_client(failure_rate=0.5, seed=8), 40) != statuses


def test_a_failure_looks_like_the_reference_503(make_client: Callable[..., TestClient]) -> None:
    client = make_client(failure_rate=1.0)
    response = client.post("/api/v1/quotes", json=quote_body("prod-x", "k"))
    assert response.status_code == 503
    assert response.json() == {"detail": "Service temporarily unavailable"}
    assert client.get("/health").status_code == 200  # a failing seller is still alive


def test_failed_requests_change_no_state(make_client: Callable[..., TestClient]) -> None:
    client = make_client(failure_rate=1.0)
    client.post("/api/v1/quotes", json=quote_body(product_id(client, "Meridian News - Homepage"), "k"))
    assert client.app.state.sandbox._quotes == {}  # type: ignore[attr-defined]


def test_no_failures_by_default(client: TestClient) -> None:
    assert set(_statuses(client, 30)) == {200}


def test_garbage_bodies(make_client: Callable[..., TestClient]) -> None:
    client = make_client(garbage=True)
    for response in (
        client.get("/products"),
        client.get("/products/prod-anything"),
        client.post("/api/v1/quotes", json=quote_body(product_id(client, "Meridian News - Homepage"), "k")),
    ):
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
    assert client.get("/health").json() == {"status": "healthy"}
    assert client.get("/media-kit").json()["total_packages"] > 0


def test_latency_delays_everything_but_health(make_client: Callable[..., TestClient]) -> None:
    client = make_client(latency_ms=150)
    started = time.perf_counter()
    assert client.get("/products").status_code == 200
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    assert client.get("/health").status_code == 200
    assert time.perf_counter() - started < 0.15


def test_bad_fault_settings_are_refused() -> None:
    from buyer.sandbox import create_app

    with pytest.raises(ValueError):
        create_app(failure_rate=1.5)
    with pytest.raises(ValueError):
        create_app(latency_ms=-1)
