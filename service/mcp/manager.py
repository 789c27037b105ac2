"""The SDK's session manager, building a resumable transport per session, and the directory of live sessions.

Overrides the manager's private `_admit_session` and `_discard_session`: the SDK has no
public hook for a session's start or end (`tests/mcp/test_sdk_seam.py` guards both).
Upstream, a transport factory and an `on_session_closed` callback would remove them.

With a replica id (`SERVICE_REPLICA_ID`), session ids carry it as a prefix, `<replica>.<hex>`
(visible ASCII, as the spec asks), so that a load balancer can send each request of a
session to the replica that holds it; the `SessionRelay` records which replica holds which
session, and carries notifications of jobs that run elsewhere to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from typing_extensions import override

from service.domain.notifications import Notification, Sink
from service.mcp import fast_path as speed_layer
from service.mcp.event_store import SessionEventStore, session_partition
from service.mcp.keepalive import set_modern_ping_interval
from service.mcp.resumable import ResumableTransport
from service.mcp.sinks import RelayedSessionSink, SessionStreamSink
from service.stores.base import EventLog, SessionRelay
from service.telemetry import context

__all__ = ["SessionManager"]

logger = logging.getLogger(__name__)


class SessionManager(StreamableHTTPSessionManager):
    """Builds a `ResumableTransport` (or its `FastTransport`) per session; the one owner of the live sessions.

    It is the service's `SessionDirectory` too: a REST job reaches a session's GET stream
    through the sink it hands out, and a session is in the directory from the moment the
    manager admits it until it is discarded.
    """

    @override
    def __init__(
        self,
        app: Server[Any],
        *,
        event_log: EventLog,
        relay: SessionRelay,
        ping_interval: float,
        replica: str = "",
        fast_path: bool = True,
        on_replay: Callable[[int], None] = lambda events: None,
        **options: Any,
    ) -> None:
        super().__init__(app, event_store=None, **options)
        self._event_log = event_log
        self._relay = relay
        self._id_prefix = f"{replica}." if replica else ""
        self._ping_interval = ping_interval
        set_modern_ping_interval(ping_interval)
        self._on_replay = on_replay
        self._transport_class = speed_layer.FastTransport if fast_path else ResumableTransport
        # Each live session's principal (None without authentication). Our own record: on
        # shutdown the SDK forgets its sessions before it discards them.
        self._owners: dict[str, str | None] = {}

    async def sink_for(self, session_id: str, owner: str | None) -> Sink | None:
        """Where a job started elsewhere reaches the session's GET stream; None unless it is live and `owner`'s.

        A session held by another replica is reached through the relay.
        """
        if session_id in self._owners:
            if self._owners[session_id] != owner:
                return None
            transport = self._server_instances.get(session_id)
            assert isinstance(transport, ResumableTransport)  # `_admit_session` built it
            return SessionStreamSink(transport)
        found = await self._relay.find_session(session_id)
        if found is None or found.owner != owner:
            return None
        return RelayedSessionSink(self._relay, found.replica, session_id)

    async def deliver(self, session_id: str, notification: Notification) -> None:
        """A notification relayed from another replica, for a session held here."""
        transport = self._server_instances.get(session_id)
        if session_id not in self._owners or not isinstance(transport, ResumableTransport):
            logger.debug("relayed notification for session %s, which is gone: dropped", session_id)
            return
        try:
            await SessionStreamSink(transport).send(notification)
        except anyio.ClosedResourceError:
            logger.debug("relayed notification for session %s, which has ended: dropped", session_id)

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
        self._relay.register_session(session_id, owner)
        context.session_id.set(session_id)  # the rest of the `initialize` request logs it
        logger.info("MCP session opened%s", "" if owner is None else f" by {owner}")
        return transport

    @override
    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        await super()._discard_session(session_id, transport)
        if session_id in self._owners:
            del self._owners[session_id]
            self._relay.unregister_session(session_id)
            logger.info("MCP session closed", extra={"session_id": session_id})
            await self._event_log.end_partition(session_partition(session_id))
