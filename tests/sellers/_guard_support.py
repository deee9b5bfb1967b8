"""A fake seller client for the guard tests: scripted answers, counted and timed calls, no network."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from buyer.sellers import registry
from buyer.sellers.errors import SellerError
from buyer.sellers.models import Seller

OK = object()


def timeout() -> SellerError:
    return SellerError("no response within 1s (gave up after 3 attempts)", code="timeout", retryable=True)


def not_found() -> SellerError:
    return SellerError("Product not found", status=404, code="product_not_found")


class FakeSellerClient:
    """Stands in for SellerRestClient / SellerMcpClient behind the guard.

    Answers come from ``script`` in order, then ``default``; an exception in the script is raised. Every call
    is counted, and the most calls ever in flight at once is kept in ``peak``.
    """

    def __init__(self, base_url: str = "http://fake.test", *, script: list[Any] | None = None, **options: Any):
        self.base_url = base_url
        self.options = options
        self.script = list(script or [])
        self.default: Any = OK
        self.delay = 0.0
        self.calls: list[str] = []
        self.in_flight = 0
        self.peak = 0
        self.closed = False
        self._lock = threading.Lock()

    def _answer(self, name: str) -> Any:
        with self._lock:
            self.calls.append(name)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            answer = self.script.pop(0) if self.script else self.default
        try:
            if self.delay:
                time.sleep(self.delay)
            if isinstance(answer, BaseException):
                raise answer
            return [] if answer is OK else answer
        finally:
            with self._lock:
                self.in_flight -= 1

    def list_products(self, **kwargs: Any) -> Any:
        return self._answer("list_products")

    def get_quote(self, quote_id: str) -> Any:
        if not quote_id:
            raise ValueError("quote_id must be a non-empty string")
        return self._answer("get_quote")

    def health(self) -> bool:
        try:
            return self._answer("health") is not False
        except SellerError:
            return False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._answer(name)

    def close(self) -> None:
        self.closed = True


def install_fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeSellerClient]:
    """Make ``client_for`` build a FakeSellerClient per seller URL, kept in the returned dict for scripting."""
    made: dict[str, FakeSellerClient] = {}

    def inner_client(seller: Seller, protocol: str, credential: str | None) -> FakeSellerClient:
        fake = made.get(seller.base_url)
        if fake is None:
            fake = made[seller.base_url] = FakeSellerClient(seller.base_url)
        fake.options = {"protocol": protocol, "credential": credential}
        return fake

    monkeypatch.setattr(registry, "_inner_client", inner_client)
    return made
