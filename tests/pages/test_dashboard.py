"""The jobs dashboard in a real browser against a real service: start, watch, cancel, reload, with a token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from harness.host import PREFIX, running_host_app
from harness.service import ServiceProcess, running_service
from tests.pages.conftest import screenshot

TOKEN = "dashboard-token"


@pytest.fixture(scope="module")
def dashboard_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("dashboard")) as service:
        yield service


def job_card(page: Page, caller: str) -> Locator:
    return page.locator("li.job", has=page.locator(".caller", has_text=caller))


def bar_value(card: Locator) -> int:
    return int(card.locator("progress").evaluate("bar => bar.value"))


def start_from_form(page: Page, *, count: int, interval: float, caller: str) -> Locator:
    page.get_by_label("Number of notifications").fill(str(count))
    page.get_by_label("Seconds between them").fill(str(interval))
    page.get_by_label("Caller").fill(caller)
    page.get_by_label("Caller").press("Enter")  # the keyboard submits the form
    card = job_card(page, caller)
    expect(card).to_be_visible()
    return card


def test_a_job_started_from_the_form_fills_its_bar(
    dashboard_service: ServiceProcess, page: Page, offsite: list[str]
) -> None:
    page.goto(f"{dashboard_service.base_url}/dashboard")
    card = start_from_form(page, count=15, interval=0.1, caller="form-job")
    progress = card.locator("progress")
    expect(progress).to_have_attribute("max", "15")
    page.wait_for_function("bar => bar.value > 0 && bar.value < bar.max", arg=progress.element_handle(), timeout=5000)
    expect(card.locator(".status")).to_have_text("completed", timeout=10_000)
    assert bar_value(card) == 15
    expect(card.locator(".count")).to_have_text("15 / 15")
    expect(card.get_by_role("button", name="Cancel job form-job")).to_be_disabled()
    card.get_by_role("button", name="Show the notifications").click()
    expect(page.locator("#log li")).to_have_count(15)
    expect(page.locator("#log li").last).to_contain_text("15 / 15")
    expect(page.locator("#stat-store")).to_have_text("sqlite")
    assert offsite == []


def test_cancelling_a_job_marks_it_cancelled(dashboard_service: ServiceProcess, page: Page) -> None:
    page.goto(f"{dashboard_service.base_url}/dashboard")
    card = start_from_form(page, count=1000, interval=0.05, caller="doomed-job")
    expect(card.locator(".status")).to_have_text("running")
    card.get_by_role("button", name="Cancel job doomed-job").click()
    expect(card.locator(".status")).to_have_text("cancelled", timeout=5000)
    assert 0 < bar_value(card) < 1000
    expect(card.get_by_role("button", name="Cancel job doomed-job")).to_be_disabled()


def test_a_reload_mid_job_resumes_the_bar_where_it_was(dashboard_service: ServiceProcess, page: Page) -> None:
    job = httpx.post(
        f"{dashboard_service.base_url}/jobs", json={"interval": 0.1, "count": 40, "caller": "reloaded-job"}
    ).json()
    page.goto(f"{dashboard_service.base_url}/dashboard")
    card = job_card(page, "reloaded-job")
    page.wait_for_function("bar => bar.value >= 8", arg=card.locator("progress").element_handle(), timeout=5000)
    before = bar_value(card)
    page.reload()
    card = job_card(page, "reloaded-job")
    expect(card).to_be_visible()
    # The first paint after the reload already shows the job's progress: it does not start again at 0.
    assert bar_value(card) >= before - 1  # the feed's read may be a notification behind the old page
    card.get_by_role("button", name="Show the notifications").click()
    screenshot(page, "dashboard")  # a job running, one completed, one cancelled
    expect(card.locator(".status")).to_have_text("completed", timeout=10_000)
    assert bar_value(card) == 40
    final = httpx.get(f"{dashboard_service.base_url}/jobs/{job['id']}").json()
    assert final["sent"] == 40


def test_with_authentication_the_page_asks_for_a_token(tmp_path: Path, page: Page) -> None:
    with running_service(tmp_path, SERVICE_AUTH_TOKENS=f'{{"ops": "{TOKEN}"}}') as service:
        page.goto(f"{service.base_url}/dashboard")
        dialog = page.get_by_role("dialog", name="Token needed")
        expect(dialog).to_be_visible()
        page.get_by_label("Bearer token").fill("wrong")
        page.get_by_role("button", name="Use token").click()
        expect(dialog.get_by_role("alert")).to_have_text("That token was refused.")
        page.get_by_label("Bearer token").fill(TOKEN)
        page.get_by_label("Bearer token").press("Enter")
        expect(dialog).to_be_hidden()
        card = start_from_form(page, count=5, interval=0.05, caller="token-job")
        expect(card.locator(".status")).to_have_text("completed", timeout=10_000)
        assert bar_value(card) == 5
        expect(page.locator("#connection")).to_have_text("live")
        # The token stays in the tab: a reload needs no prompt.
        page.reload()
        expect(job_card(page, "token-job")).to_be_visible()
        expect(dialog).to_be_hidden()


def test_in_a_host_app_under_a_prefix_the_page_works_with_the_hosts_authentication(
    tmp_path: Path, page: Page, offsite: list[str]
) -> None:
    """`tests/host/app.py`: the service at `/notify` of a host's app, under plain uvicorn, with the host's API keys."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(urlsplit(request.url).path))
    with running_host_app(tmp_path) as host:
        page.goto(f"{host.base_url}{PREFIX}/dashboard")
        dialog = page.get_by_role("dialog", name="Token needed")
        expect(dialog).to_be_visible()
        page.get_by_label("Bearer token").fill("alice-key")  # a key of the host's, not a service token
        page.get_by_role("button", name="Use token").click()
        expect(dialog).to_be_hidden()
        card = start_from_form(page, count=5, interval=0.05, caller="hosted-job")
        expect(card.locator(".status")).to_have_text("completed", timeout=10_000)
        assert bar_value(card) == 5
        expect(page.locator("#stat-store")).to_have_text("sqlite")
    assert offsite == []
    assert requested, "the page made no request"
    assert [path for path in requested if not path.startswith(f"{PREFIX}/")] == []
