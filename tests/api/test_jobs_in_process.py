"""The REST routes in process (httpx over ASGI, the app's lifespan running): their logic in milliseconds.

`tests/api/test_jobs.py` checks the same routes against a real uvicorn process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from harness.sse import parse_sse
from service.app import ServiceApp
from service.tools.notification_stream import TOOL_NAME
from tests.in_process import mcp_over_asgi, rest_client, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.in_process]


@pytest.fixture
async def app() -> AsyncIterator[ServiceApp]:
    async with running_app(max_count=100, max_jobs=3) as app:
        yield app


@pytest.fixture
async def http(app: ServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    async with rest_client(app) as http:
        yield http


async def start(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post("/jobs", json={"interval": 0, "count": 2, "caller": "inproc", **body})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def finished(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(5):
        while (job := (await http.get(f"/jobs/{job_id}")).json())["status"] in ("pending", "running"):
            await anyio.sleep(0.01)
    return dict(job)


async def test_a_job_runs_and_is_listed_in_its_public_shape(http: httpx.AsyncClient) -> None:
    job = await start(http, count=3)
    done = await finished(http, job["id"])
    assert (done["status"], done["sent"], done["origin"]) == ("completed", 3, "rest")
    assert "runner" not in done
    page = (await http.get("/jobs", params={"limit": 1})).json()
    assert [item["id"] for item in page["items"]] == [job["id"]]


async def test_cancel_then_cancel_again_is_409_and_delete_forgets(http: httpx.AsyncClient) -> None:
    job = await start(http, interval=10, count=5)
    cancelled = await http.post(f"/jobs/{job['id']}/cancel")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    again = await http.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["detail"] == f"Job {job['id']} has already ended (cancelled)"
    assert (await http.delete(f"/jobs/{job['id']}")).status_code == 204
    assert (await http.get(f"/jobs/{job['id']}")).json()["detail"] == f"Job {job['id']} not found"


async def test_the_events_of_a_job_are_sse_and_resume_after_an_id(http: httpx.AsyncClient) -> None:
    job = await start(http, count=3)
    await finished(http, job["id"])
    response = await http.get(f"/jobs/{job['id']}/events")
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "\r\n\r\n" in response.text  # framed like /mcp's streams
    events = list(parse_sse(iter(response.text.splitlines())))
    assert [event.event for event in events] == ["notification"] * 3 + ["end"]
    assert events[-1].json()["status"] == "completed"
    resumed = await http.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": events[0].id or ""})
    assert [e.id for e in parse_sse(iter(resumed.text.splitlines()))][:-1] == [e.id for e in events[1:3]]
    malformed = await http.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "x"})
    assert malformed.status_code == 422


async def test_limits_are_errors_that_name_their_setting(http: httpx.AsyncClient) -> None:
    over = await http.post("/jobs", json={"interval": 0, "count": 101, "caller": "x"})
    assert over.status_code == 422
    assert "SERVICE_MAX_COUNT" in over.text
    running = [await start(http, interval=10, count=2) for _ in range(3)]
    refused = await http.post("/jobs", json={"interval": 0, "count": 1, "caller": "x"})
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
    for job in running:
        await http.post(f"/jobs/{job['id']}/cancel")


async def test_a_session_id_must_name_a_live_session_of_the_caller(app: ServiceApp, http: httpx.AsyncClient) -> None:
    assert (
        await http.post("/jobs", json={"interval": 0, "count": 1, "caller": "x", "session_id": "nope"})
    ).status_code == 404
    async with mcp_over_asgi(app) as client:
        result = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 1, "caller": "mcp"})
        assert result.structured_content is not None
        session_id = (await http.get(f"/jobs/{result.structured_content['job_id']}")).json()["session_id"]
        assert session_id
        pushed = await start(http, count=1, session_id=session_id)
        assert (await finished(http, pushed["id"]))["status"] == "completed"
        assert len(app.service.sessions) == 1
    # The client ended its session (DELETE): the directory forgot it.
    gone = await http.post("/jobs", json={"interval": 0, "count": 1, "caller": "x", "session_id": session_id})
    assert gone.status_code == 404


async def test_healthz_reports_the_store(http: httpx.AsyncClient) -> None:
    await finished(http, (await start(http))["id"])
    health = (await http.get("/healthz")).json()
    assert (health["status"], health["store"], health["running_jobs"]) == ("ok", "memory", 0)
    assert health["stored_jobs"] >= 1
    assert health["stored_events"] >= 2
    assert health["store_bytes"] > 0


async def test_the_events_stream_pings_at_the_configured_interval() -> None:
    async with running_app(sse_ping_interval=0.05) as app, rest_client(app) as http:
        job = await start(http, interval=0.3, count=2)
        response = await http.get(f"/jobs/{job['id']}/events")
    assert response.text.count(": ping\r\n\r\n") >= 3  # SERVICE_SSE_PING_INTERVAL, as on /mcp
    assert [event.event for event in parse_sse(iter(response.text.splitlines()))] == ["notification"] * 2 + ["end"]
