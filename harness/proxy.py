"""A TCP proxy on 127.0.0.1 that can drop every connection through it at once: a network fault on demand."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import SocketStream, TaskGroup


@dataclass(eq=False)
class _Link:
    client: SocketStream
    upstream: SocketStream
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    keep_upstream: bool = False
    carried_call: bool = False
    """The client sent a `tools/call` request through it."""


CALL = b'"tools/call"'
"""The method of a `tools/call` request, as it appears in the request's JSON body."""


class CuttingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        """How many `cut`s found a connection open to drop."""
        self.refuse = False
        """While True, new connections are closed at once (the network is still down)."""
        self.calls_dropped: list[float] = []
        """When (`time.time()`) a client closed a connection that had carried a `tools/call` (not cut here)."""
        self._links: set[_Link] = set()
        self._stale: list[SocketStream] = []
        self._task_group: TaskGroup | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def cut(self, *, server_notices: bool = True) -> None:
        """Drop every open connection. With `server_notices=False` the server's side is left open and
        silent, as when a client vanishes without a FIN: the server still thinks it is connected."""
        if self._links:
            self.cuts += 1
        for link in list(self._links):
            self._links.discard(link)
            link.keep_upstream = not server_notices
            link.scope.cancel()

    async def _serve(self, client: SocketStream) -> None:
        async with client:
            if self.refuse:
                return
            try:
                upstream = await anyio.connect_tcp("127.0.0.1", self.target_port)
            except OSError:
                return
            link = _Link(client, upstream)
            self._links.add(link)
            with link.scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._from_client, link, tg)
                    tg.start_soon(_pump, upstream, client, tg)
            self._links.discard(link)
            if link.keep_upstream:
                self._stale.append(upstream)
            else:
                await upstream.aclose()

    async def _from_client(self, link: _Link, tg: TaskGroup) -> None:
        """The client's bytes upstream, noting a `tools/call` among them and the client dropping the connection."""
        tail = b""
        try:
            while True:
                try:
                    chunk = await link.client.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    # The client closed or reset its side (a `cut` here cancels this task instead).
                    if link.carried_call:
                        self.calls_dropped.append(time.time())
                    break
                link.carried_call = link.carried_call or CALL in tail + chunk
                tail = chunk[-len(CALL) :]
                await link.upstream.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        tg.cancel_scope.cancel()


async def _pump(source: SocketStream, sink: SocketStream, tg: TaskGroup) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    tg.cancel_scope.cancel()


@asynccontextmanager
async def cutting_proxy(target_port: int) -> AsyncIterator[CuttingProxy]:
    proxy = CuttingProxy(target_port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    proxy.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy._serve)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()
            for stream in proxy._stale:
                await stream.aclose()
