"""`service.tasks.client`: the Python SDK's `Client` drives 2026-07-28 tasks, against a real service."""

from __future__ import annotations

import httpx
import pytest
from mcp import Client

from harness.service import ServiceProcess
from service.tasks.client import CreatedTask, Tasks, cancel_task, get_task, wait_for_task
from service.tools.notification_stream import TOOL_NAME

pytestmark = pytest.mark.anyio


async def test_call_tool_waits_for_a_task_and_returns_the_tools_result(service: ServiceProcess) -> None:
    async with Client(service.mcp_url, extensions=[Tasks(poll_ms=100)]) as client:
        result = await client.call_tool(TOOL_NAME, {"count": 3, "interval": 0.5, "caller": "sdk-task"})
    assert not result.is_error
    assert result.structured_content is not None
    job = httpx.get(f"{service.base_url}/jobs/{result.structured_content['job_id']}").json()
    assert (job["status"], job["task"]["era"]) == ("completed", "2026-07-28")  # it was a task, not a stream


async def test_a_task_started_then_left_is_fetched_later_by_another_client(service: ServiceProcess) -> None:
    arguments = {"count": 4, "interval": 0.3, "caller": "sdk-left"}
    async with Client(service.mcp_url, extensions=[Tasks()]) as client:
        created = await client.session.call_tool(TOOL_NAME, arguments, allow_claimed=True)
    assert isinstance(created, CreatedTask)
    assert created.status == "working"
    async with Client(service.mcp_url, extensions=[Tasks()]) as client:  # another connection, later
        result = await wait_for_task(client.session, created.task_id, poll_ms=100)
    assert result.structured_content is not None
    assert (result.structured_content["status"], result.structured_content["sent"]) == ("completed", 4)


async def test_a_cancelled_task_ends_in_a_tool_error_that_says_so(service: ServiceProcess) -> None:
    arguments = {"count": 1000, "interval": 0.05, "caller": "sdk-cancelled"}
    async with Client(service.mcp_url, extensions=[Tasks()]) as client:
        created = await client.session.call_tool(TOOL_NAME, arguments, allow_claimed=True)
        assert isinstance(created, CreatedTask)
        await cancel_task(client.session, created.task_id)
        result = await wait_for_task(client.session, created.task_id, poll_ms=50)
        state = await get_task(client.session, created.task_id)
    assert result.is_error
    assert state.status == "cancelled"
    assert "Cancelled after" in (state.status_message or "")
