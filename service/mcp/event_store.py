"""The SDK's `EventStore`, bound to one MCP session and backed by the service's event log.

The SDK hands `store_event` a stream id such as `"0"` (the first request's id) or
`"_GET_stream"`: ids that every session reuses. Its example store keys events by that id
alone, so two sessions replay each other's notifications. Here each session gets its own
instance, whose events live in the log partition `mcp:<session id>`, and a `Last-Event-ID`
is only ever looked up inside that partition.

A session may live for hours, so it does not keep its streams for as long: a request's stream
is ended in the log once its response is stored, and the standalone GET stream, which never
ends while its session lives, after every event. Their events then stay resumable for
`SERVICE_STREAM_RETENTION` seconds (`service.stores.base`). The store is the partition's one
writer, so it knows the ids each end covers: those it appended to the stream since its last end.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mcp.server.streamable_http import GET_STREAM_KEY, EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCResponse, jsonrpc_message_adapter
from typing_extensions import override

from service.stores.base import EventLog, StoredEvent, StoreError, parse_event_id

__all__ = ["SessionEventStore", "StoredMessage", "json_of", "session_partition"]

logger = logging.getLogger(__name__)


def session_partition(session_id: str) -> str:
    return f"mcp:{session_id}"


@dataclass
class StoredMessage(EventMessage):
    """An outbound message as stored: its event id and the JSON that was written, to send as is."""

    json: str = ""


class SessionEventStore(EventStore):
    def __init__(self, log: EventLog, session_id: str) -> None:
        self._log = log
        self.partition = session_partition(session_id)
        self._spans: dict[StreamId, tuple[int, int]] = {}
        """The first and last id each stream appended since its last end."""

    async def store(self, stream_id: StreamId, message: JSONRPCMessage, text: str | None = None) -> StoredMessage:
        """Record an outbound message, and hand back the JSON written (sent as is, never serialized again).

        `text`: the message's JSON, when the sender has it already (`fast_transport.RequestStream`).
        """
        if text is None:
            text = message.model_dump_json(by_alias=True, exclude_unset=True)
        final = isinstance(message, JSONRPCResponse | JSONRPCError)
        return StoredMessage(message, await self._append(stream_id, text.encode(), final=final), text)

    @override
    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """The SDK's entry point: its router (`SERVICE_MCP_FAST_TRANSPORT=false`) and its priming events (None)."""
        if message is not None:
            return (await self.store(stream_id, message)).event_id or ""
        return await self._append(stream_id, None)

    async def _append(self, stream_id: StreamId, data: bytes | None, *, final: bool = False) -> EventId:
        """The new event's id; if the store fails, say so and return "" (no id).

        `final`: the event is its request's response, which ends the stream.

        The transport awaits this for every message the session sends, and an exception
        there would hang every call of the session. An event without an id is delivered live
        but cannot be resumed; the job behind it fails on the same store, so the tool call
        ends with an error that says why.
        """
        try:
            event_id = await self._log.append(self.partition, stream_id, data)
            first = self._spans.pop(stream_id, (event_id, event_id))[0]
            if final or stream_id == GET_STREAM_KEY:
                await self._log.end_stream(self.partition, stream_id, first, event_id)
            else:
                self._spans[stream_id] = (first, event_id)
            return str(event_id)
        except StoreError as exc:
            logger.error("event store failed, sending without an event id: %s", exc)
            return ""

    async def stored(self) -> None:
        """Wait until what was appended is stored (`EventLog.stored`); if the store fails, say so and go on: the
        events stay queued, and are delivered live all the same."""
        try:
            await self._log.stored()
        except StoreError as exc:  # the store's own writer says so, once per failure
            logger.debug("event store failed, sending what it has not stored yet: %s", exc)

    async def locate(self, last_event_id: str) -> tuple[int, StreamId] | None:
        """The event a client resumes from and its stream, or None if this session has no such event."""
        event_id = parse_event_id(last_event_id)
        if event_id is None:
            return None
        stream_id = await self._log.stream_of(self.partition, event_id)
        return None if stream_id is None else (event_id, stream_id)

    async def events_after(self, stream_id: StreamId, event_id: int) -> Sequence[StoredEvent]:
        return await self._log.read(self.partition, stream_id, event_id)

    @override
    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """The SDK's replay entry point, required by its ABC; the service's transport reads with `locate`
        and `events_after` instead."""
        found = await self.locate(last_event_id)
        if found is None:
            return None
        event_id, stream_id = found
        for event in await self.events_after(stream_id, event_id):
            if event.data is not None:  # priming events mark a position; there is nothing to resend
                message = jsonrpc_message_adapter.validate_json(event.data)
                await send_callback(EventMessage(message, str(event.id)))
        return stream_id


def json_of(event: EventMessage) -> str:
    """The message's JSON: the text stored for it, else (a message the SDK's router queued) serialized now."""
    if isinstance(event, StoredMessage):
        return event.json
    return event.message.model_dump_json(by_alias=True, exclude_unset=True)
