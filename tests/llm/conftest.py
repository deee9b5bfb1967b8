"""The flow's sandbox seller for the agents' tests."""

from tests.campaigns.conftest import sandbox  # noqa: F401 (a fixture)
