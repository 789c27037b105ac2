"""The resumable MCP core alone in a host's app, as the README's second example has it: the host's own
low-level `Server` (one tool, `countdown`), `service.mcp.SessionManager` and an event log, and nothing of jobs.

`tests/host/test_host_app.py` runs it under plain `uvicorn tests.host.core_app:app`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolRequestParams, CallToolResult, ListToolsResult, PaginatedRequestParams, TextContent, Tool
from starlette.routing import Route

from service.mcp import SessionManager
from service.settings import Settings
from service.stores import create_stores

COUNTDOWN = Tool(
    name="countdown",
    description="Log `count` lines, `interval` seconds apart.",
    input_schema={"type": "object", "properties": {"count": {"type": "integer"}, "interval": {"type": "number"}}},
)


async def list_tools(ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None) -> ListToolsResult:
    return ListToolsResult(tools=[COUNTDOWN])


async def call_tool(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
    arguments = params.arguments or {}
    count = int(arguments.get("count", 3))
    for index in range(1, count + 1):
        await ctx.session.send_log_message("info", f"{index} of {count}", related_request_id=ctx.request_id)
        await anyio.sleep(float(arguments.get("interval", 0.01)))
    return CallToolResult(content=[TextContent(type="text", text=f"counted {count}")])


my_mcp_server: Server[Any] = Server("a-host", on_list_tools=list_tools, on_call_tool=call_tool)

port = os.environ.get("SERVICE_PORT", "8000")
event_log = create_stores(Settings()).storage  # SERVICE_STORE: SQLite unless set
sessions = SessionManager(
    my_mcp_server,
    event_log=event_log,
    security_settings=TransportSecuritySettings(
        allowed_hosts=[f"127.0.0.1:{port}", f"localhost:{port}"],
        allowed_origins=[f"http://localhost:{port}"],
    ),
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with event_log, sessions.run():
        yield


app = FastAPI(lifespan=lifespan)
app.router.routes.append(Route("/mcp", StreamableHTTPASGIApp(sessions), methods=["GET", "POST", "DELETE"]))


@app.get("/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}
