"""A signed-in media buyer for the dashboard's tests."""

from __future__ import annotations

import pytest

from buyer.accounts.models import Role
from tests.dashboard._admin import signed_in


@pytest.fixture
def media_buyer(client):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    return client
