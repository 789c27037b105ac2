"""How the Redis store sends its batches of commands: pipelined, each reply read back in order.

redis-py's pipeline spends tens of microseconds of Python on every command (encoding each
argument, a timeout and a response callback per reply), and a tool call sends about eight:
that was most of what the Redis store cost per call. On a single Redis the store sends its
batches over a connection of its own instead (`RespWire`): each batch packed by hiredis into
one buffer and written at once, without waiting for the batches before it to be answered;
an asyncio protocol feeds what arrives to hiredis's parser and hands each batch its replies
in the order the batches were written, which is the order Redis answers them. A batch whose
caller was cancelled keeps its place: its replies are read and dropped, and the connection
stays. Redis Cluster needs each command routed to its slot's master, which redis-py's
cluster pipeline does (`PipelineWire`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import InvalidResponse, ResponseError
from typing_extensions import override

__all__ = ["Client", "Command", "PipelineWire", "RespWire", "Wire", "pack"]

Client = aioredis.Redis | RedisCluster
"""redis-py's client: the store's calls that want an answer now, its pub/sub, and a cluster's routing."""
Command = tuple[str | bytes | int | float, ...]


class Wire(Protocol):
    """Sends commands in one round trip (or one per master, on a cluster)."""

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        """Their replies, in order; a command Redis refused has its `ResponseError` in its place. A lost
        connection raises `ConnectionError` (an `OSError`), and the next call connects again."""
        ...

    async def aclose(self) -> None: ...


def pack(commands: Sequence[Command]) -> bytes:
    """The commands in RESP, as Redis reads them: an array of bulk strings each (hiredis packs them in C)."""
    # hiredis's stub types the command as a 1-tuple (Tuple[X] for Tuple[X, ...]); it takes any length.
    return b"".join([hiredis.pack_command(command) for command in commands])  # type: ignore[arg-type]


class _Replies(asyncio.Protocol):
    """The connection's reading side: hiredis parses what arrives and hands each batch its replies, in the
    order the batches were written (Redis answers a connection's commands in order)."""

    transport: asyncio.Transport  # set by `connection_made`, before `create_connection` returns the protocol

    def __init__(self) -> None:
        self.lost: BaseException | None = None
        self._parser = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self._waiting: deque[tuple[int, list[Any], asyncio.Future[list[Any]]]] = deque()

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an `asyncio.Transport` subclass (uvloop's is its own class).
        self.transport = cast(asyncio.Transport, transport)

    def send(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """Write the batch now (so batches reach Redis in the order they were sent); its replies resolve the future."""
        if self.lost is not None:
            raise self.lost
        replies: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((len(commands), [], replies))
        self.transport.write(pack(commands))
        return replies

    @override
    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            while self._waiting:
                wanted, replies, future = self._waiting[0]
                while len(replies) < wanted and (reply := self._parser.gets()) is not False:
                    replies.append(reply)
                if len(replies) < wanted:
                    return
                self._waiting.popleft()
                if not future.done():  # a cancelled batch's replies are read, and dropped
                    future.set_result(replies)
        except InvalidResponse as exc:  # what follows on this connection cannot be trusted
            self._fail(exc)
            self.transport.abort()

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"Redis closed the connection{f': {exc}' if exc else ''}"))

    def close(self) -> None:
        self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        while self._waiting:
            *_, future = self._waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)


class RespWire:
    """One connection to a single Redis, its batches pipelined: a batch does not wait for the one before."""

    def __init__(self, host: str, port: int, *, db: int = 0, username: str = "", password: str = "") -> None:
        self._host, self._port = host, port
        self._hello: list[Command] = []
        if password:
            self._hello.append(("AUTH", username, password) if username else ("AUTH", password))
        if db:
            self._hello.append(("SELECT", db))
        self._replies: _Replies | None = None
        self._connecting = asyncio.Lock()

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
        replies = self._replies
        if replies is None or replies.lost is not None:
            replies = await self._connected()
        return await replies.send(commands)

    async def _connected(self) -> _Replies:
        async with self._connecting:
            if self._replies is not None and self._replies.lost is None:
                return self._replies  # another batch connected meanwhile
            self._drop()
            try:
                _, replies = await asyncio.get_running_loop().create_connection(_Replies, self._host, self._port)
            except OSError as exc:
                raise ConnectionError(f"cannot connect to Redis at {self._host}:{self._port}: {exc}") from exc
            try:
                for reply in await replies.send(self._hello) if self._hello else []:
                    if isinstance(reply, ResponseError):
                        raise reply
            except BaseException:
                replies.close()
                raise
            self._replies = replies
            return replies

    def _drop(self) -> None:
        replies, self._replies = self._replies, None
        if replies is not None:
            replies.close()

    async def aclose(self) -> None:
        self._drop()


class PipelineWire:
    """redis-py's pipeline on the store's client: on a cluster, it sends each master its commands."""

    def __init__(self, client: Client) -> None:
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
