"""Server-sent events written straight to ASGI `send`, without a response object per stream.

The SDK answers each POST and GET with an `sse_starlette.EventSourceResponse`: a task
group of four tasks (the stream, a ping timer, a disconnect listener and an exit-signal
listener) plus a writer task and a memory-stream hand-off per message. One coroutine that
reads the stream's queue and calls `send` does the same job; `docs/performance.md` has
the figures.
"""

from __future__ import annotations

from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, EventMessage, SSEEvent
from starlette.types import Send

# Proxies close connections that stay silent: a comment line every so often (the setting
# SERVICE_SSE_PING_INTERVAL) keeps a stream open while a job waits between notifications.
PING: Final = b": ping\r\n\r\n"
# Messages that are already waiting go out in one write (one syscall, one pass through the
# ASGI middleware), up to this many.
BATCH_LIMIT: Final = 64


# The headers the SDK's `EventSourceResponse` sends.
_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"x-accel-buffering", b"no"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
]


async def start(send: Send, session_id: str | None, priming: SSEEvent | None = None) -> None:
    """Start an SSE response: its headers, then the priming event if there is one.

    The priming event (the SDK's) carries only an id, and the retry interval, for the
    client to resume from should the connection drop before anything else is sent.
    """
    headers = _HEADERS if not session_id else [*_HEADERS, (MCP_SESSION_ID_HEADER.encode(), session_id.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if priming is not None:
        await write(send, frame("", event_id=priming["id"], event=None, retry=priming.get("retry")))


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


async def write(send: Send, body: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


def take_ready(queue: MemoryObjectReceiveStream[EventMessage], batch: list[EventMessage]) -> bool:
    """Add the messages already waiting to `batch`, to write them at once; False if the stream has closed."""
    while len(batch) < BATCH_LIMIT:
        try:
            batch.append(queue.receive_nowait())
        except anyio.WouldBlock:
            break
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return False
    return True


async def next_message(
    queue: MemoryObjectReceiveStream[EventMessage], send: Send, *, ping_interval: float
) -> EventMessage:
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
