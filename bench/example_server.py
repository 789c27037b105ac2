"""A stand-in for the SDK's "simple streamable HTTP server" example, written for the benchmark.

Behaviour matches the example (python-sdk `examples/servers/simple-streamablehttp`):

- a low-level `mcp.server.Server` with one tool, `start-notification-stream`
  (`interval`, `count`, `caller`), which sends `count` log notifications on the call's
  own stream, sleeps `interval` seconds between two of them, and answers with a text
  result. The SDK's example then also sends a `notifications/resources/updated` to the
  standalone stream (with none open, it only lands in the event store); that costs about
  as much as one more notification, work the service does not do, so it is left out
  unless `--resource-updated` is given;
- a `StreamableHTTPSessionManager` with an in-memory event store of the example's design:
  uuid4 event ids, one bounded deque (100 events) per stream id holding the message
  objects, an id index, replay by scanning the stream's deque (stream ids are not scoped to
  a session, exactly like the example's store);
- DNS-rebinding protection for loopback, as `Server.streamable_http_app()` enables it for a
  127.0.0.1 host, and the CORS wrapper the example adds;
- Starlette, with a lifespan that enters `manager.run()`, under uvicorn (uvloop, httptools,
  access log off).

    uv run python -m bench.example_server --port 3000 [--json-response] [--resource-updated] [--floor]

`--floor` is not the example: it is the least work the SDK's session manager and low-level
server do for a tool call, a reference for servers built on them. Answers in JSON (the
call's notification has no stream to go to and is dropped), no event store, and the
cyclic collector tuned as the service tunes it (`service.cli`).
"""

from __future__ import annotations

import argparse
import gc
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import anyio
import uvicorn
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    JSONRPCMessage,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
)
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp
from typing_extensions import override

TOOL_NAME = "start-notification-stream"
EVENTS_PER_STREAM = 100


@dataclass(slots=True)
class _Stored:
    event_id: EventId
    stream_id: StreamId
    message: JSONRPCMessage | None


class BoundedMemoryEventStore(EventStore):
    """The example's store: the newest `per_stream` events of each stream id, kept as objects."""

    def __init__(self, per_stream: int = EVENTS_PER_STREAM) -> None:
        self._per_stream = per_stream
        self._by_stream: dict[StreamId, deque[_Stored]] = {}
        self._by_id: dict[EventId, _Stored] = {}

    @override
    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        kept = self._by_stream.get(stream_id)
        if kept is None:
            kept = self._by_stream[stream_id] = deque(maxlen=self._per_stream)
        if len(kept) == self._per_stream:
            # The deque is about to push its oldest entry out: forget that id too.
            self._by_id.pop(kept[0].event_id, None)
        entry = _Stored(str(uuid4()), stream_id, message)
        kept.append(entry)
        self._by_id[entry.event_id] = entry
        return entry.event_id

    @override
    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        anchor = self._by_id.get(last_event_id)
        if anchor is None:
            return None
        passed = False
        for entry in self._by_stream.get(anchor.stream_id, ()):
            if passed:
                if entry.message is not None:  # priming events carry nothing to resend
                    await send_callback(EventMessage(entry.message, entry.event_id))
            elif entry.event_id == last_event_id:
                passed = True
        return anchor.stream_id


TOOL = Tool(
    name=TOOL_NAME,
    description="Send `count` log notifications, `interval` seconds apart, on this call's stream",
    input_schema={
        "type": "object",
        "required": ["interval", "count", "caller"],
        "properties": {
            "interval": {"type": "number", "description": "seconds between two notifications"},
            "count": {"type": "number", "description": "how many notifications to send"},
            "caller": {"type": "string", "description": "named in every notification"},
        },
    },
)


async def list_tools(ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None) -> ListToolsResult:
    return ListToolsResult(tools=[TOOL])


def make_call_tool(
    *, resource_updated: bool
) -> Callable[[ServerRequestContext[Any], CallToolRequestParams], Awaitable[CallToolResult]]:
    async def call_tool(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
        args = params.arguments or {}
        interval = args.get("interval", 1.0)
        count = args.get("count", 5)
        caller = args.get("caller", "unknown")
        for n in range(1, count + 1):
            await ctx.session.send_log_message(
                level="info",
                data=f"[{n}/{count}] notification for {caller!r}; resume with Last-Event-ID after a disconnect",
                logger="notification_stream",
                related_request_id=ctx.request_id,
            )
            if n < count:
                await anyio.sleep(interval)
        if resource_updated:
            # Goes to the standalone GET stream; with none open, it is only stored.
            await ctx.session.send_resource_updated(uri="http:///test_resource")
        text = f"Sent {count} notifications with {interval}s interval for {caller}"
        return CallToolResult(content=[TextContent(type="text", text=text)])

    return call_tool


def build_app(*, json_response: bool = False, resource_updated: bool = False, event_store: bool = True) -> ASGIApp:
    server: Server[Any] = Server(
        "mcp-streamable-http-demo",
        on_list_tools=list_tools,
        on_call_tool=make_call_tool(resource_updated=resource_updated),
    )
    manager = StreamableHTTPSessionManager(
        server,
        event_store=BoundedMemoryEventStore() if event_store else None,
        json_response=json_response,
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        ),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    starlette_app = Starlette(
        debug=True,
        routes=[Route("/mcp", StreamableHTTPASGIApp(manager), methods=["GET", "POST", "DELETE"])],
        lifespan=lifespan,
    )
    return CORSMiddleware(
        starlette_app,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "DELETE"],
        expose_headers=["Mcp-Session-Id"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--json-response", action="store_true", help="one JSON body per POST instead of SSE")
    parser.add_argument("--resource-updated", action="store_true", help="end each call as the SDK's example does")
    parser.add_argument("--floor", action="store_true", help="the SDK's least work per call (see above)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app(
        json_response=args.json_response or args.floor,
        resource_updated=args.resource_updated,
        event_store=not args.floor,
    )
    if args.floor:
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
    serve(app, port=args.port, log_level=args.log_level)


def serve(app: ASGIApp, *, port: int, log_level: str) -> None:
    """uvicorn as the Python peers run under it: uvloop, httptools, no access log."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=log_level.lower(),
    )


if __name__ == "__main__":
    main()
