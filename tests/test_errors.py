"""The handlers of last resort, in process: a bug answers JSON with an id the log carries too, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent, Tool

from service.app import create_app
from service.mcp.tools import McpTool
from service.settings import Settings, StoreBackend

pytestmark = [pytest.mark.anyio, pytest.mark.in_process]


async def boom() -> None:
    raise RuntimeError("secret internals")


async def test_an_unhandled_error_is_a_json_500_with_a_request_id(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(store=StoreBackend.MEMORY))
    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
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
    app = create_app(Settings(store=StoreBackend.MEMORY))
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
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
    app = create_app(Settings(store=StoreBackend.MEMORY), extra_tools=[tool])
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://127.0.0.1:8000") as http,
        Client(streamable_http_client("http://127.0.0.1:8000/mcp", http_client=http), mode="legacy") as client,
    ):
        with caplog.at_level(logging.ERROR, logger="service.mcp.server"):
            result = await client.call_tool("explode", {})
    assert result.is_error
    text = result.content[0].text if isinstance(result.content[0], TextContent) else ""
    assert text.startswith("Internal error in explode (request ")
    assert "secret internals" not in text
    assert any("tool explode failed" in record.getMessage() for record in caplog.records)
