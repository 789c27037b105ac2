"""The sinks of a tool call: the serialized one writes what the SDK's would, and is chosen where it can be."""

from __future__ import annotations

from typing import Any, cast

import pytest
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp_types import (
    LOG_LEVEL_META_KEY,
    JSONRPCNotification,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
)
from starlette.requests import Request

from service.mcp.event_store import SessionEventStore
from service.mcp.fast_transport import FastTransport, RequestStream
from service.stores.base import Retention
from service.stores.memory import MemoryStorage
from service.tools.notification_stream import call_of, request_stream_sink
from service.tools.sinks import LOGGER_NAME, RequestStreamSink, SerializedRequestStreamSink, log_json

pytestmark = pytest.mark.in_process


def sdk_json(data: str) -> str:
    """What `ServerSession.send_log_message` hands the transport, as the transport's store writes it."""
    params = LoggingMessageNotificationParams(level="info", data=data, logger=LOGGER_NAME)
    dumped = LoggingMessageNotification(params=params).model_dump(by_alias=True, mode="json", exclude_none=True)
    message = JSONRPCNotification(jsonrpc="2.0", method=dumped["method"], params=dict(dumped["params"]))
    return message.model_dump_json(by_alias=True, exclude_unset=True)


ODD_TEXTS = ["Notification 1/5 for py", 'quote " and \\ backslash', "é ü 漢字 🎉", "tab\tnl\n\x01"]


@pytest.mark.parametrize("data", ODD_TEXTS)
def test_the_serialized_notification_is_the_sdks_byte_for_byte(data: str) -> None:
    assert log_json(data) == sdk_json(data)


def context(request: Request | None, protocol_version: str, meta: dict[str, Any] | None) -> ServerRequestContext[Any]:
    return ServerRequestContext(
        session=cast(ServerSession, object()),
        lifespan_context={},
        protocol_version=protocol_version,
        method="tools/call",
        request_id=7,
        meta=cast(Any, meta),
        request=request,
    )


def event_store() -> SessionEventStore:
    return SessionEventStore(MemoryStorage(max_events_per_partition=100, retention=Retention(events=60)), "s1")


def served_request(store: SessionEventStore | None = None) -> tuple[Request, RequestStream]:
    """A request as `FastTransport` hands it to the session, its stream in its state."""
    store = store or event_store()
    transport = FastTransport(mcp_session_id="s1", event_store=store, ping_interval=10)
    request = Request({"type": "http", "method": "POST", "path": "/mcp", "headers": [], "state": {}})
    stream = RequestStream(transport, "7")
    stream.attach(request)
    return request, stream


def serialized_sink(ctx: ServerRequestContext[Any]) -> SerializedRequestStreamSink:
    sink = request_stream_sink(ctx, call_of(ctx))
    assert isinstance(sink, SerializedRequestStreamSink)
    return sink


def test_a_request_the_fast_transport_serves_gets_the_serialized_sink_with_the_sessions_log_gate() -> None:
    request, stream = served_request()
    handshake = serialized_sink(context(request, "2025-11-25", None))
    assert (handshake.stream, handshake.logs, handshake.progress) == (stream, True, False)
    asked = context(request, "2025-11-25", None)
    asked.params = {"name": "t", "_meta": {"progressToken": "p1"}}
    assert serialized_sink(asked).progress
    # 2026-07-28: logs only for a request that opted in, at its level or above.
    assert not serialized_sink(context(request, "2026-07-28", None)).logs
    assert serialized_sink(context(request, "2026-07-28", {LOG_LEVEL_META_KEY: "info"})).logs
    assert not serialized_sink(context(request, "2026-07-28", {LOG_LEVEL_META_KEY: "error"})).logs


def test_any_other_request_gets_the_sdks_sink() -> None:
    plain = Request({"type": "http", "method": "POST", "path": "/mcp", "headers": [], "state": {}})
    for ctx in (context(plain, "2025-11-25", None), context(None, "2025-11-25", None)):
        assert isinstance(request_stream_sink(ctx, call_of(ctx)), RequestStreamSink)


@pytest.mark.anyio
async def test_a_request_stream_stores_the_text_it_is_given() -> None:
    store = event_store()
    _, stream = served_request(store)
    message = JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"data": "x"})
    await stream.send(message, log_json("x"))
    (event,) = await store.events_after("7", 0)
    assert event.data == log_json("x").encode()
