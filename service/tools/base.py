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

__all__ = ["McpTool", "ToolHandler", "describe_validation_error", "error_result"]

ToolHandler = Callable[[ServerRequestContext[Any], dict[str, Any]], Awaitable[CallToolResult]]


@dataclass(frozen=True, slots=True)
class McpTool:
    """A tool as the server lists it, and the coroutine that runs a call to it."""

    definition: Tool
    handler: ToolHandler


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def describe_validation_error(exc: ValidationError) -> str:
    """`count: Input should be greater than or equal to 1; caller: Field required`."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "Invalid arguments: " + "; ".join(parts)
