"""The session manager, adapted so that every session gets its own event store.

Verified against mcp 2.3.x (pinned in pyproject.toml): this overrides two private hooks
of `StreamableHTTPSessionManager`, `_admit_session` (where a session's transport is
built) and `_discard_session` (where it is forgotten), because the SDK offers no public
way to give each session its own store or to learn that a session ended.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from service.mcp.event_store import SessionEventStore, session_scope
from service.mcp.sessions import SessionRegistry
from service.stores.base import EventLog

logger = logging.getLogger(__name__)


class SessionManager(StreamableHTTPSessionManager):
    def __init__(
        self, app: Server[Any], *, event_log: EventLog | None, sessions: SessionRegistry, **options: Any
    ) -> None:
        super().__init__(app, event_store=None, **options)
        self._event_log = event_log
        self._sessions = sessions

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        if transport is not None and self._event_log is not None:
            assert transport.mcp_session_id is not None
            transport._event_store = SessionEventStore(self._event_log, transport.mcp_session_id)
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        known = session_id in self._server_instances
        await super()._discard_session(session_id, transport)
        if known:
            self._sessions.forget(session_id)
            if self._event_log is not None:
                await self._event_log.end_scope(session_scope(session_id))
