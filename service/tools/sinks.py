"""Where an MCP client receives a job's notifications: its tool call's stream, or its session's GET stream."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.session import ServerSession
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCNotification, RequestId

from service.domain.notifications import Notification, json_string
from service.mcp.fast_transport import RequestStream
from service.mcp.transport import ResumableTransport
from service.stores.base import SessionRelay

__all__ = [
    "LOGGER_NAME",
    "LOG_METHOD",
    "PROGRESS_METHOD",
    "RelayedSessionSink",
    "RequestStreamSink",
    "SerializedRequestStreamSink",
    "SessionStreamSink",
]

LOGGER_NAME = "notification-stream"
LOG_METHOD = "notifications/message"
PROGRESS_METHOD = "notifications/progress"
LOG_PREFIX = f'{{"jsonrpc":"2.0","method":"{LOG_METHOD}","params":{{"level":"info","logger":"{LOGGER_NAME}","data":'


def log_json(data: str) -> str:
    """The JSON of an info-level log notification from this service's logger, byte for byte as the SDK writes it.

    `tests/mcp/test_sinks.py` compares the two.
    """
    return f"{LOG_PREFIX}{json_string(data)}}}}}"


@dataclass(frozen=True, slots=True)
class RequestStreamSink:
    """The stream of the `tools/call` that started the job: log notifications, plus progress if asked for."""

    session: ServerSession
    request_id: RequestId

    async def send(self, notification: Notification) -> None:
        await self.session.send_log_message(
            "info", notification.message, logger=LOGGER_NAME, related_request_id=self.request_id
        )
        # A no-op unless the client sent a progressToken with its call.
        await self.session.report_progress(notification.index, notification.count, notification.message)


@dataclass(frozen=True, slots=True)
class SerializedRequestStreamSink:
    """`RequestStreamSink` for a request the fast transport serves: the log notification goes as JSON text.

    `send_log_message` builds, validates and dumps three message objects per notification;
    this writes the same JSON from a template and hands it to the request's stream. The
    session's log-level gate (on 2026-07-28, logs only for a request that opted in) is
    applied by whoever builds the sink: `logs` is its verdict for level info, `progress`
    whether the call asked for progress notifications (with a `progressToken`).
    """

    stream: RequestStream
    session: ServerSession
    logs: bool
    progress: bool

    async def send(self, notification: Notification) -> None:
        data = notification.message
        if self.logs:
            params = {"level": "info", "logger": LOGGER_NAME, "data": data}
            # Built without validation: the text below is what is sent and stored; the object is what the
            # stream's writer inspects (is it the response?).
            message = JSONRPCNotification.model_construct(jsonrpc="2.0", method=LOG_METHOD, params=params)
            await self.stream.send(message, log_json(data))
        if self.progress:
            await self.session.report_progress(notification.index, notification.count, data)


@dataclass(frozen=True, slots=True)
class SessionStreamSink:
    """A session's standalone GET stream (for jobs started over REST with a `session_id`).

    The message goes through the session's transport as if the session had sent it: stored
    in the session's log, then delivered (or kept for its client to resume).
    """

    transport: ResumableTransport

    async def send(self, notification: Notification) -> None:
        params = {"level": "info", "logger": LOGGER_NAME, "data": notification.message}
        message = JSONRPCNotification(jsonrpc="2.0", method=LOG_METHOD, params=params)
        await self.transport.push(SessionMessage(message))


@dataclass(frozen=True, slots=True)
class RelayedSessionSink:
    """The GET stream of a session that another replica holds: the relay hands it to that replica."""

    relay: SessionRelay
    replica: str
    session_id: str

    async def send(self, notification: Notification) -> None:
        await self.relay.relay(self.replica, self.session_id, notification)
