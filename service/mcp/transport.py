"""The SDK's StreamableHTTP transport and session manager, with resumption made lossless.

Verified against mcp 2.3.x (pinned in pyproject.toml); `tests/mcp/test_resumption.py`
fails against the stock classes. What changes, and why:

1. Each session gets its own `SessionEventStore` (`SessionManager._admit_session`): the
   SDK's stream ids repeat across sessions and its store is never told the session.
2. Resuming (`GET` with `Last-Event-ID`) registers the live queue for the stream *before*
   reading the store, then drops from the queue what the store already returned. The SDK
   reads first and registers after, so an event stored in between is neither replayed nor
   delivered.
3. If the stream being resumed is still registered to an old connection that the server
   has not yet seen drop, the resuming connection takes it over (closes the old one and
   waits until it has let go). The SDK instead ends the resumed stream right after the
   replay, and the client never gets the result.
4. A resumed request stream ends after the response, like the original one.
5. A `Last-Event-ID` that is malformed, unknown, evicted or from another session gets a
   400 with a JSON-RPC error. The SDK answers an empty 200, and the result is lost.
6. A request POST, the GET stream, and a resumed stream are written by one coroutine
   straight to ASGI `send` (`service.mcp.sse`), batching what is already queued and
   reusing the JSON the store made (the GET stream adds a task that watches for the
   client's disconnect). The SDK's `EventSourceResponse` runs a task group of four tasks
   plus a writer task per stream: most of the SDK's own cost per call, and about a third
   of a session's memory (`docs/performance.md`). `initialize`, notifications, errors and
   JSON-response mode keep the SDK's path.
7. What the session sends is routed (stored, then queued for its stream) in the sending
   task (`OutboundRouter`), instead of crossing a zero-buffer stream to a router task the
   SDK runs per session: a task switch less per outbound message, a task less per session.
8. A request whose `id` is neither a string nor an integer (`1.5`, `true`, `null`) gets a
   400 with JSON-RPC `-32600`. The SDK validates it as a notification (whose model ignores
   unknown members) and answers 202: the client waits forever. The 2026-07-28 path already
   refuses it.

Writers release a stream registration only if it is still their own, so a connection
that is being replaced cannot tear down its replacement.

Upstream, (2)-(4) belong in `StreamableHTTPServerTransport._replay_events`, (1) in
`EventStore` itself (pass the session id to `store_event`/`replay_events_after`), (6)
and (8) in `_handle_post_request`, and (7) in `connect`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from uuid import uuid4

import anyio
import pydantic_core
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    LAST_EVENT_ID_HEADER,
    REQUEST_CANCELLED,
    REQUEST_STREAM_BUFFER_SIZE,
    EventMessage,
    SSEEvent,
    StreamableHTTPServerTransport,
    StreamId,
    check_accept_headers,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared._context_streams import create_context_streams
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    ErrorData,
    JSONRPCError,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    jsonrpc_message_adapter,
)
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from service.mcp import sse
from service.mcp.event_store import SessionEventStore, session_scope
from service.mcp.sessions import SessionRegistry
from service.stores.base import EventLog, StoredEvent

logger = logging.getLogger(__name__)

TAKE_OVER_TIMEOUT = 5.0
_FINAL = (JSONRPCResponse, JSONRPCError)  # the messages that end a request's stream


class ResumableTransport(StreamableHTTPServerTransport):
    def __init__(
        self, *, mcp_session_id: str, event_store: SessionEventStore, ping_interval: float, **options: Any
    ) -> None:
        super().__init__(mcp_session_id=mcp_session_id, event_store=event_store, **options)
        self._session_store = event_store
        self._ping_interval = ping_interval
        # Set when the connection currently serving a stream has let go of it.
        self._released: dict[StreamId, anyio.Event] = {}

    # The session's outbound messages, routed by their sender.

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
        if isinstance(message, _FINAL) and message.id is not None:
            stream_id = str(message.id)
        elif isinstance(metadata, ServerMessageMetadata) and metadata.related_request_id is not None:
            if self.is_json_response_enabled:
                return
            stream_id = str(metadata.related_request_id)
        else:
            stream_id = GET_STREAM_KEY
        event_id = await self._session_store.store_event(stream_id, message)
        target = self._request_streams.get(stream_id)
        if target is None:
            return
        event = EventMessage(message, event_id)
        try:
            try:
                target[0].send_nowait(event)
            except anyio.WouldBlock:
                await target[0].send(event)  # the reader is behind: wait for it, as the SDK's router does
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("stream %s closed while a message was routed to it", stream_id)

    # A POST's own stream: the SDK's writer, made to release only what is still its own.

    async def _run_sse_writer(
        self,
        request_id: RequestId,
        sse_stream_writer: MemoryObjectSendStream[SSEEvent],
        request_stream_reader: MemoryObjectReceiveStream[EventMessage],
        priming_event: SSEEvent | None,
    ) -> None:
        stream_id = str(request_id)
        registered = self._request_streams.get(stream_id)
        if registered is None or registered[1] is not request_stream_reader:
            sse_stream_writer.close()  # a resuming connection took the stream over before this one began
            return
        # The SDK's writer cleans up by id: a resuming connection waits for `released`
        # before it registers, so that cleanup cannot remove the replacement.
        released = self._released[stream_id] = anyio.Event()
        try:
            await super()._run_sse_writer(request_id, sse_stream_writer, request_stream_reader, priming_event)
        finally:
            self._release(stream_id, released)

    # POST: a request answered over SSE, written by this coroutine straight to `send`.

    async def _handle_post_request(self, scope: Scope, request: Request, receive: Receive, send: Send) -> None:
        try:
            body: Any = pydantic_core.from_json(await request.body())
        except ValueError:
            body = None  # the SDK's path answers the parse error
        if _has_invalid_id(body) and self._check_content_type(request):
            # The SDK reads a request whose id is neither a string nor an integer as a
            # notification and answers 202: the client would wait for its answer forever.
            response = self._create_error_response(
                f"Invalid Request: id must be a string or an integer, not {json.dumps(body['id'])[:64]}",
                HTTPStatus.BAD_REQUEST,
                INVALID_REQUEST,
            )
            await response(scope, receive, send)
            return
        message = self._streamed_request(request, body)
        if message is None:
            # Errors, `initialize`, notifications, responses and JSON mode: the SDK's own path.
            await super()._handle_post_request(scope, request, receive, send)
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

        Replaces the SDK's `EventSourceResponse` and writer task (see `service.mcp.sse`). A
        resuming connection may take the stream over: it closes the queue, and this ends.
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
        with self._own_stream(stream_id) as queue:
            await sse.start(send, self.mcp_session_id, priming)
            try:
                await self._read_stream_writer.send(self._create_session_message(message, request, stream_id, version))
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                logger.debug("session closed while request %s was dispatched", stream_id)
                await sse.write(send, b"", more=False)
                return
            await self._write_live(queue, send, after=0)

    @contextmanager
    def _own_stream(self, stream_id: StreamId) -> Iterator[MemoryObjectReceiveStream[EventMessage]]:
        """Register this connection as the one the session routes `stream_id` to, until it is done."""
        queue = self._request_streams[stream_id] = anyio.create_memory_object_stream[EventMessage](
            REQUEST_STREAM_BUFFER_SIZE
        )
        released = self._released[stream_id] = anyio.Event()
        try:
            yield queue[1]
        finally:
            if self._request_streams.get(stream_id) is queue:
                del self._request_streams[stream_id]
            queue[0].close()
            queue[1].close()
            self._release(stream_id, released)

    async def _write_live(
        self, queue: MemoryObjectReceiveStream[EventMessage], send: Send, *, after: int, until_response: bool = True
    ) -> None:
        """Write the stream's messages as they come (batching those already waiting), then end the response.

        A request's stream ends after its response; the GET stream when it is closed. Messages
        with an id up to `after` were already sent from the store and are skipped. If the
        stream is closed first (taken over, or the session ended), the response just ends.
        """
        try:
            is_open = True
            while is_open:
                batch = [await sse.next_message(queue, send, ping_interval=self._ping_interval)]
                is_open = sse.take_ready(queue, batch)
                frames = []
                for event in batch:
                    if after and event.event_id and int(event.event_id) <= after:
                        continue  # already replayed from the store
                    frames.append(sse.frame(self._session_store.json_of(event), event_id=event.event_id))
                    if until_response and isinstance(event.message, _FINAL):
                        await sse.write(send, b"".join(frames), more=False)
                        return
                if frames:
                    await sse.write(send, b"".join(frames))
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        logger.debug("stream closed")
        await sse.write(send, b"", more=False)

    def _create_event_data(self, event_message: EventMessage) -> SSEEvent:
        """The SDK's SSE event for a message, with the JSON the store already made."""
        event: SSEEvent = {"event": "message", "data": self._session_store.json_of(event_message)}
        if event_message.event_id:
            event["id"] = event_message.event_id
        return event

    # GET: the standalone stream, or a resumed one.

    async def _handle_get_request(self, request: Request, send: Send) -> None:
        last_event_id = request.headers.get(LAST_EVENT_ID_HEADER)
        if not last_event_id:
            await self._serve_standalone_stream(request, send, resume=None)
        else:
            await self._resume(last_event_id, request, send)

    async def _resume(self, last_event_id: str, request: Request, send: Send) -> None:
        # Accept and session checks first, as the SDK's GET handler does.
        if not await self._validate_get(request, send):
            return
        found = await self._session_store.locate(last_event_id)
        if found is None:
            response = self._create_error_response(
                f"Cannot resume: Last-Event-ID {last_event_id[:64]!r} is not an event of this session "
                "(unknown, expired, or never sent here)",
                HTTPStatus.BAD_REQUEST,
            )
            await response(request.scope, request.receive, send)
            return
        event_id, stream_id = found
        await self._take_over(stream_id)
        if stream_id == GET_STREAM_KEY:
            await self._serve_standalone_stream(request, send, resume=event_id)
        else:
            await self._resume_request_stream(stream_id, send, after=event_id)

    async def _resume_request_stream(self, stream_id: StreamId, send: Send, *, after: int) -> None:
        """Replay a request's stream from the store, then follow it live up to its response.

        The live queue is registered before the store is read, so every event lands in the
        replay, the queue, or both; the queue's copies of replayed events are skipped by id.
        """
        with self._own_stream(stream_id) as queue:
            await sse.start(send, self.mcp_session_id)
            after, answered = await self._replay(stream_id, send, after=after)
            if not answered:
                await self._write_live(queue, send, after=after)

    async def _replay(self, stream_id: StreamId, send: Send, *, after: int) -> tuple[int, bool]:
        """Send the stream's stored events after `after`, in one write.

        Returns the last id sent, and whether the response was among them (the HTTP
        response is then ended too).
        """
        frames = []
        for event in await self._session_store.events_after(stream_id, after):
            after = event.id
            if event.data is None:
                continue  # a priming event: a position, nothing to resend
            frames.append(sse.frame(event.data.decode(), event_id=str(event.id)))
            # Checked for each event: a client may reuse a finished request's id, and that
            # request's events then follow the response on the same stream.
            if stream_id != GET_STREAM_KEY and _is_response(event):
                await sse.write(send, b"".join(frames), more=False)
                return after, True
        if frames:
            await sse.write(send, b"".join(frames))
        return after, False

    async def _validate_get(self, request: Request, send: Send) -> bool:
        if not check_accept_headers(request)[1]:
            response = self._create_error_response(
                "Not Acceptable: Client must accept text/event-stream", HTTPStatus.NOT_ACCEPTABLE
            )
            await response(request.scope, request.receive, send)
            return False
        return await self._validate_request_headers(request, send)

    async def _take_over(self, stream_id: StreamId) -> None:
        """Close the connection still serving `stream_id`, if any, and wait until it has let go."""
        released = self._released.get(stream_id)
        if stream_id in self._request_streams or stream_id in self._sse_stream_writers:
            logger.debug("stream %s resumed while still open: closing the old connection", stream_id)
            self.close_sse_stream(stream_id)
        if released is not None:
            # A connection stuck writing to a dead socket may take a while to notice; don't wait forever.
            with anyio.move_on_after(TAKE_OVER_TIMEOUT):
                await released.wait()

    async def _serve_standalone_stream(self, request: Request, send: Send, *, resume: int | None) -> None:
        """Serve the session's GET stream: replay from the store what follows `resume`, then go live.

        As for request streams, the live queue is registered before the store is read. A
        fresh stream starts with a priming event and is served as a resumption from it, so
        that nothing routed while it was being set up falls through the gap either. The
        stream ends when the client goes, or when it is closed (`close_standalone_sse_stream`:
        a take-over, the session's end, or `SessionManager.close_streams` at shutdown).
        """
        stream_id = GET_STREAM_KEY
        priming = None
        if resume is None:
            if not await self._validate_get(request, send):
                return
            if stream_id in self._request_streams:
                response = self._create_error_response(
                    "Conflict: Only one SSE stream is allowed per session", HTTPStatus.CONFLICT
                )
                await response(request.scope, request.receive, send)
                return
            version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER, DEFAULT_NEGOTIATED_VERSION)
            priming = await self._mint_priming_event(stream_id, version)
            if priming is not None and priming["id"]:
                resume = int(priming["id"])
        with self._own_stream(stream_id) as queue:
            await sse.start(send, self.mcp_session_id, priming)
            # Writing to a client that has gone does not fail: its disconnect is what ends the stream.
            async with anyio.create_task_group() as watch:
                watch.start_soon(_cancel_on_disconnect, request.receive, watch.cancel_scope)
                after = 0
                if resume is not None:
                    after, _ = await self._replay(stream_id, send, after=resume)
                await self._write_live(queue, send, after=after, until_response=False)
                watch.cancel_scope.cancel()

    def _release(self, stream_id: StreamId, released: anyio.Event) -> None:
        released.set()
        if self._released.get(stream_id) is released:
            del self._released[stream_id]


