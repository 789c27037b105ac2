"""A host's FastAPI app, as a backend team would write one: its own routes, its own users and
authentication, its own lifespan, and the notification service added from the public names only.

`tests/host/test_host_app.py` runs it under plain `uvicorn tests.host.app:app`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, HTTPException, Request
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, CallToolResult, TextContent, Tool, ToolExecution

from service import McpTool, NotificationService, Settings

PREFIX = "/notify"
API_KEYS = {"alice-key": "alice", "bob-key": "bob"}
"""The host's own users, by API key: nothing the service knows of (no `SERVICE_AUTH_TOKENS`)."""

started: list[str] = []


async def who_is_calling(request: Request) -> str | None:
    """The host's authentication: its API keys, sent as bearer tokens."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return API_KEYS.get(key) if scheme.lower() == "bearer" else None


async def build_report(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    """The host's own slow tool: it says it can run as a task, so a client that declares the extension gets one."""
    await anyio.sleep(float(arguments.get("seconds", 1)))
    if arguments.get("fail"):
        raise MCPError(code=INTERNAL_ERROR, message="the report's data source is down")
    return CallToolResult(content=[TextContent(type="text", text=f"Report {arguments.get('name', '?')} is ready")])


REPORT_TOOL = McpTool(
    Tool(
        name="build-report",
        description="Builds a report (slowly)",
        input_schema={"type": "object", "properties": {"name": {"type": "string"}, "seconds": {"type": "number"}}},
        execution=ToolExecution(task_support="optional"),
    ),
    build_report,
)

notifications = NotificationService(Settings(), authenticate=who_is_calling, extra_tools=[REPORT_TOOL])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    started.append("host")  # the host's own start-up, next to the service's
    async with notifications.running():
        yield


users = APIRouter(prefix="/users", tags=["users"])


@users.get("/me")
async def me(request: Request) -> dict[str, str]:
    name = await who_is_calling(request)
    if name is None:
        raise HTTPException(401, "Who are you?")
    return {"name": name, "started": ",".join(started)}


app = FastAPI(title="A host app", lifespan=lifespan)
app.include_router(users)
notifications.install(app, prefix=PREFIX)
