"""The SDK's `EventStore`, bound to one MCP session and backed by the service's event log.

The SDK hands `store_event` a stream id such as `"0"` (the first request's id) or
`"_GET_stream"`: ids that every session reuses. Its example store keys events by that id
alone, so two sessions replay each other's notifications. Here each session gets its own
instance, whose events live in the log scope `mcp:<session id>`, and a `Last-Event-ID`
is only ever looked up inside that scope.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter

from service.stores.base import EventLog, StoredEvent, StoreError, parse_event_id

logger = logging.getLogger(__name__)

# A stream's writer trails the store by at most the SDK's request stream buffer (16 messages).
JSON_KEPT = 64


def session_scope(session_id: str) -> str:
    return f"mcp:{session_id}"


class SessionEventStore(EventStore):
    def __init__(self, log: EventLog, session_id: str) -> None:
        self._log = log
        self.scope = session_scope(session_id)
        # The JSON of the last few stored messages, by event id, so that the transport
        # writes the text it stored instead of serializing the message a second time.
        self._json: dict[str, str] = {}

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Record an outbound message; if the store fails, say so and send the message without an id.

        The transport awaits this inline in the session's message router, and an exception
        there would kill the router and hang every call of the session. An event without an
        id is delivered live but cannot be resumed; the job behind it fails on the same
        store, so the tool call ends with an error that says why.
        """
        text = None if message is None else message.model_dump_json(by_alias=True, exclude_unset=True)
        try:
            event_id = str(await self._log.append(self.scope, stream_id, None if text is None else text.encode()))
        except StoreError as exc:
            logger.error("event store failed, sending without an event id: %s", exc)
            return ""
        if text is not None:
            if len(self._json) >= JSON_KEPT:
                del self._json[next(iter(self._json))]  # its stream had no reader: it is serialized again if read
            self._json[event_id] = text
        return event_id

    def json_of(self, event: EventMessage) -> str:
        """The message's JSON: the text stored for it, else serialized now."""
        text = self._json.pop(event.event_id, None) if event.event_id else None
        return text if text is not None else event.message.model_dump_json(by_alias=True, exclude_unset=True)

    async def locate(self, last_event_id: str) -> tuple[int, StreamId] | None:
        """The event a client resumes from and its stream, or None if this session has no such event."""
        event_id = parse_event_id(last_event_id)
        if event_id is None:
            return None
        stream_id = await self._log.stream_of(self.scope, event_id)
        return None if stream_id is None else (event_id, stream_id)

    async def events_after(self, stream_id: StreamId, event_id: int) -> Sequence[StoredEvent]:
        return await self._log.read(self.scope, stream_id, event_id)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """The SDK's replay entry point; the service's transport uses `locate` and `events_after` instead."""
        found = await self.locate(last_event_id)
        if found is None:
            return None
        event_id, stream_id = found
        for event in await self.events_after(stream_id, event_id):
            if event.data is not None:  # priming events mark a position; there is nothing to resend
                message = jsonrpc_message_adapter.validate_json(event.data)
                await send_callback(EventMessage(message, str(event.id)))
        return stream_id
