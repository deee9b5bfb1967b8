"""A media buyer signs in, submits a brief, watches it reach approval, approves two lines and sees the deals."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.browser.conftest import screenshot, sign_in
from tests.clock import processes_today

pytestmark = pytest.mark.stack


def test_a_media_buyer_books_two_lines_from_a_brief(page, users):
    sign_in(page, users["media_buyer"])
    screenshot(page, "jobs-empty")

    page.get_by_role("link", name="New booking", exact=True).click()
    start = processes_today() + timedelta(days=10)
    page.get_by_label("Campaign name").fill("Holiday push")
    page.get_by_label("Brand awareness").check()
    page.get_by_label("Budget (USD)").fill("60000")
    page.get_by_label("Start date").fill(start.isoformat())
    page.get_by_label("End date").fill((start + timedelta(days=30)).isoformat())
    page.get_by_label("Branding", exact=True).check()
    page.get_by_label("CTV", exact=True).check()
    page.get_by_label("Max CPM (USD)").fill("45")
    screenshot(page, "new-booking")
    page.locator("#submit-booking").click()

    page.wait_for_url(re.compile(r"/app/jobs/[0-9a-f-]{36}/$"))
    # The page updates itself (HTMX polling) until the worker has priced the lines at the sellers.
    page.locator("#job-status").filter(has_text=re.compile("awaiting approval", re.I)).wait_for(timeout=60_000)
    page.locator("#recommendations-table").wait_for()
    screenshot(page, "job-awaiting-approval")

    boxes = page.locator("input[id^='select-line-']")
    assert boxes.count() >= 2
    for index in range(boxes.count()):
        boxes.nth(index).set_checked(index < 2)
    page.locator("#approve-selected").click()
    page.locator("#confirm-button").wait_for()
    assert "Approve 2 lines" in page.get_by_role("heading", level=1).inner_text()
    screenshot(page, "approve-confirm")
    page.locator("#confirm-button").click()

    page.locator("#job-status").filter(has_text=re.compile("completed", re.I)).wait_for(timeout=60_000)
    deals = page.locator("#booked-deals-table tbody tr")
    deals.first.wait_for()
    assert deals.count() == 2
    assert re.search(r"DEMO-[0-9A-F]{12}", page.locator("#booked-deals-table").inner_text())
    screenshot(page, "job-completed")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deals").click()
    assert page.locator("#deals-table tbody tr").count() == 2
    screenshot(page, "deals")
    page.locator("#deals-table tbody tr a").first.click()
    page.locator("#deal-id").wait_for()
    assert "DEMO-" in page.locator("#deal-id").inner_text()
    screenshot(page, "deal-detail")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    assert page.locator("#events-table tbody tr").count() > 0
    screenshot(page, "events")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pacing").click()
    screenshot(page, "pacing")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    assert "2 deals" in page.locator("#jobs-table").inner_text()
    screenshot(page, "jobs")
