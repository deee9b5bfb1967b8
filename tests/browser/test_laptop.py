"""Every page read on a laptop at 125 % zoom (1280 by 800 device pixels, 1024 by 640 CSS pixels), by keyboard too.

Each page is screenshotted as ``laptop-<page>.png``; none may scroll sideways, neither the page nor a table in it
(a column out of sight is a column the buyer does not read), and the top bar keeps "Sign out" on its first line."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import look, screenshot, seed_demo, sign_in
from tests.e2e.conftest import Api

pytestmark = pytest.mark.stack


def test_every_page_reads_on_a_laptop_at_125_percent_zoom(laptop, users, stack, brief):
    page = laptop
    seed_demo(stack)
    api = Api(stack)
    job_id = api.submit(brief)
    api.wait_for(job_id, "awaiting_approval")

    problems: list[str] = []
    sign_in(page, users["media_buyer"])
    look(page, "jobs", problems)
    page.goto(f"/app/jobs/{job_id}/")
    page.locator("#recommendations-table").wait_for()
    look(page, "job-awaiting-approval", problems)
    page.locator("#recommendations-table details.why summary").first.click()
    look(page, "job-why-open", problems)
    page.goto("/app/jobs/new/")
    look(page, "new-booking", problems)
    page.get_by_label("Campaign name").fill("Laptop check")
    page.get_by_label("Budget (USD)").fill("lots")
    page.locator("#submit-booking").click()
    page.locator(".errorlist").first.wait_for()
    look(page, "new-booking-errors", problems)
    page.goto("/app/deals/")
    look(page, "deals", problems)
    page.locator("#deals-table tbody tr a").first.click()
    page.locator("#deal-id").wait_for()
    look(page, "deal-detail", problems)
    page.goto("/app/events/")
    look(page, "events", problems)
    page.goto("/app/pacing/")
    look(page, "pacing-overview", problems)
    page.locator("#pacing-table tbody tr a").first.click()
    page.locator("#pacing-chart").wait_for()
    look(page, "pacing-campaign", problems)
    page.goto("/app/no-such-page/")
    look(page, "404", problems)
    page.goto("/app/sellers/")
    look(page, "403", problems)

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, users["admin"])
    look(page, "admin-jobs", problems)
    page.goto("/app/sellers/")
    look(page, "sellers", problems)
    page.get_by_role("link", name="Add seller").click()
    look(page, "seller-new", problems)
    for name in ("api-keys", "users", "llm-usage"):
        page.goto(f"/app/{name}/")
        look(page, name, problems)
    assert problems == [], "\n".join(problems)


def test_a_buyer_approves_a_line_with_the_keyboard_alone(laptop, users, stack, brief):
    page = laptop
    api = Api(stack)
    job_id = api.submit(brief)
    api.wait_for(job_id, "awaiting_approval")
    sign_in(page, users["media_buyer"])
    page.goto(f"/app/jobs/{job_id}/")
    page.locator("#recommendations-table").wait_for()

    def tab_to(selector: str, limit: int = 200) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("input[id^='select-line-']")
    # Focus is visible: a 3 px outline, not the browser's faint default or nothing.
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Space")
    page.locator("#approve-selected:not([disabled])").wait_for()
    tab_to("#approve-selected")
    page.keyboard.press("Enter")
    page.locator("#confirm-button").wait_for()
    assert re.match(r"Approve 1 line", page.get_by_role("heading", level=1).inner_text())
    tab_to("#confirm-button")
    page.keyboard.press("Enter")
    page.locator("#booked-deals-table tbody tr").first.wait_for(timeout=60_000)
    screenshot(page, "laptop-keyboard-booked")
