"""The Redis store's `SessionRelay`: which replica holds each MCP session, and each replica's inbox.

A session's record names its replica and its holder (the process), and what its `initialize`
agreed on; it expires unless renewed. A holder is alive while its heartbeat key is
(`RedisBoard` renews it with the leases): a session whose holder is gone is adopted by the
first replica its client reaches (`ADOPT`: one wins). A notification for a session held
elsewhere goes, with the next batch, to the inbox (a stream) of the replica that holds it,
which reads its inbox and pushes each one to the session's GET stream; so does another
replica's request to have a session released (the session's requests reach that one now).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import anyio
from redis.exceptions import RedisError

from service.domain.notifications import Notification
from service.stores.base import SessionBusy, SessionRecord
from service.stores.redis import scripts
from service.stores.redis.board import RedisBoard
from service.stores.redis.writer import Writer

__all__ = ["RedisRelay"]

logger = logging.getLogger(__name__)

ADOPT_POLL = 0.1
"""Seconds between two looks at a session's holder that seems alive (its heartbeat lapses within a lease)."""
RELAY_BLOCK_MS = 1000
"""How long a read of the inbox waits for an entry: short, since a request to release a session is waited for."""
RELAY_BACKLOG = 100_000
"""Entries a replica's inbox keeps at most (approximately): a replica that is gone does not grow it forever."""


class RedisRelay:
    """This replica's sessions, as the others see them, and its inbox."""

    shared = True

    def __init__(self, writer: Writer, board: RedisBoard, *, replica: str, sessions: set[str]) -> None:
        self.replica = replica
        self._writer = writer
        self._keys = writer.keys
        self._board = board
        self._sessions = sessions
        """The MCP sessions this replica holds (the board keeps their shares while they live)."""
        board.on_lapse = self._give_up_sessions

    def _give_up_sessions(self) -> None:
        """Ask this replica, through its own inbox, to release every session it holds (`serve_relayed`)."""
        inbox = self._keys.inbox(self.replica)
        self._writer.send_later(*[("XADD", inbox, "*", "session", s, "release", "1") for s in self._sessions])

    def register_session(self, session_id: str, owner: str | None) -> None:
        self._sessions.add(session_id)
        key = self._keys.session(session_id)
        authenticated = "0" if owner is None else "1"
        record = ("replica", self.replica, "holder", self._board.runner, "owner", owner or "")
        self._writer.send_later(
            ("HSET", key, *record, "authenticated", authenticated), ("PEXPIRE", key, self._writer.open_ttl)
        )

    def describe_session(self, session_id: str, protocol_version: str, client: str) -> None:
        self._writer.send_later(("HSET", self._keys.session(session_id), "version", protocol_version, "client", client))

    def unregister_session(self, session_id: str) -> None:
        self._forget(session_id)
        self._writer.send_later(("DEL", self._keys.session(session_id)))

    def release_session(self, session_id: str) -> None:
        self._forget(session_id)
        self._writer.send_later(scripts.ADOPT.call([self._keys.session(session_id)], self._board.runner, "", ""))

    def _forget(self, session_id: str) -> None:
        self._sessions.discard(session_id)
        self._board.forget_if_idle(session_id)

    async def find_session(self, session_id: str) -> SessionRecord | None:
        writer = self._writer
        await writer.flush()
        found = await writer.call(writer.redis.hgetall(self._keys.session(session_id)))
        if not found:
            return None
        text = {key.decode(): value.decode() for key, value in found.items()}
        return SessionRecord(
            replica=text["replica"],
            owner=text["owner"] if text.get("authenticated") == "1" else None,
            holder=text.get("holder", ""),
            protocol_version=text.get("version"),
            client=text.get("client"),
        )

    async def adopt_session(self, session_id: str, *, wait: float) -> SessionRecord | None:
        writer, key = self._writer, self._keys.session(session_id)
        give_up = anyio.current_time() + wait
        asked = False
        while (record := await self.find_session(session_id)) is not None:
            holder = record.holder
            if (
                holder
                and holder != self._board.runner
                and await writer.call(writer.redis.exists(self._keys.runner(holder)))
            ):
                if anyio.current_time() >= give_up:
                    raise SessionBusy(f"session {session_id} is held by a replica that is alive ({record.replica})")
                if not asked:
                    command = ("XADD", self._keys.inbox(record.replica), "*", "session", session_id, "release", "1")
                    await writer.send([command])
                    asked = True
                await anyio.sleep(ADOPT_POLL)
                continue
            adopt = scripts.ADOPT.call([key], holder, self._board.runner, self.replica)
            if (await writer.send([adopt, ("PEXPIRE", key, writer.open_ttl)]))[0]:
                self._sessions.add(session_id)
                return replace(record, replica=self.replica, holder=self._board.runner)
        return None

    async def wait_for_session_events(self, partition: str, after: int, within: float) -> int:
        writer = self._writer
        with anyio.move_on_after(within + 1):
            block = max(1, round(within * 1000))
            key = self._keys.events(partition)
            found = await writer.call(writer.redis.xread({key: f"{after}-0"}, block=block), blocking=True)
            for _, entries in found or []:
                after = max(after, *(int(entry_id.split(b"-")[0]) for entry_id, _ in entries))
        return after

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

    async def serve_relayed(
        self, deliver: Callable[[str, Notification], Awaitable[None]], release: Callable[[str], Awaitable[None]]
    ) -> None:
        writer = self._writer
        inbox = self._keys.inbox(self.replica)
        # From the inbox's top as it is now: what was relayed to a replica of this name before
        # this process started was for sessions that died with that replica.
        top = await writer.call(writer.redis.xrevrange(inbox, count=1))
        last = top[0][0].decode() if top else "0-0"
        renewed = time.monotonic()
        while True:
            try:
                found: Any = await writer.redis.xread({inbox: last}, block=RELAY_BLOCK_MS)
            except (RedisError, OSError) as exc:
                logger.warning("Redis store: relay inbox unreadable (%s); retrying", exc)
                await anyio.sleep(1)
                continue
            for _, entries in found or []:
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    text = {key.decode(): value.decode() for key, value in fields.items()}
                    if "release" in text:
                        await release(text["session"])
                        continue
                    notification = Notification(text["job"], int(text["index"]), int(text["count"]), text["caller"])
                    await deliver(text["session"], notification)
            # The live sessions' records expire unless renewed: a replica that crashed leaves none for long.
            if time.monotonic() - renewed > writer.open_ttl / 4000:
                renewed = time.monotonic()
                writer.send_later(*[("PEXPIRE", self._keys.session(s), writer.open_ttl) for s in self._sessions])
