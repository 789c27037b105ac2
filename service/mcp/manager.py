"""The SDK's session manager, building a resumable transport per session.

Overrides the manager's private `_admit_session` and `_discard_session`: the SDK has no
public hook for a session's start or end (`service.mcp.sdk` lists them, and
`tests/mcp/test_sdk_seam.py` guards them). Upstream, a transport factory and an
`on_session_closed` callback would remove them.

With a replica id (`SERVICE_REPLICA_ID`), session ids carry it as a prefix, `<replica>.<hex>`
(visible ASCII, as the spec asks), so that a load balancer can send each request of a
session to the replica that holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol
from uuid import uuid4

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from typing_extensions import override

from service.mcp.event_store import SessionEventStore, session_partition
from service.mcp.fast_transport import FastTransport
from service.mcp.keepalive import set_modern_ping_interval
from service.mcp.transport import ResumableTransport
from service.stores.base import EventLog
from service.telemetry import context

__all__ = ["SessionListener", "SessionManager"]

logger = logging.getLogger(__name__)


class SessionListener(Protocol):
    """Told when a session opens and when it ends (the application's directory of sessions listens)."""

    def session_opened(self, session_id: str, owner: str | None) -> None: ...

    def session_closed(self, session_id: str) -> None: ...


class SessionManager(StreamableHTTPSessionManager):
    """Builds a `ResumableTransport` (or the `FastTransport` over it) per session, each with its own event store.

    The core of lossless resumption, with nothing of jobs: an app with its own `Server` takes
    this and an `EventLog` (`service.stores`), and serves it with the SDK's `StreamableHTTPASGIApp`.
    """

    @override
    def __init__(
        self,
        app: Server[Any],
        *,
        event_log: EventLog,
        ping_interval: float = 15.0,
        replica: str = "",
        fast: bool = True,
        on_replay: Callable[[int], None] = lambda events: None,
        **options: Any,
    ) -> None:
        super().__init__(app, event_store=None, **options)
        self._event_log = event_log
        self._id_prefix = f"{replica}." if replica else ""
        self._ping_interval = ping_interval
        set_modern_ping_interval(ping_interval)
        self._on_replay = on_replay
        self._transport_class = FastTransport if fast else ResumableTransport
        self.listeners: list[SessionListener] = []
        # Each live session's principal (None without authentication). Our own record: on
        # shutdown the SDK forgets its sessions before it discards them.
        self._owners: dict[str, str | None] = {}

    def transport_of(self, session_id: str) -> ResumableTransport | None:
        """The live session's transport, whose `push` sends on its GET stream; None once it has ended."""
        transport = self._server_instances.get(session_id)
        if session_id not in self._owners or not isinstance(transport, ResumableTransport):
            return None
        return transport

    def owner_of(self, session_id: str) -> str | None:
        """The principal that opened a live session (None without authentication, or if it is not live)."""
        return self._owners.get(session_id)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._owners

    def __len__(self) -> int:
        return len(self._owners)

    def close_streams(self) -> None:
        """End every open GET stream: at shutdown, so that clients resume elsewhere instead of holding it up."""
        for transport in self._server_instances.values():
            transport.close_standalone_sse_stream()

    @override
    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        session_id = f"{self._id_prefix}{uuid4().hex}"
        transport = self._transport_class(
            mcp_session_id=session_id,
            event_store=SessionEventStore(self._event_log, session_id),
            is_json_response_enabled=self.json_response,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
            ping_interval=self._ping_interval,
            on_replay=self._on_replay,
        )
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        owner = self._owners[session_id] = None if requestor is None else requestor["client_id"]
        for listener in self.listeners:
            listener.session_opened(session_id, owner)
        context.session_id.set(session_id)  # the rest of the `initialize` request logs it
        logger.info("MCP session opened%s", "" if owner is None else f" by {owner}")
        return transport

    @override
    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        await super()._discard_session(session_id, transport)
        if session_id in self._owners:
            del self._owners[session_id]
            for listener in self.listeners:
                listener.session_closed(session_id)
            logger.info("MCP session closed", extra={"session_id": session_id})
            await self._event_log.end_partition(session_partition(session_id))
