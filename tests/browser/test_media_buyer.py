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
    page.get_by_label("Budget (USD)").fill("$250,000")  # as people type it
    page.get_by_label("Start date").fill(start.isoformat())
    page.get_by_label("End date").fill((start + timedelta(days=30)).isoformat())
    page.get_by_label("Branding", exact=True).check()
    page.get_by_label("CTV", exact=True).check()
    page.get_by_label("Max CPM (USD)").fill("$20")
    screenshot(page, "new-booking")
    page.locator("#submit-booking").click()

    page.wait_for_url(re.compile(r"/app/jobs/[0-9a-f-]{36}/$"))
    assert "$250,000" in page.locator("#job-budget").inner_text()
    # The page updates itself (HTMX polling) until the worker has priced the lines at the sellers.
    page.locator("#job-status").filter(has_text=re.compile("awaiting approval", re.I)).wait_for(timeout=60_000)
    page.locator("#recommendations-table").wait_for()
    # The newest event is on top of the timeline; what research left out is said, per seller, in words.
    assert "Awaiting approval" in page.locator("#timeline li").first.inner_text()
    assert "seller floor $30.00 is above the max CPM $20.00" in page.locator("#left-out").inner_text()
    screenshot(page, "job-awaiting-approval")

    # Nothing starts ticked: the buyer picks two lines and leaves the rest for later.
    boxes = page.locator("input[id^='select-line-']")
    assert boxes.count() >= 3
    assert all(not boxes.nth(i).is_checked() for i in range(boxes.count()))
    assert page.locator("#approve-selected").is_disabled()
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.locator("#approve-selected:not([disabled])").wait_for()
    page.locator("#approve-selected").click()
    page.locator("#confirm-button").wait_for()
    assert "Approve 2 lines" in page.get_by_role("heading", level=1).inner_text()
    assert "stay awaiting your decision" in page.locator("#confirm-waiting").inner_text()
    screenshot(page, "approve-confirm")
    page.locator("#confirm-button").click()

    # The two are booked; the job comes back for the rest.
    deals = page.locator("#booked-deals-table tbody tr")
    deals.nth(1).wait_for(timeout=60_000)
    page.locator("#job-status").filter(has_text=re.compile("awaiting approval", re.I)).wait_for(timeout=60_000)
    screenshot(page, "job-two-booked-rest-waiting")
    page.reload()
    boxes = page.locator("input[id^='select-line-']")
    boxes.first.check()
    page.locator("#approve-selected-reject:not([disabled])").wait_for()
    page.locator("#approve-selected-reject").click()
    page.locator("#confirm-button").click()

    page.locator("#job-status").filter(has_text=re.compile("completed", re.I)).wait_for(timeout=60_000)
    deals.nth(2).wait_for()
    assert deals.count() == 3
    assert re.search(r"DEMO-[0-9A-F]{12}", page.locator("#booked-deals-table").inner_text())
    screenshot(page, "job-completed")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deals").click()
    assert page.locator("#deals-table tbody tr").count() == 3
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
    assert "3 deals" in page.locator("#jobs-table").inner_text()
    screenshot(page, "jobs")
