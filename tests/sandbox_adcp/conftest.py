"""Fixtures for the AdCP sandbox seller tests: sellers served over real HTTP on 127.0.0.1 with a movable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from buyer.sandbox_adcp import create_app
from tests.conftest import serve_in_thread

from ._support import Clock, Seller

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The library reads the deprecated 3.1 ``bid_price`` of every package it sends, warning each time.
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning:adcp._null_clear"))


@pytest.fixture
def make_seller() -> Iterator[Callable[..., Seller]]:
    """Factory: ``make_seller(**create_app_kwargs)`` → a sandbox seller served in a thread, its clock settable."""
    with ExitStack() as stack:

        def make(**kwargs: Any) -> Seller:
            clock = Clock()
            app = create_app(clock=clock, **kwargs)
            url = stack.enter_context(serve_in_thread(app))
            return Seller(app=app, url=url, clock=clock)

        yield make


@pytest.fixture
def seller(make_seller: Callable[..., Seller]) -> Seller:
    """A default-catalog seller that books synchronously."""
    return make_seller()
