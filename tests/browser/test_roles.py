from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot, sign_in

pytestmark = pytest.mark.stack

ADMIN_PAGES = [
    "/app/sellers/",
    "/app/sellers/new/",
    "/app/api-keys/",
    "/app/api-keys/new/",
    "/app/users/",
    "/app/users/new/",
    "/app/llm-usage/",
]


def test_a_media_buyer_cannot_open_or_post_to_admin_pages(page, users):
    page.goto("/app/")
    assert "/app/login/" in page.url
    screenshot(page, "login")
    sign_in(page, users["media_buyer"])
    nav = page.get_by_role("navigation", name="Main").inner_text()
    assert "Sellers" not in nav and "API keys" not in nav and "Users" not in nav
    for path in ADMIN_PAGES:
        response = page.goto(path)
        assert response.status == 403, path
    # Posting with a valid session and CSRF token is refused as well.
    token = page.context.cookies()
    csrf = next(c["value"] for c in token if c["name"] == "csrftoken")
    for path in ["/app/sellers/new/", "/app/api-keys/new/", "/app/users/new/"]:
        response = page.request.post(path, form={"name": "x"}, headers={"X-CSRFToken": csrf, "Referer": page.url})
        assert response.status == 403, path
