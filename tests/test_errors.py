"""The handlers of last resort, in process: a bug answers JSON with an id the log carries too, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from mcp_types import CallToolResult, TextContent, Tool

from service import McpTool
from service.app import create_app
from service.settings import Settings, StoreBackend
from tests.in_process import mcp_over_asgi, rest_client, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.in_process]


async def boom() -> None:
    raise RuntimeError("secret internals")


async def test_an_unhandled_error_is_a_json_500_with_a_request_id(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(store=StoreBackend.MEMORY))
    app.add_api_route("/boom", boom)
    async with rest_client(app) as http:
        with caplog.at_level(logging.ERROR, logger="service.errors"):
            response = await http.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    request_id = body["request_id"]
    assert body["detail"] == f"Internal server error (request {request_id})"
    assert response.headers["x-request-id"] == request_id
    assert "secret internals" not in response.text
    (record,) = [r for r in caplog.records if request_id in r.getMessage()]
    assert record.exc_info is not None
    assert "secret internals" in str(record.exc_info[1])


async def test_mcp_before_start_up_is_a_json_rpc_500() -> None:
    """The session manager is not running until the lifespan has started it: that is a 500, as JSON-RPC."""
    async with rest_client(create_app(Settings(store=StoreBackend.MEMORY))) as http:  # no lifespan: not started
        response = await http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"},
        )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == -32603
    assert "Internal server error (request " in error["message"]


async def explode(ctx: Any, arguments: dict[str, Any]) -> CallToolResult:
    raise RuntimeError("secret internals")


async def test_a_tool_that_raises_ends_its_call_with_a_tool_error_not_code_0(caplog: pytest.LogCaptureFixture) -> None:
    """The SDK answers a plain exception with JSON-RPC error code 0 and its text; here, a tool error."""
    tool = McpTool(Tool(name="explode", input_schema={"type": "object"}), explode)
    async with running_app(extra_tools=(tool,)) as app, mcp_over_asgi(app) as client:
        with caplog.at_level(logging.ERROR, logger="service.tools.server"):
            result = await client.call_tool("explode", {})
    assert result.is_error
    text = result.content[0].text if isinstance(result.content[0], TextContent) else ""
    assert text.startswith("Internal error in explode (request ")
    assert "secret internals" not in text
    assert any("tool explode failed" in record.getMessage() for record in caplog.records)
