"""The service's pages in a real browser: Debian's Chromium, driven by Playwright.

Screenshots go to `build/screenshots/` (`docs/dashboard.png` is a copy of one)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, Route, sync_playwright

from tests.support import unavailable

CHROMIUM_HINT = "no chromium: `apt-get install chromium` (.ci/run does)"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module, not per session: Playwright's sync API runs an event loop in this thread while it is
    open, and the anyio tests that follow need the thread's loop free."""
    binary = shutil.which("chromium")
    if binary is None:
        unavailable(CHROMIUM_HINT)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def offsite() -> list[str]:
    """The requests `page` refused because they would have left the machine: `<resource type> <url>`."""
    return []


@pytest.fixture
def page(browser: Browser, offsite: list[str]) -> Iterator[Page]:
    """A fresh page (storage of its own) that cannot leave the machine, as if it had no internet."""
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    new_page = context.new_page()

    def only_loopback(route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname in ("127.0.0.1", "::1", "localhost"):
            route.continue_()
        else:
            offsite.append(f"{request.resource_type} {request.url}")
            route.abort()

    new_page.route("**/*", only_loopback)
    try:
        yield new_page
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path
