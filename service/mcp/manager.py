"""The SDK's session manager, building a resumable transport per session, and the directory of live sessions.

Overrides the manager's private `_admit_session` and `_discard_session`: the SDK has no
public hook for a session's start or end (`tests/mcp/test_sdk_seam.py` guards both).
Upstream, a transport factory and an `on_session_closed` callback would remove them.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from typing_extensions import override

from service.jobs.sinks import Sink
from service.mcp import fast_path as speed_layer
from service.mcp.event_store import SessionEventStore, session_partition
from service.mcp.resumable import ResumableTransport
from service.mcp.sinks import SessionStreamSink
from service.stores.base import EventLog

__all__ = ["SessionManager"]


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
        ping_interval: float,
        fast_path: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(app, event_store=None, **options)
        self._event_log = event_log
        self._ping_interval = ping_interval
        self._transport_class = speed_layer.FastTransport if fast_path else ResumableTransport
        # Each live session's principal (None without authentication). Our own record: on
        # shutdown the SDK forgets its sessions before it discards them.
        self._owners: dict[str, str | None] = {}

    def sink_for(self, session_id: str, owner: str | None) -> Sink | None:
        """Where a job started elsewhere reaches the session's GET stream; None unless it is live and `owner`'s."""
        transport = self._server_instances.get(session_id)
        if session_id not in self._owners or self._owners[session_id] != owner:
            return None
        assert isinstance(transport, ResumableTransport)  # `_admit_session` built it
        return SessionStreamSink(transport)

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
        session_id = uuid4().hex
        transport = self._transport_class(
            mcp_session_id=session_id,
            event_store=SessionEventStore(self._event_log, session_id),
            is_json_response_enabled=self.json_response,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
            ping_interval=self._ping_interval,
        )
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        self._owners[session_id] = None if requestor is None else requestor["client_id"]
        return transport

    @override
    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        await super()._discard_session(session_id, transport)
        if session_id in self._owners:
            del self._owners[session_id]
            await self._event_log.end_partition(session_partition(session_id))
