"""The notification tool over real HTTP, with the Python SDK's client in both protocol eras."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, TextContent

from harness.clients import Received, mcp_client
from harness.service import ServiceProcess
from service.tools.notification_stream import TOOL_NAME
from tests.conftest import ServiceFactory

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]  # 2025-11-25 handshake, and 2026-07-28


def text_of(result: Any) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


@pytest.mark.parametrize("mode", MODES)
async def test_the_tool_streams_its_notifications_then_reports(service: ServiceProcess, mode: str) -> None:
    received = Received()
    async with mcp_client(service.mcp_url, mode=mode, received=received) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        tools = await client.list_tools()
        assert [tool.name for tool in tools.tools] == [TOOL_NAME]
        result = await client.call_tool(
            TOOL_NAME, {"interval": 0.02, "count": 5, "caller": f"py-{mode}"}, progress_callback=received.on_progress
        )
    assert not result.is_error
    assert received.logs == [f"Notification {i}/5 for py-{mode}" for i in range(1, 6)]
    assert received.progress == [1, 2, 3, 4, 5]
    assert result.structured_content is not None
    assert result.structured_content["status"] == "completed"
    assert "Sent 5 notifications to py-" in text_of(result)

    job = httpx.get(f"{service.base_url}/jobs/{result.structured_content['job_id']}").json()
    assert (job["origin"], job["status"], job["sent"], job["caller"]) == ("mcp", "completed", 5, f"py-{mode}")
    assert (job["session_id"] is None) == (mode == "auto")  # the 2026-07-28 protocol has no sessions
    # The SDK warns that logging is deprecated on each notification; the service's log stays clean.
    assert "deprecated" not in service.log()


async def test_the_input_schema_states_the_configured_limits(start_service: ServiceFactory) -> None:
    with start_service(MAX_COUNT="50", MAX_INTERVAL="2", MIN_INTERVAL="0.1", MAX_CALLER_LENGTH="12") as service:
        async with mcp_client(service.mcp_url) as client:
            (tool,) = (await client.list_tools()).tools
    schema = tool.input_schema
    properties = schema["properties"]
    assert (properties["count"]["minimum"], properties["count"]["maximum"]) == (1, 50)
    assert (properties["interval"]["minimum"], properties["interval"]["maximum"]) == (0.1, 2)
    assert (properties["caller"]["minLength"], properties["caller"]["maxLength"]) == (1, 12)
    assert schema["required"] == ["interval", "count", "caller"]
    assert schema["additionalProperties"] is False
    assert "SERVICE_MAX_COUNT" in properties["count"]["description"]
    assert "spec_model" not in str(schema)  # the docstring written for developers is not shown


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"interval": -1, "count": 1, "caller": "x"}, "interval"),
        ({"interval": 0, "count": 0, "caller": "x"}, "count"),
        ({"interval": 0, "count": "3", "caller": "x"}, "count"),
        ({"interval": "fast", "count": 1, "caller": "x"}, "interval"),
        ({"interval": 0, "count": 1}, "caller"),
        ({"interval": 0, "count": 1, "caller": "x", "extra": True}, "extra"),
        ({"interval": 0, "count": 10**9, "caller": "x"}, "SERVICE_MAX_COUNT"),
    ],
)
async def test_bad_arguments_get_an_error_that_names_them(
    service: ServiceProcess, arguments: dict[str, Any], named: str
) -> None:
    async with mcp_client(service.mcp_url) as client:
        result = await client.call_tool(TOOL_NAME, arguments)
        assert result.is_error
        assert named in text_of(result)
        # The session is still good for a correct call.
        ok = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 1, "caller": "after-error"})
        assert not ok.is_error


@pytest.mark.parametrize("mode", MODES)
async def test_an_unknown_tool_is_invalid_params(service: ServiceProcess, mode: str) -> None:
    async with mcp_client(service.mcp_url, mode=mode) as client:
        with pytest.raises(MCPError) as error:
            await client.call_tool("no-such-tool", {})
    assert error.value.error.code == INVALID_PARAMS
    assert "no-such-tool" in error.value.error.message


async def find_running_job(service: ServiceProcess, caller: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=service.base_url) as http:
        with anyio.fail_after(10):
            while True:
                jobs = (await http.get("/jobs", params={"status": "running"})).json()["items"]
                mine: list[dict[str, Any]] = [job for job in jobs if job["caller"] == caller and job["sent"] >= 2]
                if mine:
                    return mine[0]
                await anyio.sleep(0.02)


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_the_job_over_rest_ends_the_call_with_a_cancelled_result(
    service: ServiceProcess, mode: str
) -> None:
    caller = f"cancel-over-rest-{mode}"
    async with mcp_client(service.mcp_url, mode=mode) as client, anyio.create_task_group() as tg:
        results: list[Any] = []

        async def call() -> None:
            results.append(await client.call_tool(TOOL_NAME, {"interval": 0.05, "count": 200, "caller": caller}))

        tg.start_soon(call)
        job = await find_running_job(service, caller)
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            cancelled = (await http.post(f"/jobs/{job['id']}/cancel")).json()
    assert cancelled["status"] == "cancelled"
    (result,) = results
    assert result.is_error
    assert result.structured_content["status"] == "cancelled"
    sent = result.structured_content["sent"]
    assert 2 <= sent < 200
    assert f"Cancelled after {sent} of 200 notifications" in text_of(result)


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_cancels_its_call_cancels_the_job(service: ServiceProcess, mode: str) -> None:
    caller = f"client-cancel-{mode}"
    async with mcp_client(service.mcp_url, mode=mode) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, TOOL_NAME, {"interval": 0.05, "count": 200, "caller": caller})
            job = await find_running_job(service, caller)
            tg.cancel_scope.cancel()  # the SDK client sends notifications/cancelled
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            with anyio.fail_after(10):
                while (await http.get(f"/jobs/{job['id']}")).json()["status"] == "running":
                    await anyio.sleep(0.02)
            final = (await http.get(f"/jobs/{job['id']}")).json()
    assert final["status"] == "cancelled"
    assert final["sent"] < 200


async def test_json_response_mode_returns_the_result_without_notifications(start_service: ServiceFactory) -> None:
    with start_service(JSON_RESPONSE="true") as service:
        received = Received()
        async with mcp_client(service.mcp_url, received=received) as client:
            result = await client.call_tool(TOOL_NAME, {"interval": 0.01, "count": 3, "caller": "json"})
        assert not result.is_error
        assert result.structured_content["sent"] == 3
        # The documented trade-off: one JSON body per POST carries only the response.
        assert received.logs == []
        response = httpx.post(
            service.mcp_url,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            },
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["result"]["serverInfo"]["name"] == "mcp-notification-service"


async def test_a_rest_job_with_session_id_reaches_that_sessions_get_stream(service: ServiceProcess) -> None:
    received = Received()
    async with mcp_client(service.mcp_url, received=received) as client:
        first = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 1, "caller": "find-my-session"})
        job = httpx.get(f"{service.base_url}/jobs/{first.structured_content['job_id']}").json()
        session_id = job["session_id"]
        assert session_id
        created = httpx.post(
            f"{service.base_url}/jobs",
            json={"interval": 0.01, "count": 3, "caller": "pushed", "session_id": session_id},
        )
        assert created.status_code == 202, created.text
        expected = [f"Notification {i}/3 for pushed" for i in range(1, 4)]
        with anyio.fail_after(10):
            while [log for log in received.logs if "pushed" in log] != expected:
                await anyio.sleep(0.02)
