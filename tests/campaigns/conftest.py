"""A sandbox seller served over HTTP for the flow's tests (and the agents' and plan review's)."""

from __future__ import annotations

import pytest

from buyer.sandbox import create_app
from buyer.sellers.models import Seller
from tests.conftest import serve_in_thread


@pytest.fixture
def sandbox(fast_sellers):
    """The default-catalog sandbox seller, the only enabled seller, answering fast or failing fast."""
    app = create_app(catalog="default")
    with serve_in_thread(app) as url:
        Seller.objects.create(name="Sandbox", base_url=url)
        yield app
