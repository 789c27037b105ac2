"""`/docs` and `/redoc` render with nothing but the service: their scripts and styles are served by it."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from harness.service import ServiceProcess
from service.api.docs import ASSETS, ASSETS_URL
from tests.pages.conftest import screenshot


def test_the_bundled_assets_are_there_and_served(service: ServiceProcess) -> None:
    # The seam: fastapi-offline's `static` folder holds the builds we serve.
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        assert (ASSETS / name).stat().st_size > 1000
        response = httpx.get(f"{service.base_url}{ASSETS_URL}/{name}")
        assert response.status_code == 200
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{service.base_url}{page}").text
        assert "cdn" not in html.lower()
        assert not re.search(r"(src|href)=\"https?://", html)


def test_swagger_ui_lists_the_routes_and_runs_try_it_out_offline(
    service: ServiceProcess, page: Page, offsite: list[str]
) -> None:
    page.goto(f"{service.base_url}/docs")
    create = page.locator("#operations-jobs-create_job")
    expect(create).to_be_visible(timeout=15_000)
    for operation in ("list_jobs", "get_job", "cancel_job", "job_events"):
        expect(page.locator(f"#operations-jobs-{operation}")).to_be_visible()
    create.locator(".opblock-summary").click()
    create.get_by_role("button", name="Try it out").click()
    create.locator("textarea.body-param__text").fill('{"interval": 0, "count": 3, "caller": "swagger"}')
    create.get_by_role("button", name="Execute").click()
    status = create.locator(".live-responses-table tr.response .response-col_status").first
    expect(status).to_have_text("202", timeout=10_000)
    expect(create.locator(".live-responses-table .microlight").first).to_contain_text('"caller": "swagger"')
    screenshot(page, "docs")
    assert offsite == []


def test_redoc_renders_offline(service: ServiceProcess, page: Page, offsite: list[str]) -> None:
    page.goto(f"{service.base_url}/redoc")
    expect(page.get_by_role("heading", name="Start a notification job")).to_be_visible(timeout=15_000)
    # ReDoc's bundle links its "API docs by Redocly" logo from redocly's site: an image that stays
    # blank offline. Every script, style, font and data request stays on the service.
    assert [request for request in offsite if not request.startswith("image ")] == []
