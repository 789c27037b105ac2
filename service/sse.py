"""Server-sent events, framed one way for `/mcp` and `/jobs/{id}/events` alike.

The framing is the SDK's (`sse_starlette`'s): CRLF line endings, `: ping` comments every
`SERVICE_SSE_PING_INTERVAL` seconds while a stream is idle, and the same headers. The MCP
transports write it straight to ASGI `send`, without a response object per stream: the
SDK's `EventSourceResponse` runs a task group of four tasks (the stream, a ping timer, a
disconnect listener and an exit-signal listener) plus a writer task and a memory-stream
hand-off per message, and one coroutine that reads the stream's queue and calls `send`
does the same job (`docs/performance.md` has the figures). The REST route yields the
same frames through a `StreamingResponse`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.types import Send

__all__ = ["BATCH_LIMIT", "HEADERS", "PING", "frame", "next_message", "start", "take_ready", "write"]

# Proxies close connections that stay silent: a comment line every so often keeps a stream
# open while a job waits between notifications.
PING: Final = b": ping\r\n\r\n"
# Messages that are already waiting go out in one write (one syscall, one pass through the
# ASGI middleware), up to this many.
BATCH_LIMIT: Final = 64

HEADERS: Final = {
    "content-type": "text/event-stream; charset=utf-8",
    "x-accel-buffering": "no",  # nginx: do not buffer the stream
    "cache-control": "no-cache, no-transform",
    "connection": "keep-alive",
}
_RAW_HEADERS: Final = [(name.encode(), value.encode()) for name, value in HEADERS.items()]

T = TypeVar("T")


def frame(data: str, *, event_id: str | None = None, event: str | None = "message", retry: int | None = None) -> bytes:
    """One SSE event; `data` may span lines (each becomes its own `data:` field)."""
    parts = []
    if event_id:
        parts.append(f"id: {event_id}\r\n")
    if event:
        parts.append(f"event: {event}\r\n")
    if "\n" in data or "\r" in data:
        parts.extend(f"data: {line}\r\n" for line in data.splitlines() or [""])
    else:
        parts.append(f"data: {data}\r\n")
    if retry is not None:
        parts.append(f"retry: {retry}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode()


async def start(send: Send, headers: Sequence[tuple[bytes, bytes]] = (), first: bytes = b"") -> None:
    """Start an SSE response on `send`: its headers (the common ones, then `headers`), then `first` if any."""
    await send({"type": "http.response.start", "status": 200, "headers": [*_RAW_HEADERS, *headers]})
    if first:
        await write(send, first)


async def write(send: Send, body: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


def take_ready(queue: MemoryObjectReceiveStream[T], batch: list[T]) -> bool:
    """Add the messages already waiting to `batch`, to write them at once; False if the stream has closed."""
    while len(batch) < BATCH_LIMIT:
        try:
            batch.append(queue.receive_nowait())
        except anyio.WouldBlock:
            break
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return False
    return True


async def next_message(queue: MemoryObjectReceiveStream[T], send: Send, *, ping_interval: float) -> T:
    """The stream's next message, pinging the client while there is none.

    Raises `anyio.EndOfStream` or `anyio.ClosedResourceError` once the stream is closed.
    """
    while True:
        try:
            return queue.receive_nowait()  # the common case: no timer, no cancel scope
        except anyio.WouldBlock:
            pass
        with anyio.move_on_after(ping_interval):
            return await queue.receive()
        await write(send, PING)
