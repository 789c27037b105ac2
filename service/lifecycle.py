"""The service's running parts, started in dependency order and stopped in reverse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from service.jobs.engine import JobEngine
from service.mcp.manager import SessionManager
from service.stores.base import Storage
from service.tools.sessions import LiveSessions

__all__ = ["Lifecycle"]


class Lifecycle:
    """Storage, then the job engine, then the MCP sessions: `running` is the service's part of the lifespan.

    `begin_shutdown` must run as the server's shutdown begins (`NotificationService.running`
    sees to it): uvicorn waits for open responses before the lifespan's shutdown runs, and a
    tool call's stream stays open until its job ends, a GET stream until it is closed.
    """

    def __init__(
        self, storage: Storage, engine: JobEngine, sessions: SessionManager, directory: LiveSessions, *, shared: bool
    ) -> None:
        """`shared`: other replicas share the store, and go on with what this one leaves when it stops."""
        self._storage = storage
        self._engine = engine
        self._sessions = sessions
        self._directory = directory
        self._shared = shared

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        # Sessions close before the engine stops, and the engine records its jobs before
        # storage flushes and closes.
        async with self._storage, self._engine.running(), self._sessions.run(), anyio.create_task_group() as relayed:
            # Notifications of jobs that run on other replicas, for the sessions held here.
            relayed.start_soon(self._directory.serve_relayed, name="session relay")
            try:
                yield
            finally:
                # Before the sessions close: running jobs end as "interrupted", not as
                # "cancelled" by their closing sessions.
                self.begin_shutdown()
                relayed.cancel_scope.cancel()

    def begin_shutdown(self) -> None:
        """Stop the jobs and end the GET streams, so that open responses end and the server can stop.

        Alone, every open tool call ends with its "interrupted" result. On a shared store, the
        jobs that can move and the sessions are handed over: the calls' streams end without a
        result, and their clients resume them where the session is adopted, from another
        replica that goes on with the job. Idempotent.
        """
        self._engine.shutdown()
        self._sessions.close_streams()
        if self._shared:
            self._sessions.release_sessions()
