"""The fast transport over `ResumableTransport`: what the SDK does per message, done with fewer tasks.

Switched off by `SERVICE_MCP_FAST_TRANSPORT=false`, which leaves the SDK's own writer and router
in place (resumption stays correct either way): after an SDK upgrade, turn it off first.
It replaces two pieces of `StreamableHTTPServerTransport`, and must keep in step with them:

1. The POST writer. A request answered over SSE is written by one coroutine straight to
   ASGI `send` (`service.sse`), batching what is already queued and sending the JSON the
   store wrote. The SDK's `_handle_post_request` answers with an `EventSourceResponse`:
   a task group of four tasks plus a writer task per stream, most of the SDK's own cost
   per call and about a third of a session's memory (`docs/performance.md`). Kept in
   step with: the checks `_handle_post_request` makes before it dispatches (accept and
   content type, JSON, session and protocol-version headers, the priming event). Every
   request it does not take (`initialize`, notifications, responses, errors, JSON mode)
   goes down the SDK's path, checks and all.
2. The router. What the session sends is stored and queued for its stream in the sending
   task (`OutboundRouter`), instead of crossing a zero-buffer stream to the router task
   that the SDK's `connect` runs per session: a task switch less per outbound message and
   a task less per session. Kept in step with: the routing rules of `connect`'s
   `message_router` and `_terminate_unanswered_request`.
3. Notifications as text. A request it takes carries a `RequestStream` in its
   `request.state` (`RequestStream.of`): a tool's sink hands it a notification already
   serialized, which is stored and queued as the router would, without the SDK's chain of
   message objects, each built, validated and dumped (`service.tools.sinks`). Kept in step
   with: the session's log-level gate (`allowed_log_levels`), which the sink applies itself.

Upstream, (1) would be an SSE writer without a response object per stream, (2) a `connect`
that routes in the sender's task, (3) a notify that takes serialized params;
`bench.inline_dispatch` measures what a fourth change, a dispatcher entry point that
handles a request in the caller's task, would add.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, ClassVar, Self

import anyio
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    REQUEST_CANCELLED,
    EventMessage,
    SSEEvent,
    check_accept_headers,
)
from mcp.shared._context_streams import create_context_streams
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    INTERNAL_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCRequest,
    RequestId,
    jsonrpc_message_adapter,
)
from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from typing_extensions import override

from service import sse
from service.mcp.event_store import json_of
from service.mcp.transport import FINAL, ResumableTransport

__all__ = ["FastTransport", "OutboundRouter", "RequestStream"]

logger = logging.getLogger(__name__)


class FastTransport(ResumableTransport):
    """`ResumableTransport` with its own POST writer and in-task routing."""

    # The router (2)

    @override
    @asynccontextmanager
    async def connect(
        self,
    ) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
        """The SDK's `connect`, minus its router task: the server's write stream routes each message itself."""
        if self._idle_timeout is not None:
            self.idle_scope = anyio.CancelScope()
        read_stream_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
        self._read_stream_writer, self._read_stream = read_stream_writer, read_stream
        router = OutboundRouter(self)
        try:
            yield read_stream, router
        finally:
            await router.aclose()
            for stream_id in list(self._request_streams):
                await self._clean_up_memory_streams(stream_id)
            self._request_streams.clear()
            await read_stream_writer.aclose()
            await read_stream.aclose()

    @override
    async def push(self, message: SessionMessage) -> None:
        if self.is_terminated:
            raise anyio.ClosedResourceError
        await self.route(message)

    @override
    async def _terminate_unanswered_request(self, request_id: RequestId) -> None:
        """The SDK's `REQUEST_CANCELLED` answer, routed like every other outbound message."""
        error = ErrorData(code=REQUEST_CANCELLED, message="Request cancelled")
        await self.route(SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=error)))

    async def route(self, session_message: SessionMessage) -> None:
        """Store an outbound message and queue it for the stream it belongs to, as the SDK's router does.

        A response goes to its request's stream, a message related to a request to that
        request's stream (dropped in JSON mode, where it has no wire form), anything else
        to the GET stream. With no connection on the stream, it waits in the store.
        """
        message = session_message.message
        metadata = session_message.metadata
        if isinstance(message, FINAL) and message.id is not None:
            stream_id = str(message.id)
        elif isinstance(metadata, ServerMessageMetadata) and metadata.related_request_id is not None:
            if self.is_json_response_enabled:
                return
            stream_id = str(metadata.related_request_id)
        else:
            stream_id = GET_STREAM_KEY
        await self.route_to(stream_id, message)

    async def route_to(self, stream_id: str, message: JSONRPCMessage, text: str | None = None) -> None:
        """Store a message for `stream_id` and queue it for the connection serving that stream, if any."""
        if stream_id in self.handed_over:
            return
        stored = await self._session_store.store(stream_id, message, text)
        target = self._request_streams.get(stream_id)
        if target is None:
            return
        try:
            try:
                target[0].send_nowait(stored)
            except anyio.WouldBlock:
                await target[0].send(stored)  # the reader is behind: wait for it, as the SDK's router does
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("stream %s closed while a message was routed to it", stream_id)

    @override
    def _create_event_data(self, event_message: EventMessage) -> SSEEvent:
        """The SDK's SSE event for a message (the SDK's writer, for `initialize`), with the JSON the store wrote."""
        event: SSEEvent = {"event": "message", "data": json_of(event_message)}
        if event_message.event_id:
            event["id"] = event_message.event_id
        return event

    # The POST writer (1)

    @override
    async def _serve_post(self, scope: Scope, request: Request, receive: Receive, send: Send, body: Any) -> None:
        message = self._streamed_request(request, body)
        if message is None:
            await super()._serve_post(scope, request, receive, send, body)
        elif await self._validate_request_headers(request, send):
            await self._answer_over_sse(message, request, send)

    def _streamed_request(self, request: Request, body: Any) -> JSONRPCRequest | None:
        """The request, if it is a well-formed call on an established session that wants SSE."""
        if body is None or self.is_json_response_enabled or not all(check_accept_headers(request)):
            return None
        if not self._check_content_type(request):
            return None
        try:
            message = jsonrpc_message_adapter.validate_python(body, by_name=False)
        except ValueError:  # pydantic's ValidationError included
            return None
        if not isinstance(message, JSONRPCRequest) or message.method == "initialize":
            return None
        return message

    async def _answer_over_sse(self, message: JSONRPCRequest, request: Request, send: Send) -> None:
        """Dispatch the request and stream what the session routes to it, up to its response.

        A resuming connection may take the stream over: it closes the queue, and this ends.
        """
        assert self._read_stream_writer is not None  # connect() has run: the manager admitted the session
        stream_id = str(message.id)
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER, DEFAULT_NEGOTIATED_VERSION)
        try:
            priming = await self._mint_priming_event(stream_id, version)
        except Exception:
            logger.exception("could not store the priming event of request %s", stream_id)
            response = self._create_error_response(
                "Error handling POST request", HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR
            )
            await response(request.scope, request.receive, send)
            return
        RequestStream(self, stream_id).attach(request)
        with self._own_stream(stream_id) as queue:
            await self._start_stream(send, priming)
            try:
                await self._read_stream_writer.send(self._create_session_message(message, request, stream_id, version))
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                logger.debug("session closed while request %s was dispatched", stream_id)
                await sse.write(send, b"", more=False)
                return
            await self._write_live(queue, send, after=0)


