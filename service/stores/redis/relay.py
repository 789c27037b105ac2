"""The Redis store's `SessionRelay`: which replica holds each live MCP session, and each replica's inbox.

A session's record names its replica and expires unless that replica renews it, so a replica
that crashed leaves none for long. A notification for a session held elsewhere goes, with the
next batch, to the inbox (a stream) of the replica that holds it, which reads its inbox and
pushes each one to the session's GET stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from redis.exceptions import RedisError

from service.domain.notifications import Notification
from service.stores.base import SessionRecord
from service.stores.redis.board import RedisBoard
from service.stores.redis.writer import Writer

__all__ = ["RedisRelay"]

logger = logging.getLogger(__name__)

RELAY_BACKLOG = 100_000
"""Entries a replica's inbox keeps at most (approximately): a replica that is gone does not grow it forever."""


class RedisRelay:
    """This replica's sessions, as the others see them, and its inbox."""

    def __init__(self, writer: Writer, board: RedisBoard, *, replica: str, sessions: set[str]) -> None:
        self.replica = replica
        self._writer = writer
        self._keys = writer.keys
        self._board = board
        self._sessions = sessions
        """The MCP sessions this replica holds (the board keeps their shares while they live)."""

    def register_session(self, session_id: str, owner: str | None) -> None:
        self._sessions.add(session_id)
        key = self._keys.session(session_id)
        authenticated = "0" if owner is None else "1"
        self._writer.send_later(
            ("HSET", key, "replica", self.replica, "owner", owner or "", "authenticated", authenticated),
            ("PEXPIRE", key, self._writer.open_ttl),
        )

    def unregister_session(self, session_id: str) -> None:
        self._sessions.discard(session_id)
        self._board.forget_if_idle(session_id)
        self._writer.send_later(("DEL", self._keys.session(session_id)))

    async def find_session(self, session_id: str) -> SessionRecord | None:
        writer = self._writer
        await writer.flush()
        found = await writer.call(writer.redis.hgetall(self._keys.session(session_id)))
        if not found:
            return None
        owner = found[b"owner"].decode() if found.get(b"authenticated") == b"1" else None
        return SessionRecord(replica=found[b"replica"].decode(), owner=owner)

    async def relay(self, replica: str, session_id: str, notification: Notification) -> None:
        fields = {
            "session": session_id,
            "job": notification.job_id,
            "index": notification.index,
            "count": notification.count,
            "caller": notification.caller,
        }
        args = [item for pair in fields.items() for item in pair]
        command = ("XADD", self._keys.inbox(replica), "MAXLEN", "~", RELAY_BACKLOG, "*", *args)
        self._writer.writes.queue().commands.append(command)

    async def serve_relayed(self, deliver: Callable[[str, Notification], Awaitable[None]]) -> None:
        writer = self._writer
        inbox = self._keys.inbox(self.replica)
        # From the inbox's top as it is now: what was relayed to a replica of this name before
        # this process started was for sessions that died with that replica.
        top = await writer.call(writer.redis.xrevrange(inbox, count=1))
        last = top[0][0].decode() if top else "0-0"
        renewed = time.monotonic()
        while True:
            try:
                found: Any = await writer.redis.xread({inbox: last}, block=5000)
            except (RedisError, OSError) as exc:
                logger.warning("Redis store: relay inbox unreadable (%s); retrying", exc)
                await anyio.sleep(1)
                continue
            for _, entries in found or []:
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    text = {key.decode(): value.decode() for key, value in fields.items()}
                    notification = Notification(text["job"], int(text["index"]), int(text["count"]), text["caller"])
                    await deliver(text["session"], notification)
            # The live sessions' records expire unless renewed: a replica that crashed leaves none for long.
            if time.monotonic() - renewed > writer.open_ttl / 4000:
                renewed = time.monotonic()
                writer.send_later(*[("PEXPIRE", self._keys.session(s), writer.open_ttl) for s in self._sessions])
