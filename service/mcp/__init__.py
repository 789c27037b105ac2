"""The resumable MCP core: the SDK's session manager, transport and event store with resumption made correct.

Nothing here knows of jobs. A host with a `Server` of its own and no need for jobs takes
`SessionManager` with an `EventLog` (a store of `service.stores`) and serves it with the
SDK's `StreamableHTTPASGIApp`: `service.mcp.transport` says what is made correct, and why;
`service.mcp.sdk` lists every private member of the SDK this relies on.
"""

from service.mcp.event_store import SessionEventStore, StoredMessage
from service.mcp.fast_transport import FastTransport
from service.mcp.manager import SessionManager
from service.mcp.transport import ResumableTransport

__all__ = [
    "FastTransport",
    "ResumableTransport",
    "SessionEventStore",
    "SessionManager",
    "StoredMessage",
]