@dataclass(frozen=True, slots=True)
class RequestStream:
    """A request's own stream, for messages its handler has serialized already (`service.tools.sinks`)."""

    transport: FastTransport
    stream_id: str

    STATE_KEY: ClassVar[str] = "mcp_request_stream"
    """The `request.state` attribute that holds it."""

    @classmethod
    def of(cls, request: object) -> RequestStream | None:
        """The stream of a request the fast transport serves (its handler's `ctx.request`); None for any other."""
        stream = getattr(request.state, cls.STATE_KEY, None) if isinstance(request, Request) else None
        return stream if isinstance(stream, cls) else None

    def hand_over(self) -> None:
        """Another process answers this request now (`ResumableTransport.hand_over`)."""
        self.transport.hand_over(self.stream_id)

    def attach(self, request: Request) -> None:
        """Leave this stream in `request.state`, where the request's handler finds it (`of`)."""
        setattr(request.state, self.STATE_KEY, self)

    async def send(self, message: JSONRPCMessage, text: str) -> None:
        """Send `message`, whose JSON is `text`, as the router sends a message related to this request.

        Once the session has ended it is dropped, as the SDK drops a notification sent then.
        """
        if self.transport.is_terminated:
            logger.debug("session ended: a message for stream %s dropped", self.stream_id)
            return
        await self.transport.route_to(self.stream_id, message, text)


class OutboundRouter:
    """The write stream the session's server gets: `send` routes the message in the sender's task."""

    def __init__(self, transport: FastTransport) -> None:
        self._transport = transport
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed or self._transport.is_terminated:
            raise anyio.ClosedResourceError
        await self._transport.route(item)

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
