"""The MCP server: its tools and logging."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from mcp.server.context import ServerMiddleware, ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    EmptyResult,
    ListToolsResult,
    PaginatedRequestParams,
    SetLevelRequestParams,
)

from service.domain.jobs import JobSpec
from service.jobs.engine import JobEngine
from service.tasks.creation import TaskCreation
from service.tasks.handlers import install_task_methods
from service.tasks.host_tools import run_as_tasks
from service.tools.base import McpTool, error_result
from service.tools.notification_stream import notification_tool

__all__ = ["SERVER_NAME", "build_server"]

logger = logging.getLogger(__name__)

SERVER_NAME = "mcp-notification-service"


def build_server(
    engine: JobEngine,
    *,
    spec: type[JobSpec],
    version: str,
    extra_tools: Sequence[McpTool] = (),
    middleware: Sequence[ServerMiddleware[Any]] = (),
    traced: bool = True,
    task_min_seconds: float = 1.0,
    task_ttl_ms: int | None = None,
) -> Server[Any]:
    """The low-level MCP server. `extra_tools` lets an embedding app (or a test set-up) add its own;
    `middleware` wraps every inbound message, inside the SDK's own (its OpenTelemetry spans), which
    `traced=False` leaves out: untraced, its spans are no-ops that still take time (docs/performance.md)."""
    # A host's tool that says it can be a task (`execution.taskSupport`) runs its handler as a task's job.
    served = (notification_tool(engine, spec), *(run_as_tasks(engine, tool) for tool in extra_tools))
    tools = {tool.definition.name: tool for tool in served}
    listing = ListToolsResult(tools=[tool.definition for tool in tools.values()])

    async def list_tools(ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None) -> ListToolsResult:
        return listing

    async def call_tool(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        try:
            return await tool.handler(ctx, params.arguments or {})
        except MCPError:
            raise
        except Exception:
            # The SDK would answer a JSON-RPC error with code 0 and the exception's text.
            logger.exception("tool %s failed (request %s)", params.name, ctx.request_id)
            return error_result(f"Internal error in {params.name} (request {ctx.request_id}): see the server log")

    def input_schema(name: str) -> dict[str, Any] | None:
        tool = tools.get(name)
        return None if tool is None else tool.definition.input_schema

    async def set_logging_level(ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        # Accepted for handshake-era clients; every notification this server sends is at level info.
        return EmptyResult()

    server: Server[Any] = Server(
        SERVER_NAME,
        version=version,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        get_tool_input_schema=input_schema,
    )
    # Registered directly rather than through the constructor, which warns that logging is deprecated
    # as of 2026-07-28: this server still serves handshake-era clients, for whom it is not.
    server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_logging_level)
    if not traced:
        server.middleware.clear()  # the SDK's documented opt-out of its OpenTelemetryMiddleware
    server.middleware.extend(middleware)
    # Tasks (both eras): a long call of a tool that can be one answers with a task; the task methods read its job.
    server.middleware.append(TaskCreation(tools, min_seconds=task_min_seconds, ttl_ms=task_ttl_ms))
    install_task_methods(server, engine, tools)
    return server
