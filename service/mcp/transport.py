"""The SDK's StreamableHTTP transport, with resumption made correct.

Verified against mcp 2.3.x (pinned in pyproject.toml): `tests/mcp/test_resumption.py` fails
against the stock class, and `tests/mcp/test_sdk_seam.py` fails, naming the member, when an
SDK upgrade moves any member this module overrides or calls. What changes, and why:

1. Each session has its own `SessionEventStore` (`SessionManager` gives it one): the SDK's
   stream ids repeat across sessions and its store is never told the session.
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
6. A request whose `id` is neither a string nor an integer (`1.5`, `true`, `null`) gets a
   400 with JSON-RPC `-32600`. The SDK validates it as a notification (whose model ignores
   unknown members) and answers 202: the client waits forever. The 2026-07-28 path already
   refuses it.

7. A session adopted from a replica that is gone (`SessionManager`) resumes its streams from
   the shared log and, for a request another replica served, follows the log up to its
   response: whoever took its job over writes there (`service.tools.resumed_call`).

Writers release a stream registration only if it is still their own, so a connection that
is being replaced cannot tear down its replacement. Resumed streams and the GET stream are
written by one coroutine straight to ASGI `send` (`service.sse`): the SDK's replay has no
hook between reading the store and going live, which is where (2) happens.

Upstream, (2)-(5) belong in `StreamableHTTPServerTransport._replay_events` and
`_handle_get_request`, (1) in `EventStore` itself (pass the session id to
`store_event`/`replay_events_after`), (6) in `_handle_post_request`. `service.mcp.fast_transport`
is the fast transport on top of this one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import anyio
import pydantic_core
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    LAST_EVENT_ID_HEADER,
    MCP_SESSION_ID_HEADER,
    EventMessage,
    SSEEvent,
    StreamableHTTPServerTransport,
    StreamId,
    check_accept_headers,
)
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import SessionMessage
from mcp_types import DEFAULT_NEGOTIATED_VERSION, INVALID_REQUEST, JSONRPCError, JSONRPCResponse, RequestId
from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from typing_extensions import override

from service import sse
from service.mcp.event_store import SessionEventStore, json_of
from service.stores.base import StoredEvent, StoreError

__all__ = ["RESUME_ELSEWHERE_MS", "TAKE_OVER_TIMEOUT", "Follow", "ResumableTransport"]

logger = logging.getLogger(__name__)

TAKE_OVER_TIMEOUT = 5.0
FOLLOW_WAIT = 1.0
"""Seconds a stream followed in the shared log waits for it at most, before it checks it is still wanted."""
Follow = Callable[[str, int, float], Awaitable[int]]
"""Waits until a partition holds events after an id, or some seconds pass; returns the newest id it saw."""
FINAL = (JSONRPCResponse, JSONRPCError)
"""The messages that end a request's stream."""
RESUME_ELSEWHERE_MS = 250
"""The `retry:` hint that ends a stream this process lets go of where the store is shared (a drain, a call handed
over, a session another replica asked for): its client resumes soon, where the session goes on, instead of after the
SDK client's default second. Not at once: a stopping server accepts connections until its loop's next tick (uvicorn's
is 0.1 s), and the SDK's client gives up after two refused resumptions; a replica that cannot adopt the session yet
holds the resumption until it can."""


