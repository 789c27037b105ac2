"""The service with each request handled in its own POST's task: what an SDK entry point for that would buy.

A measurement, not a way to run the service (`bench.run` runs it at 1 session next to the
others; `docs/performance.md` has the figures). The SDK's dispatcher takes requests only
from its read stream: a task of its own reads each one (`JSONRPCDispatcher.run`) and
spawns another task to handle it (`_spawn`), so every call costs the loop a hand-off
to the reader, a task created, and a switch to it. There is no public way around that.
Here the transport's send into that stream runs the dispatcher's own request handler
(`_handle_request`: the middleware chain, validation, the tool, the answer and its error
mapping, unchanged) in the sending task instead, through the dispatcher's private members.

What it leaves out, and an upstream API would have to provide: the call's messages are
written after its handler returns (the benchmark's calls send one notification and
return at once; a long call's notifications would wait), and such a handler is not
cancelled with its session.

    uv run python -m bench.inline_dispatch     # the service's settings, from SERVICE_* variables
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.shared import jsonrpc_dispatcher
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest
from typing_extensions import override

from service import cli
from service.mcp import manager
from service.mcp.fast_transport import FastTransport

OnRequest = Callable[[Any, str, Mapping[str, Any] | None], Awaitable[dict[str, Any]]]
Handler = tuple[jsonrpc_dispatcher.JSONRPCDispatcher[Any], OnRequest]


def record_handlers(handlers: dict[int, Handler]) -> None:
    """Make each dispatcher leave itself and its request handler in `handlers`, keyed by its read stream."""
    original = jsonrpc_dispatcher.JSONRPCDispatcher.run

    async def run(
        self: jsonrpc_dispatcher.JSONRPCDispatcher[Any], on_request: OnRequest, *args: Any, **kwargs: Any
    ) -> None:
        key = id(self._read_stream)
        handlers[key] = (self, on_request)
        try:
            await original(self, on_request, *args, **kwargs)
        finally:
            handlers.pop(key, None)

    jsonrpc_dispatcher.JSONRPCDispatcher.run = run  # type: ignore[method-assign]


async def handle_inline(handler: Handler, request: JSONRPCRequest, metadata: Any) -> None:
    """What `_dispatch_request` and the task it spawns do, in the caller's task."""
    dispatcher, on_request = handler
    context = jsonrpc_dispatcher._JSONRPCDispatchContext(
        transport=dispatcher._transport_builder(metadata),
        _dispatcher=dispatcher,
        _request_id=request.id,
        message_metadata=metadata,
        _progress_token=jsonrpc_dispatcher.progress_token_from_params(request.params),
    )
    scope = anyio.CancelScope()
    in_flight = jsonrpc_dispatcher._InFlight(scope=scope, dctx=context)
    dispatcher._in_flight[coerce_request_id(request.id)] = in_flight
    await dispatcher._handle_request(request, context, scope, on_request)


class InlineWriter:
    """The transport's read-stream writer: requests other than `initialize` are handled on the spot."""

    def __init__(self, inner: Any, read_stream: ReadStream[Any], handlers: dict[int, Handler]) -> None:
        self._inner = inner
        self._key = id(read_stream)
        self._handlers = handlers

    async def send(self, item: SessionMessage | Exception) -> None:
        handler = self._handlers.get(self._key)
        if (
            handler is not None
            and isinstance(item, SessionMessage)
            and isinstance(item.message, JSONRPCRequest)
            and item.message.method != "initialize"
        ):
            await handle_inline(handler, item.message, item.metadata)
        else:
            await self._inner.send(item)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def inline_transport(handlers: dict[int, Handler]) -> type[FastTransport]:
    class InlineDispatchTransport(FastTransport):
        @override
        @asynccontextmanager
        async def connect(
            self,
        ) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
            async with super().connect() as (read_stream, write_stream):
                self._read_stream_writer = InlineWriter(self._read_stream_writer, read_stream, handlers)  # type: ignore[assignment]
                yield read_stream, write_stream

    return InlineDispatchTransport


def main() -> None:
    handlers: dict[int, Handler] = {}
    record_handlers(handlers)
    manager.FastTransport = inline_transport(handlers)  # type: ignore[attr-defined]  # what SessionManager builds
    cli.main()


if __name__ == "__main__":
    main()
