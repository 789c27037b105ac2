"""What every tool the server lists is: its definition, and the coroutine that runs a call to it.

A host app serves tools of its own next to this service's by passing `McpTool`s as
`extra_tools` (`NotificationService(extra_tools=...)`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp_types import CallToolResult, TextContent, Tool
from pydantic import ValidationError

from service.domain.jobs import JobRecord, McpTask

__all__ = ["McpTool", "TaskSupport", "ToolHandler", "describe_validation_error", "error_result"]

ToolHandler = Callable[[ServerRequestContext[Any], dict[str, Any]], Awaitable[CallToolResult]]


@dataclass(frozen=True, slots=True)
class TaskSupport:
    """How a tool runs as an MCP task (`service.tasks`): as a job, whose end is the call's result."""

    expected_seconds: Callable[[dict[str, Any]], float]
    """How long a call with these arguments should run (a 2026 call becomes a task from `SERVICE_TASK_MIN_SECONDS`);
    raises `ValidationError` for arguments the tool refuses (the call then runs inline, and says what is wrong)."""
    start: Callable[[ServerRequestContext[Any], dict[str, Any], McpTask], Awaitable[JobRecord]]
    """Start the call's job as `task` (`JobEngine.start`): recorded before it returns, so any replica finds it."""
    result: Callable[[JobRecord], CallToolResult]
    """The call's result, from its job's record once it has ended (on whichever replica asks)."""
    required: bool = False
    """Whether the tool runs only as a task: a call without the extension (2026) or `params.task` (2025) is refused."""


@dataclass(frozen=True, slots=True)
class McpTool:
    """A tool as the server lists it, and the coroutine that runs a call to it."""

    definition: Tool
    handler: ToolHandler
    tasks: TaskSupport | None = None
    """How it runs as a task; None: always inline."""


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def describe_validation_error(exc: ValidationError) -> str:
    """`count: Input should be greater than or equal to 1; caller: Field required`."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "Invalid arguments: " + "; ".join(parts)
