"""The live MCP sessions as places a job's notifications can go: the `SessionDirectory` the REST routes use.

It wraps the resumable core's `SessionManager` without the core knowing of jobs: the manager
records its sessions in the `SessionRelay`, through which a job running on another replica
reaches a session held here, and a job here one held elsewhere.
"""

from __future__ import annotations

import logging

import anyio

from service.domain.notifications import Notification, Sink
from service.jobs.engine import JobEngine
from service.mcp.manager import SessionManager
from service.stores.base import SessionRelay
from service.tools.sinks import RelayedSessionSink, SessionStreamSink

__all__ = ["LiveSessions"]

logger = logging.getLogger(__name__)


class LiveSessions:
    """The sessions of `manager`, and through `relay` those of the other replicas."""

    def __init__(self, manager: SessionManager, relay: SessionRelay, engine: JobEngine) -> None:
        self._manager = manager
        self._relay = relay
        self._engine = engine

    async def sink_for(self, session_id: str, owner: str | None) -> Sink | None:
        """Where a job started elsewhere reaches the session's GET stream; None unless it is live and `owner`'s."""
        if session_id in self._manager:
            transport = self._manager.transport_of(session_id)
            if transport is None or self._manager.owner_of(session_id) != owner:
                return None
            return SessionStreamSink(transport)
        found = await self._relay.find_session(session_id)
        if found is None or found.owner != owner:
            return None
        return RelayedSessionSink(self._relay, found.replica, session_id)

    async def deliver(self, session_id: str, notification: Notification) -> None:
        """A notification relayed from another replica, for a session held here."""
        transport = self._manager.transport_of(session_id)
        if transport is None:
            logger.debug("relayed notification for session %s, which is gone: dropped", session_id)
            return
        try:
            await SessionStreamSink(transport).send(notification)
        except anyio.ClosedResourceError:
            logger.debug("relayed notification for session %s, which has ended: dropped", session_id)

    async def release(self, session_id: str) -> None:
        """Give up a session held here, which another replica asked for (its requests reach that one now): its
        calls' jobs go on elsewhere, and its client resumes there."""
        await self._engine.hand_over_session(session_id)
        await self._manager.release(session_id)

    async def serve_relayed(self) -> None:
        """Deliver, until cancelled, the notifications other replicas relay to the sessions held here, and give
        up the sessions other replicas ask for."""
        await self._relay.serve_relayed(self.deliver, self.release)

    def __len__(self) -> int:
        return len(self._manager)