class OutboundRouter:
    """The write stream the session's server gets: `send` routes the message in the sender's task."""

    def __init__(self, transport: ResumableTransport) -> None:
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


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _has_invalid_id(body: Any) -> bool:
    """A request (it has a method) whose `id` is there but neither a string nor an integer (MCP forbids null)."""
    if not isinstance(body, dict) or "method" not in body or "id" not in body:
        return False
    request_id = body["id"]
    return isinstance(request_id, bool) or not isinstance(request_id, str | int)


def _is_response(event: StoredEvent) -> bool:
    message = pydantic_core.from_json(event.data or b"{}")
    return isinstance(message, dict) and "method" not in message and ("result" in message or "error" in message)


class SessionManager(StreamableHTTPSessionManager):
    """Builds a `ResumableTransport` per session and tells the service when a session ends.

    Overrides the manager's private `_admit_session` and `_discard_session`: the SDK has no
    public hook for either.
    """

    def __init__(
        self,
        app: Server[Any],
        *,
        event_log: EventLog,
        sessions: SessionRegistry,
        ping_interval: float,
        **options: Any,
    ) -> None:
        super().__init__(app, event_store=None, **options)
        self._event_log = event_log
        self._ping_interval = ping_interval
        self._sessions = sessions
        # Our own record: on shutdown the SDK forgets its sessions before it discards them.
        self._open: set[str] = set()

    def close_streams(self) -> None:
        """End every open GET stream: at shutdown, so that clients resume elsewhere instead of holding it up."""
        for transport in self._server_instances.values():
            transport.close_standalone_sse_stream()

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        session_id = uuid4().hex
        transport = ResumableTransport(
            mcp_session_id=session_id,
            event_store=SessionEventStore(self._event_log, session_id),
            is_json_response_enabled=self.json_response,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
            ping_interval=self._ping_interval,
        )
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        self._open.add(session_id)
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        await super()._discard_session(session_id, transport)
        if session_id in self._open:
            self._open.discard(session_id)
            self._sessions.forget(session_id)
            await self._event_log.end_scope(session_scope(session_id))
