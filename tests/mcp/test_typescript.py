"""The TypeScript SDK's client (through Node) against the real service."""

from __future__ import annotations

import httpx
import pytest

from harness.clients import ensure_node_client, run_node_client
from harness.service import ServiceProcess
from service.tools.notification_stream import TOOL_NAME
from tests.support import unavailable


@pytest.fixture(scope="module", autouse=True)
def node_client() -> None:
    if (problem := ensure_node_client()) is not None:
        unavailable(problem)


def test_the_typescript_client_receives_every_notification_and_the_result(service: ServiceProcess) -> None:
    out = run_node_client(
        {
            "url": service.mcp_url,
            "tool": TOOL_NAME,
            "arguments": {"interval": 0.01, "count": 20, "caller": "ts"},
            "progress": True,
        }
    )
    assert "error" not in out, out
    assert out["protocolVersion"] == "2025-11-25"
    assert out["logs"] == [f"Notification {i}/20 for ts" for i in range(1, 21)]
    assert out["progress"] == list(range(1, 21))
    result = out["result"]
    assert not result.get("isError")
    assert result["structuredContent"]["status"] == "completed"
    assert out["lastEventId"] is not None  # events carry ids: the stream is resumable

    job = httpx.get(f"{service.base_url}/jobs/{result['structuredContent']['job_id']}").json()
    assert (job["origin"], job["session_id"], job["sent"]) == ("mcp", out["sessionId"], 20)


def test_the_typescript_client_lists_the_tool(service: ServiceProcess) -> None:
    assert run_node_client({"url": service.mcp_url, "listTools": True}) == {"tools": [TOOL_NAME]}


def test_a_session_the_typescript_client_deleted_takes_no_more_pushes(service: ServiceProcess) -> None:
    out = run_node_client(
        {
            "url": service.mcp_url,
            "tool": TOOL_NAME,
            "arguments": {"interval": 0, "count": 1, "caller": "ts-term"},
            "mode": "terminate",
        }
    )
    assert "error" not in out, out
    # After DELETE (terminateSession) the session is gone, so REST cannot push to it any more.
    response = httpx.post(
        f"{service.base_url}/jobs", json={"interval": 0, "count": 1, "caller": "x", "session_id": out["sessionId"]}
    )
    assert response.status_code == 404
