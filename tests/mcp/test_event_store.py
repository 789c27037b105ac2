"""The session-scoped event store: what the transport writes comes from what was stored."""

from __future__ import annotations

import pytest
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCNotification

from service.mcp.event_store import JSON_KEPT, SessionEventStore
from service.stores.base import Retention
from service.stores.memory import MemoryStorage


def note(index: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"level": "info", "data": index})


@pytest.mark.anyio
async def test_the_wire_json_is_the_stored_json_and_survives_eviction() -> None:
    store = SessionEventStore(MemoryStorage(max_events_per_scope=1000, retention=Retention(events=60)), "s1")
    sent = [(note(i), await store.store_event("0", note(i))) for i in range(JSON_KEPT + 10)]
    # The oldest were evicted from the cache: serialized again, to the same text.
    for message, event_id in sent:
        (stored,) = [e for e in await store.events_after("0", int(event_id) - 1) if str(e.id) == event_id]
        assert store.json_of(EventMessage(message, event_id)).encode() == stored.data
    assert store.json_of(EventMessage(note(1), None)) == note(1).model_dump_json(by_alias=True, exclude_unset=True)
