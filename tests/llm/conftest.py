"""The flow's sandbox seller (and its fast-failing seller settings) for the agents' tests."""

from tests.campaigns.test_flow import _fast_sellers, sandbox  # noqa: F401 (fixtures)
