"""Browser tests: Debian's Chromium driven by Playwright against the real stack (web, worker, sandbox seller).

Screenshots of every page visited land in ``artifacts/screenshots/`` (override with SCREENSHOTS_DIR); CI keeps
that folder as its artifacts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from buyer.accounts.models import Role
from buyer.accounts.services import user_create
from tests.e2e.conftest import brief, make_stack  # noqa: F401 - re-exported fixtures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR", Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"))
PASSWORD = "correct-horse-battery-staple"
ROOT = Path(__file__).resolve().parents[2]


# Module scope, not session: Playwright's sync API runs an event loop on this thread while the browser
# lives, and later tests in the same process (asyncio.run, anyio) must not find it running.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("needs Chromium: apt-get install chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread for as long as the browser lives; the ORM
    # calls of these tests (and pytest-django's flushes) are plain synchronous code all the same.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def stack(make_stack):  # noqa: F811
    return make_stack()


@pytest.fixture
def users(stack) -> dict[str, str]:
    user_create(
        username="mia", email="mia@example.com", password=PASSWORD, role=Role.MEDIA_BUYER, time_zone="Europe/Paris"
    )
    user_create(username="ada", email="ada@example.com", password=PASSWORD, role=Role.ADMIN)
    return {"media_buyer": "mia", "admin": "ada"}


@pytest.fixture
def page(browser, stack) -> Iterator[object]:
    context = browser.new_context(base_url=stack.web_url, viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


LAPTOP = {"width": 1024, "height": 640}

# What scrolls sideways: the document itself, or any element whose content is wider than its box and that
# lets it scroll (the tables' wrappers). Named by id or class so a failure says where.
OVERFLOWING = """() => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 1) out.push(`page ${doc.scrollWidth}px > ${doc.clientWidth}px`);
  for (const el of document.querySelectorAll('main *')) {
    const style = getComputedStyle(el);
    if (!['auto', 'scroll'].includes(style.overflowX) || el.scrollWidth <= el.clientWidth + 1) continue;
    if (el.tagName === 'PRE') continue;  // raw JSON may scroll; it is not a table
    const inner = el.querySelector('table');
    out.push(`${inner && inner.id ? '#' + inner.id : el.className} ${el.scrollWidth}px > ${el.clientWidth}px`);
  }
  return out;
}"""


def look(page, name: str, problems: list[str]) -> None:
    """Screenshot the page and note what a laptop reader would meet: sideways scrolling, a wrapped top bar."""
    page.wait_for_load_state("networkidle")
    problems.extend(f"{name}: {where}" for where in page.evaluate(OVERFLOWING))
    brand = page.locator(".brand").bounding_box()
    signout = page.locator(".signout button").bounding_box() if page.locator(".signout button").count() else None
    if signout is not None and signout["y"] >= brand["y"] + brand["height"]:
        problems.append(f"{name}: 'Sign out' wrapped below the brand's line")
    screenshot(page, f"laptop-{name}")


@pytest.fixture
def laptop(browser, stack):
    context = browser.new_context(base_url=stack.web_url, viewport=LAPTOP, locale="en-US")
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page, username: str) -> None:
    page.goto("/app/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/app/$"))


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    scrolled = page.evaluate("[window.scrollX, window.scrollY]")
    page.screenshot(path=str(path), full_page=True)
    # A full-page screenshot of a page taller than the window leaves Chromium's scroll state such that the next
    # click may land nowhere (seen: a submit button that submitted nothing): scroll back where the page was.
    page.evaluate("([x, y]) => window.scrollTo(x, y)", scrolled)
    return path


def seed_demo(stack) -> None:
    """As a user of `make run` would: demo campaigns delivering for 8 days at the stack's sandbox seller."""
    seeded = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--days-ago", "8"],
        cwd=ROOT,
        env=stack.services["web"].env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
