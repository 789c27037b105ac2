"""The session-scoped event store: what the transport writes is what was stored."""

from __future__ import annotations

import pytest
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCNotification

from service.mcp.event_store import SessionEventStore, json_of
from service.stores.base import Retention
from service.stores.memory import MemoryStorage

pytestmark = pytest.mark.in_process


def note(index: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"level": "info", "data": index})


@pytest.mark.anyio
async def test_the_wire_json_is_the_stored_json() -> None:
    store = SessionEventStore(MemoryStorage(max_events_per_partition=1000, retention=Retention(events=60)), "s1")
    for index in range(5):
        stored = await store.store("0", note(index))
        (event,) = await store.events_after("0", int(stored.event_id or 0) - 1)
        assert json_of(stored).encode() == event.data
        # A message the SDK's router queued (SERVICE_MCP_FAST_TRANSPORT=false) is serialized to the same text.
        assert json_of(EventMessage(note(index), stored.event_id)) == stored.json
    # The SDK's entry points: an id for a message, and for a priming event (no message).
    assert int(await store.store_event("0", note(9))) > int(stored.event_id or 0)
    priming = await store.store_event("0", None)
    assert [e.data for e in await store.events_after("0", int(priming) - 1)] == [None]
