"""Replay the captured seller responses through ``httpx.MockTransport``: no network, real wire bytes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from buyer.sellers.client import SellerRestClient
from tests.fixtures import SELLER_SAMPLES

SAMPLES = SELLER_SAMPLES
BASE_URL = "http://seller.test"

_ROW = re.compile(r"^\|\s*(?P<file>[\w.]+\.json)\s*\|\s*(?P<method>[A-Z]+)\s+(?P<path>\S+)\s*\|\s*(?P<status>\d{3})")


@dataclass(frozen=True)
class Sample:
    name: str
    method: str
    path: str
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _load_index() -> dict[str, Sample]:
    samples = {}
    for line in (SAMPLES / "INDEX.md").read_text().splitlines():
        m = _ROW.match(line)
        if m:
            name = m["file"]
            samples[name] = Sample(name, m["method"], m["path"], int(m["status"]), (SAMPLES / name).read_bytes())
    return samples


INDEX = _load_index()


@pytest.fixture
def samples() -> dict[str, Sample]:
    """Captured responses by file name, each with the method, path and status INDEX.md records."""
    return INDEX


@dataclass
class Recorder:
    """A MockTransport handler that answers from a script and keeps every request it saw."""

    script: list[Callable[[httpx.Request], httpx.Response] | httpx.Response | Sample | Exception]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, Sample):
            # The capture's own method and path: the client must ask for exactly what produced it.
            if "{" not in step.path:
                assert (request.method, request.url.path) == (step.method, step.path), step.name
            return httpx.Response(step.status, content=step.body, headers={"content-type": "application/json"})
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., tuple[SellerRestClient, Recorder]]]:
    clients: list[SellerRestClient] = []

    def factory(*script: Any, **kwargs: Any) -> tuple[SellerRestClient, Recorder]:
        recorder = Recorder(list(script))
        kwargs.setdefault("sleep", sleeps.append)
        client = SellerRestClient(BASE_URL, transport=httpx.MockTransport(recorder), **kwargs)
        clients.append(client)
        return client, recorder

    yield factory
    for client in clients:
        client.close()
