"""The SDK's `EventStore`, bound to one MCP session and backed by the service's event log.

The SDK hands `store_event` a stream id such as `"0"` (the first request's id) or
`"_GET_stream"`: ids that every session reuses. Its example store keys events by that id
alone, so two sessions replay each other's notifications. Here each session gets its own
instance, whose events live in the log scope `mcp:<session id>`, and a `Last-Event-ID`
is only ever looked up inside that scope.
"""

from __future__ import annotations

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter

from service.stores.base import EventLog, parse_event_id


def session_scope(session_id: str) -> str:
    return f"mcp:{session_id}"


class SessionEventStore(EventStore):
    def __init__(self, log: EventLog, session_id: str) -> None:
        self._log = log
        self.scope = session_scope(session_id)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        data = None if message is None else message.model_dump_json(by_alias=True, exclude_unset=True).encode()
        return str(await self._log.append(self.scope, stream_id, data))

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        event_id = parse_event_id(last_event_id)
        if event_id is None:
            return None
        stream_id = await self._log.stream_of(self.scope, event_id)
        if stream_id is None:
            return None
        for event in await self._log.read(self.scope, stream_id, event_id):
            if event.data is not None:  # priming events mark a position; there is nothing to resend
                message = jsonrpc_message_adapter.validate_json(event.data)
                await send_callback(EventMessage(message, str(event.id)))
        return stream_id
