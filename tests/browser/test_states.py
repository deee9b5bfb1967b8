"""The states a buyer meets besides the happy path, each screenshotted at laptop width and read for its words:
a wrong password, a pasted brief, a split to review, a deal held for a decision, a cancelled job."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from campaigns.models import DealStatus
from tests.browser.conftest import PASSWORD, look, screenshot, sign_in
from tests.clock import processes_today
from tests.e2e.conftest import Api
from tests.factories import BookedDealFactory, RecommendationFactory, SellerFactory

pytestmark = pytest.mark.stack


def test_the_states_besides_the_happy_path_read_at_laptop_width(laptop, users, stack, brief):
    page = laptop
    problems: list[str] = []

    page.goto("/app/login/")
    page.get_by_label("Username").fill(users["media_buyer"])
    page.get_by_label("Password").fill(PASSWORD + "-wrong")
    page.get_by_role("button", name="Sign in").click()
    page.locator(".error, .errorlist").first.wait_for()
    assert "correct username and password" in page.locator("main").inner_text()
    look(page, "login-error", problems)
    sign_in(page, users["media_buyer"])

    # A brief pasted as people write it fills the form in; nothing is booked until the buyer submits.
    start = processes_today() + timedelta(days=20)
    page.goto("/app/jobs/new/")
    page.get_by_label("Paste a brief").fill(
        f"Winter launch\nBudget: $120,000\nFlight: {start.isoformat()} to {(start + timedelta(days=30)).isoformat()}\n"
        "Channels: CTV and display\nGoal: reach"
    )
    page.locator("#read-brief").click()
    page.locator("#intake-result").wait_for()
    assert page.get_by_label("Campaign name").input_value() == "Winter launch"
    look(page, "brief-read", problems)

    # The brief asks to review the split before any seller is asked.
    api = Api(stack)
    job_id = api.submit({**brief, "plan_review": True})
    api.wait_for(job_id, "awaiting_plan_review")
    page.goto(f"/app/jobs/{job_id}/")
    page.locator("#plan-review").wait_for()
    assert "must add up to the budget" in page.locator("#plan-review").inner_text()
    look(page, "job-plan-review", problems)

    # Cancelled from the page: the job says so, and nothing can be approved any more.
    page.locator("#cancel-job").click()
    page.locator("#job-status").filter(has_text=re.compile("cancelled", re.I)).wait_for(timeout=30_000)
    assert page.locator("#cancel-job").count() == 0
    look(page, "job-cancelled", problems)

    # A deal the seller booked differently from what was approved waits for the buyer's decision.
    line = RecommendationFactory(seller=SellerFactory(name="Meridian Sales House"), product_name="Homepage Takeover")
    held = BookedDealFactory(
        recommendation=line,
        deal_id="MSH-7F3A2C",
        status=DealStatus.BOOKING,
        impressions=2_400_000,
        cost_micros=24_000 * 1_000_000,
        flag="the seller booked deal MSH-7F3A2C at 2,400,000 impressions (approved 1,000,000)",
    )
    page.goto(f"/app/deals/{held.pk}/")
    page.locator("#deal-held").wait_for()
    assert "2,400,000 impressions" in page.locator("#deal-held").inner_text()
    look(page, "deal-held", problems)
    page.goto("/app/deals/?needs=decision")
    assert "MSH-7F3A2C" in page.locator("#deals-table").inner_text()
    look(page, "deals-needing-a-decision", problems)

    assert problems == [], "\n".join(problems)
    screenshot(page, "states-done")
