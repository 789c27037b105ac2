"""Every private part of the MCP SDK this package relies on, in one list: an SDK upgrade is this file to read.

The resumable core subclasses the SDK's transport, manager and event store, overrides private
methods, reads private attributes and sets a private constant; the tools' fast sink writes
what one SDK method would. None of that is the SDK's public API. `tests/mcp/test_sdk_seam.py`
checks each entry against the installed SDK and fails naming what moved:

- `OVERRIDDEN`: each SDK member one of our classes overrides, with a digest of the SDK source
  it was written against (a changed body means re-reading ours, even where we call `super()`);
- `REPLACED`: SDK code that ours does instead of calling (the fast transport's writer, the
  fast sink), by digest too;
- `CALLED`: private methods we call, with their parameters;
- `ATTRIBUTES`: private attributes we read or set;
- `IMPORTED`: names we import from the SDK's modules, private ones included;
- `CONSTANTS`: module constants we set (`service.mcp.keepalive`), and the digest of the code that reads each.

After an upgrade that fails there: read the SDK's new code for the member named, adapt the
module that uses it (or set `SERVICE_MCP_FAST_TRANSPORT=false` and drop the fast transport),
then update the entry here. Each module that leans on these says which upstream change would
remove its part (`service.mcp.transport`, `manager`, `keepalive`).
"""

from __future__ import annotations

from typing import Any

from mcp.server import _streamable_http_modern as modern
from mcp.server.session import ServerSession
from mcp.server.streamable_http import EventStore, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

__all__ = ["ATTRIBUTES", "CALLED", "CONSTANTS", "IMPORTED", "OVERRIDDEN", "REPLACED"]

Transport = StreamableHTTPServerTransport
Manager = StreamableHTTPSessionManager

OVERRIDDEN: dict[tuple[type[Any], str], str] = {
    (Transport, "__init__"): "30f41bfc3918",
    (Transport, "_run_sse_writer"): "886892073c4e",
    (Transport, "_handle_post_request"): "cc4f2cd0c9e3",
    (Transport, "_handle_get_request"): "4169e339c24c",
    (Transport, "_terminate_unanswered_request"): "1e65ccb1f1ac",
    (Transport, "_create_event_data"): "89c55d1c9383",
    (Transport, "connect"): "fbb24a6b38c3",
    (Manager, "__init__"): "a005ca7a3685",
    (Manager, "_admit_session"): "be70a49c7998",
    (Manager, "_serve_opening_request"): "6940e25a2a3a",
    (Manager, "_handle_stateful_request"): "aaa548f3ce29",
    (Manager, "_discard_session"): "29912d645738",
    (EventStore, "store_event"): "c541597e2a93",
    (EventStore, "replay_events_after"): "072121d23fd4",
}

REPLACED: dict[tuple[type[Any], str], str] = {
    # `service.tools.sinks.SerializedRequestStreamSink` writes what this sends, and applies its gate.
    (ServerSession, "send_log_message"): "5517801f2792",
}

CALLED: dict[type[Any], dict[str, tuple[str, ...]]] = {
    Transport: {
        "_mint_priming_event": ("self", "stream_id", "protocol_version"),
        "_create_error_response": ("self", "error_message", "status_code", "error_code", "headers"),
        "_validate_request_headers": ("self", "request", "send"),
        "_check_content_type": ("self", "request"),
        "_create_session_message": ("self", "message", "request", "request_id", "protocol_version"),
        "_clean_up_memory_streams": ("self", "request_id"),
        "close_sse_stream": ("self", "request_id"),
        "close_standalone_sse_stream": ("self",),
    },
    Manager: {
        "run": ("self",),
    },
}

ATTRIBUTES: dict[type[Any], tuple[str, ...]] = {
    Transport: (
        "mcp_session_id",
        "is_json_response_enabled",
        "idle_scope",
        "_request_streams",
        "_sse_stream_writers",
        "_idle_timeout",
        "_read_stream_writer",
        "_read_stream",
        "_write_stream",
    ),
    Manager: (
        "_server_instances",
        "_session_owners",
        "max_sessions",
        "json_response",
        "security_settings",
        "retry_interval",
        "session_idle_timeout",
        "_task_group",
        "_lifespan_state",
    ),
}

IMPORTED: dict[str, tuple[str, ...]] = {
    "mcp.server.streamable_http": (
        "GET_STREAM_KEY",
        "LAST_EVENT_ID_HEADER",
        "MCP_SESSION_ID_HEADER",
        "REQUEST_CANCELLED",
        "REQUEST_STREAM_BUFFER_SIZE",
        "EventMessage",
        "SSEEvent",
        "StreamId",
        "check_accept_headers",
    ),
    "mcp.server.connection": ("Connection", "allowed_log_levels"),
    # `SessionManager._serve_session` drives a session as the SDK's `serve_loop` does, so that an adopted one
    # starts initialized.
    "mcp.server.runner": ("serve_connection",),
    "mcp.shared.jsonrpc_dispatcher": ("JSONRPCDispatcher",),
    "mcp.shared._context_streams": ("create_context_streams",),
    "mcp.shared._stream_protocols": ("ReadStream", "WriteStream"),
    "mcp.shared.inbound": ("MCP_PROTOCOL_VERSION_HEADER",),
    "mcp.server._streamable_http_modern": ("handle_modern_request",),
}

CONSTANTS: dict[str, tuple[Any, str, str]] = {
    # The 2026-07-28 handler's keep-alive interval (`service.mcp.keepalive`), read by `handle_modern_request`.
    "_SSE_PING_INTERVAL": (modern, "handle_modern_request", "cde3cb6094dd"),
}