class ResumableTransport(StreamableHTTPServerTransport):
    """One session's transport: the SDK's, with lossless resumption and clear errors for bad cursors."""

    @override
    def __init__(
        self,
        *,
        mcp_session_id: str,
        event_store: SessionEventStore,
        ping_interval: float,
        on_replay: Callable[[int], None] = lambda events: None,
        follow: Follow | None = None,
        **options: Any,
    ) -> None:
        super().__init__(mcp_session_id=mcp_session_id, event_store=event_store, **options)
        self._session_store = event_store
        self._ping_interval = ping_interval
        self._on_replay = on_replay
        """Called with the number of stored events each resumption sent again (for the metrics)."""
        self._follow = follow
        """Waits for the session's log to grow (`wait_for_session_events`), where other processes may write it and
        serve it next; None where this process alone ever will (then nothing waits for the store before a send)."""
        self.adopted = False
        """Set for a session adopted from another replica: the streams of requests it did not serve are followed
        in the log (`_posted` lists the ones it did)."""
        self._posted: set[str] = set()
        self.handed_over: set[str] = set()
        """Requests whose call goes on in another process (their job was handed over, or taken over while this one
        stood still): nothing more is written on their streams here, not even the error the SDK answers as the
        connection closes, and a client resuming one here follows it in the log."""
        # Set when the connection currently serving a stream has let go of it.
        self._released: dict[StreamId, anyio.Event] = {}

    async def push(self, message: SessionMessage) -> None:
        """Send a message the session itself did not produce (a REST job's notification) as if it had.

        Raises `anyio.ClosedResourceError` once the session has ended.
        """
        if self._write_stream is None or self.is_terminated:
            raise anyio.ClosedResourceError
        await self._write_stream.send(message)

    def hand_over(self, stream_id: str) -> None:
        """The request's call goes on in another process (`handed_over`): its response here ends, so that its client
        resumes it and reads the rest from the log."""
        self.handed_over.add(stream_id)
        self.close_sse_stream(stream_id)

    def close_request_streams(self) -> None:
        """End the responses of the requests in flight (their clients resume them, from the log, elsewhere)."""
        for stream_id in [stream_id for stream_id in self._request_streams if stream_id != GET_STREAM_KEY]:
            self.close_sse_stream(stream_id)

    # A POST's own stream: the SDK's writer, made to release only what is still its own.

    @override
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

    # POST: refuse what the SDK would leave unanswered, then serve it.

    @override
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
        if self.adopted and isinstance(body, dict) and "method" in body and "id" in body:
            self._posted.add(str(body["id"]))
        await self._serve_post(scope, request, receive, send, body)

    async def _serve_post(self, scope: Scope, request: Request, receive: Receive, send: Send, body: Any) -> None:
        """Answer a POST whose body is `body` (parsed, or None if it is not JSON): the SDK's way."""
        await super()._handle_post_request(scope, request, receive, send)  # starlette caches the body it read

    async def _start_stream(self, send: Send, priming: SSEEvent | None = None) -> None:
        """Start an SSE response with the session's id, and the priming event if there is one.

        The priming event (the SDK's) carries only an id, and the retry interval, for the
        client to resume from should the connection drop before anything else is sent.
        """
        headers = [(MCP_SESSION_ID_HEADER.encode(), self.mcp_session_id.encode())] if self.mcp_session_id else []
        first = (
            b"" if priming is None else sse.frame("", event_id=priming["id"], event=None, retry=priming.get("retry"))
        )
        await sse.start(send, headers, first)

    @contextmanager
    def _own_stream(self, stream_id: StreamId) -> Iterator[MemoryObjectReceiveStream[EventMessage]]:
        """Register this connection as the one the session routes `stream_id` to, until it is done."""
        # Room for a whole batch of the writer's (the SDK's streams hold REQUEST_STREAM_BUFFER_SIZE, 16): a job
        # that sends a burst of notifications queues them all before the writer's next turn.
        queue = self._request_streams[stream_id] = anyio.create_memory_object_stream[EventMessage](sse.BATCH_LIMIT)
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
                answered = False
                for event in batch:
                    if after and event.event_id and int(event.event_id) <= after:
                        continue  # already replayed from the store
                    frames.append(sse.frame(json_of(event), event_id=event.event_id))
                    if until_response and isinstance(event.message, FINAL):
                        answered = True
                        break
                if frames and self._follow is not None:
                    # Sent once stored: a client resumes after what it saw wherever the session goes next.
                    await self._session_store.stored()
                if answered:
                    await sse.write(send, b"".join(frames), more=False)
                    return
                if frames:
                    await sse.write(send, b"".join(frames))
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        logger.debug("stream closed")
        await sse.write(send, self._closing_frame(), more=False)

    def _closing_frame(self) -> bytes:
        """What ends a stream closed before its response: where the session may go on in another process, the hint
        to resume at once (`RESUME_ELSEWHERE_MS`); else nothing, and the client keeps the priming event's hint."""
        return b"" if self._follow is None else sse.frame("", event=None, retry=RESUME_ELSEWHERE_MS)

    # GET: the standalone stream, or a resumed one.

    @override
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
            await self._start_stream(send)
            after, answered = await self._replay(stream_id, send, after=after)
            if answered:
                return
            written_elsewhere = stream_id in self.handed_over or (self.adopted and stream_id not in self._posted)
            if self._follow is not None and written_elsewhere:
                await self._follow_log(self._follow, stream_id, queue, send, after=after)
            else:
                await self._write_live(queue, send, after=after)

    async def _follow_log(
        self,
        follow: Follow,
        stream_id: StreamId,
        queue: MemoryObjectReceiveStream[EventMessage],
        send: Send,
        *,
        after: int,
    ) -> None:
        """Write a stream that another replica writes, as the shared log gets it, up to its response.

        Ends early if another connection resumes the stream (it closes `queue`), or the session ends.
        """
        seen = after  # the partition's newest id seen, of any stream: what the next wait starts from
        idle_since = anyio.current_time()
        while self._request_streams.get(stream_id, (None, None))[1] is queue and not self.is_terminated:
            try:
                seen = await follow(self._session_store.partition, seen, min(self._ping_interval, FOLLOW_WAIT))
                after, answered = await self._replay(stream_id, send, after=after)
            except StoreError as exc:  # the store is away for a moment: the client sees a pause, then the rest
                logger.debug("following stream %s: %s", stream_id, exc)
                await anyio.sleep(FOLLOW_WAIT)
                answered = False
            if answered:
                return
            if seen > after:
                idle_since = anyio.current_time()
            elif anyio.current_time() - idle_since >= self._ping_interval:
                await sse.write(send, sse.PING)
                idle_since = anyio.current_time()
        await sse.write(send, self._closing_frame(), more=False)

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
                self._on_replay(len(frames))
                await sse.write(send, b"".join(frames), more=False)
                return after, True
        self._on_replay(len(frames))
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
            await self._start_stream(send, priming)
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
