"""MCP over StreamableHTTP with lossless resumption: the pieces an app of its own can take.

`SessionManager` (with `ResumableTransport` per session, or `FastTransport` over it) and
`SessionEventStore` are the SDK's manager, transport and event store with resumption made
correct (`service.mcp.resumable` says what and why); `build_server` and `McpTool` are the
server and its tools.
"""

from service.mcp.event_store import SessionEventStore, StoredMessage
from service.mcp.fast_path import FastTransport
from service.mcp.manager import SessionManager
from service.mcp.resumable import ResumableTransport
from service.mcp.server import build_server
from service.mcp.tools import McpTool, ToolHandler

__all__ = [
    "FastTransport",
    "McpTool",
    "ResumableTransport",
    "SessionEventStore",
    "SessionManager",
    "StoredMessage",
    "ToolHandler",
    "build_server",
]
