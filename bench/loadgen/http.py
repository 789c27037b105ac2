"""HTTP/1.1 on one keep-alive connection, parsed by httptools: requests pre-encoded, SSE responses read in C."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

import httptools
from typing_extensions import override

SSE_SEPARATOR = b"\r\n\r\n"


class HttpError(Exception):
    pass


# SSE


class SseReader:
    """Splits an SSE body into events as it arrives; counts data events and keeps the newest ids."""

    __slots__ = ("_buf", "_eol", "_sep", "data_events", "ids", "last_data", "reached", "reached_at", "target")

    def __init__(self, *, keep_ids: int = 0, target: int = 0) -> None:
        self._buf = b""
        self._sep, self._eol = SSE_SEPARATOR, b"\r\n"
        """CRLF (the Python servers) until a body shows LF alone (Node's servers): then LF."""
        self.data_events = 0
        self.ids: deque[bytes] = deque(maxlen=keep_ids or 1)
        self.last_data = b""
        self.target = target
        """After this many data events, `reached` is set (0: never)."""
        self.reached: asyncio.Future[float] | None = None
        self.reached_at = 0.0

    def feed(self, chunk: bytes) -> None:
        data = self._buf + chunk if self._buf else chunk
        if self._eol == b"\r\n" and b"\n\n" in data and b"\r\n" not in data:
            self._sep, self._eol = b"\n\n", b"\n"
        find, sep, width = data.find, self._sep, len(self._sep)
        start = 0
        end = find(sep)
        while end >= 0:
            self._event(data[start:end])
            start = end + width
            end = find(sep, start)
        self._buf = data[start:] if start < len(data) else b""

    def _event(self, block: bytes) -> None:
        payload = b""
        for line in block.split(self._eol):
            if line.startswith(b"data:"):
                payload = line[5:].lstrip(b" ")
            elif line.startswith(b"id:"):
                self.ids.append(line[3:].strip())
        if payload:
            self.data_events += 1
            self.last_data = payload
            if self.data_events == self.target:
                self.reached_at = time.perf_counter()
                if self.reached is not None and not self.reached.done():
                    self.reached.set_result(self.reached_at)


# HTTP


@dataclass(eq=False)
class Exchange:
    """One request and its response; `head` resolves with the status line, `done` at the end of the body."""

    head: asyncio.Future[int]
    done: asyncio.Future[None]
    sse: SseReader | None
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)

    @property
    def json(self) -> Any:
        if self.sse is not None:
            return json.loads(self.sse.last_data) if self.sse.last_data else None
        return json.loads(self.body) if self.body else None


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, host_header: bytes) -> None:
        self.host_header = host_header
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._current: Exchange | None = None
        self._loop = asyncio.get_running_loop()
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: cls(f"{host}:{port}".encode()), host, port)
        return conn

    # asyncio.Protocol

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    @override
    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"bad response: {exc}"))
            self.close()

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection closed: {exc}"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._current is not None:
            self._current.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        ex = self._current
        if ex is None:
            return
        ex.status = self._parser.get_status_code()
        if ex.sse is not None and not ex.headers.get("content-type", "").startswith("text/event-stream"):
            ex.sse = None  # a plain body (an error, or JSON): keep it whole
        if not ex.head.done():
            ex.head.set_result(ex.status)

    def on_body(self, body: bytes) -> None:
        ex = self._current
        if ex is None:
            return
        if ex.sse is not None:
            ex.sse.feed(body)
        else:
            ex.body += body

    def on_message_complete(self) -> None:
        ex, self._current = self._current, None
        if ex is not None and not ex.done.done():
            ex.done.set_result(None)

    # API

    def send(
        self, method: bytes, path: bytes, headers: bytes = b"", body: bytes = b"", *, sse: SseReader | None = None
    ) -> Exchange:
        """Write a request; `headers` is pre-encoded `Name: value\\r\\n` lines."""
        if self._current is not None:
            raise RuntimeError("a request is already in flight on this connection")
        if self.closed or self._transport is None:
            raise ConnectionError("connection closed")
        ex = Exchange(self._loop.create_future(), self._loop.create_future(), sse)
        self._current = ex
        length = b"Content-Length: %d\r\n" % len(body) if body or method == b"POST" else b""
        self._transport.write(
            b"%s %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n%s" % (method, path, self.host_header, headers, length, body)
        )
        return ex

    async def request(
        self, method: bytes, path: bytes, headers: bytes = b"", body: bytes = b"", *, sse: SseReader | None = None
    ) -> Exchange:
        ex = self.send(method, path, headers, body, sse=sse)
        await ex.done
        return ex

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.close()
        self.closed = True

    def abandon(self) -> None:
        """Drop the response in flight (its stream stays open server-side until the close is seen) and close."""
        self._current = None
        self.close()

    def _fail(self, exc: Exception) -> None:
        ex, self._current = self._current, None
        if ex is None:
            return
        for fut in (ex.head, ex.done):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: the other one carries it to the caller
