"""An admin adds a seller and creates an API key; the key works against the REST API."""

from __future__ import annotations

import httpx
import pytest

from buyer.sellers.models import Seller
from tests.browser.conftest import screenshot, sign_in

pytestmark = pytest.mark.stack

SELLER_KEY = "browser-test-seller-credential-91c2"


def test_an_admin_creates_a_seller_and_an_api_key(page, users, stack):
    sign_in(page, users["admin"])
    nav = page.get_by_role("navigation", name="Main")

    nav.get_by_role("link", name="Sellers").click()
    screenshot(page, "sellers")
    page.get_by_role("link", name="Add seller").click()
    page.get_by_label("Name", exact=True).fill("Second sandbox")
    page.get_by_label("Base URL").fill(stack.seller_url + "/")
    page.get_by_label("Credential", exact=True).fill(SELLER_KEY)
    page.get_by_label("Agency ID").fill("agency-42")
    screenshot(page, "seller-new")
    page.get_by_role("button", name="Add seller").click()
    seller = Seller.objects.get(name="Second sandbox")
    assert seller.has_credential and seller.get_credential() == SELLER_KEY
    assert SELLER_KEY not in page.content()

    page.goto("/app/sellers/")
    row = page.locator(f"#seller-{seller.pk}")
    row.get_by_role("button", name="Test connection").click()
    assert "healthy" in page.locator(".messages").inner_text()
    assert SELLER_KEY not in page.content()
    screenshot(page, "sellers-after-test")

    nav.get_by_role("link", name="API keys").click()
    page.get_by_role("link", name="Create API key").click()
    page.get_by_label("Name").fill("reporting")
    page.get_by_label("Read", exact=True).check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#api-key-secret").input_value()
    assert secret.startswith("mba_")
    screenshot(page, "api-key-created")
    response = httpx.get(f"{stack.web_url}/bookings", headers={"X-API-Key": secret})
    assert response.status_code == 200
    page.get_by_role("link", name="Done: back to API keys").click()
    assert secret not in page.content()
    screenshot(page, "api-keys")

    nav.get_by_role("link", name="Users").click()
    assert "mia" in page.locator("main").inner_text()
    screenshot(page, "users")
    page.get_by_role("link", name="Add user").click()
    screenshot(page, "user-new")
    nav.get_by_role("link", name="LLM usage").click()
    screenshot(page, "llm-usage")
