"""A media buyer sees a delivering campaign's chart and critical alert, and approves a reallocation."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import screenshot, seed_demo, sign_in

pytestmark = pytest.mark.stack


def test_a_media_buyer_sees_the_chart_and_a_critical_alert_and_approves_a_reallocation(page, users, stack):
    # As a user of `make run` would: demo campaigns already delivering at the stack's sandbox seller.
    seed_demo(stack)

    sign_in(page, users["media_buyer"])
    nav = page.get_by_role("navigation", name="Main")
    assert nav.locator("#nav-alerts").is_visible()
    nav.get_by_role("link", name=re.compile("^Pacing")).click()
    page.locator("#pacing-table").wait_for()
    assert "Reallocations awaiting your decision (1)" in page.locator("#pending-proposals").inner_text()
    screenshot(page, "pacing-overview")

    page.locator("#pacing-table").get_by_role("link", name="Demo · Holiday push").click()
    page.locator("#pacing-chart").wait_for()
    assert page.locator("#pacing-chart title").text_content() == "Expected and actual spend of the campaign"
    alerts = page.locator("#alerts-table")
    assert alerts.locator("tr.open-alert", has_text="critical").count() >= 1
    assert "Branding channel" in alerts.inner_text()  # channels named as people write them
    screenshot(page, "pacing-campaign")

    page.locator("#approve-proposal").click()
    page.locator("#confirm-button").wait_for()
    heading = page.get_by_role("heading", level=1).inner_text()
    assert re.match(r"Move \$[\d,]+(\.\d\d)? between channels\?", heading)
    amount = heading.removeprefix("Move ").removesuffix(" between channels?")
    assert "CTV" in page.locator("#confirm-budgets").inner_text()
    screenshot(page, "pacing-approve-confirm")
    page.locator("#confirm-button").click()

    page.locator("#proposals-table").wait_for()
    assert f"Moved {amount}" in page.locator(".messages").inner_text()
    assert "approved" in page.locator("#proposals-table").inner_text()
    screenshot(page, "pacing-approved")

    # The top-up booking goes through the normal flow: real quotes, then a person's approval.
    page.locator("#proposals-table").get_by_role("link", name="CTV top-up").click()
    page.locator("#job-status").filter(has_text=re.compile("awaiting approval", re.I)).wait_for(timeout=60_000)
    assert "top-up CTV" in page.get_by_role("heading", level=1).inner_text()
    screenshot(page, "pacing-top-up-job")
