"""How the Redis store sends its batches of commands: pipelined, each reply read back in order.

redis-py's pipeline spends tens of microseconds of Python on every command (encoding each
argument, a timeout and a response callback per reply), and a tool call sends about eight:
that was most of what the Redis store cost per call. On a single Redis the store sends its
batches over a connection of its own instead (`RespWire`): the batch packed into one buffer,
written at once, the replies parsed by hiredis. Redis Cluster needs each command routed to
its slot's master, which redis-py's cluster pipeline does (`PipelineWire`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc
import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import InvalidResponse, ResponseError

__all__ = ["Command", "PipelineWire", "RespWire", "Wire", "pack"]

Command = tuple[str | bytes | int | float, ...]

READ_SIZE = 65536


class Wire(Protocol):
    """Sends commands in one round trip (or one per master, on a cluster)."""

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        """Their replies, in order; a command Redis refused has its `ResponseError` in its place. A lost
        connection raises `ConnectionError` (an `OSError`), and the next call connects again."""
        ...

    async def aclose(self) -> None: ...


def pack(commands: Sequence[Command]) -> bytes:
    """The commands in RESP, as Redis reads them: an array of bulk strings each."""
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for arg in command:
            raw = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
    return b"".join(parts)


class RespWire:
    """One connection to a single Redis, used by one batch at a time."""

    def __init__(self, host: str, port: int, *, db: int = 0, username: str = "", password: str = "") -> None:
        self._host, self._port = host, port
        self._hello: list[Command] = []
        if password:
            self._hello.append(("AUTH", username, password) if username else ("AUTH", password))
        if db:
            self._hello.append(("SELECT", db))
        self._stream: anyio.abc.SocketStream | None = None
        self._parser = hiredis.Reader()
        self._lock = anyio.Lock()

    @classmethod
    def for_url(cls, url: str) -> RespWire | None:
        """A wire for a plain `redis://` URL; None for the others (TLS, a Unix socket), which redis-py serves."""
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            return None
        path = parts.path.strip("/")
        return cls(
            parts.hostname,
            parts.port or 6379,
            db=int(path) if path.isdigit() else 0,
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        async with self._lock:
            if self._stream is None:
                await self._connect()
            try:
                return await self._round_trip(commands)
            except BaseException:  # cancelled or broken halfway: what the connection holds next is unknown
                await self._drop()
                raise

    async def _connect(self) -> None:
        try:
            self._stream = await anyio.connect_tcp(self._host, self._port)
        except OSError as exc:
            raise ConnectionError(f"cannot connect to Redis at {self._host}:{self._port}: {exc}") from exc
        self._parser = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        if self._hello:
            try:
                replies = await self._round_trip(self._hello)
            except BaseException:
                await self._drop()
                raise
            refused = [reply for reply in replies if isinstance(reply, ResponseError)]
            if refused:
                await self._drop()
                raise refused[0]

    async def _round_trip(self, commands: Sequence[Command]) -> list[Any]:
        assert self._stream is not None
        try:
            await self._stream.send(pack(commands))
            replies: list[Any] = []
            while len(replies) < len(commands):
                reply = self._parser.gets()
                if reply is False:
                    self._parser.feed(await self._stream.receive(READ_SIZE))
                else:
                    replies.append(reply)
            return replies
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ConnectionError("Redis closed the connection") from exc

    async def _drop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def aclose(self) -> None:
        await self._drop()


class PipelineWire:
    """redis-py's pipeline on the store's client: on a cluster, it sends each master its commands."""

    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self._client = client

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        pipe = self._client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def aclose(self) -> None:
        """The client is the store's, which closes it."""
