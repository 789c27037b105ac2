"""The service's pages in a real browser: Debian's Chromium, driven by Playwright (the operations
issue's dashboard and offline docs tests build on this)."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import sync_playwright

from harness.service import ServiceProcess
from tests.support import unavailable

CHROMIUM_HINT = "no chromium: `apt-get install chromium` (.ci/run does)"


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        unavailable(CHROMIUM_HINT)
    return binary


def test_the_docs_page_loads_in_a_browser_with_the_services_title(service: ServiceProcess, chromium: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            response = page.goto(f"{service.base_url}/docs")
            assert response is not None
            assert response.status == 200
            assert "MCP notification service" in page.title()
            # The page's own script asks for the OpenAPI document: the browser gets it from the service.
            schema = page.evaluate("fetch('/openapi.json').then(r => r.json()).then(d => d.info.title)")
            assert schema == "MCP notification service"
        finally:
            browser.close()
