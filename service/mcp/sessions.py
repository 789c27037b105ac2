"""Live MCP sessions, so that a REST call can push notifications onto a session's GET stream.

The SDK keeps no public registry of sessions. A session is registered when its client
sends `notifications/initialized` (the first message that carries its session id) and
forgotten when the session manager discards it.
"""

from __future__ import annotations

from mcp.server.session import ServerSession


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, tuple[ServerSession, str | None]] = {}

    def add(self, session_id: str, session: ServerSession, owner: str | None) -> None:
        self._sessions[session_id] = (session, owner)

    def get(self, session_id: str, owner: str | None) -> ServerSession | None:
        """The session, if it is live and belongs to `owner` (None when authentication is off)."""
        entry = self._sessions.get(session_id)
        return entry[0] if entry is not None and entry[1] == owner else None

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
