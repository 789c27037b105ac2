"""A tool call whose job another replica took over: the rest of its stream, written straight into its session's log.

The call's own replica died (or handed the job over as it stopped), and with it the call's
open response. Its client resumes the stream with `GET` and `Last-Event-ID` from whichever
replica holds the session now (`service.mcp.manager`), which reads the session's log. So the
engine that takes the job over writes there what the call's stream would have carried: the
notifications the log does not hold yet, then the `tools/call` response.

The job's log and the session's may differ by the last notification or two (each is written
behind, in batches): what the session's stream already holds is counted first, so that the
client gets each notification exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pydantic_core
from mcp_types import JSONRPCResponse

from service.domain.jobs import JobRecord, McpCall
from service.domain.notifications import CallSink, Notification
from service.mcp.event_store import session_partition
from service.stores.base import EventLog, StoredEvent
from service.tools.notification_stream import job_result
from service.tools.sinks import LOG_METHOD, PROGRESS_METHOD, log_json

__all__ = ["ResumedCall", "resumed_call"]


def resumed_call(log: EventLog, job: JobRecord) -> CallSink | None:
    """The call's stream in its session's log, for a job taken over that answers a resumable MCP call."""
    if job.call is None or job.session_id is None:
        return None
    return ResumedCall(log, session_partition(job.session_id), job.call)


@dataclass(slots=True)
class ResumedCall:
    log: EventLog
    partition: str
    call: McpCall
    _delivered: int | None = None
    """The last notification the call's stream holds; None until it has been read."""
    _answered: bool = False
    _span: list[int] = field(default_factory=list)
    """The first and last id of the call's stream in the log, for its end once the response is in."""

    @property
    def _stream(self) -> str:
        return str(self.call.request_id)

    async def send(self, notification: Notification) -> None:
        delivered = await self._read(notification)
        for index in range(delivered + 1, notification.index + 1):  # with what the dead replica had not written yet
            await self._write(_nth(notification, index))
        self._delivered = max(delivered, notification.index)

    async def result(self, job: JobRecord) -> None:
        last = Notification(job.id, job.sent, job.count, job.caller)
        delivered = await self._read(last)
        if self._answered:
            return  # an engine that took the job over before this one answered already
        for index in range(delivered + 1, job.sent + 1):
            await self._write(_nth(last, index))
        result = job_result(job).model_dump(by_alias=True, exclude_none=True, mode="json")
        await self._append(
            JSONRPCResponse(jsonrpc="2.0", id=self.call.request_id, result=result).model_dump_json(by_alias=True)
        )
        self._answered = True
        await self.log.end_stream(self.partition, self._stream, self._span[0], self._span[-1])

    async def _read(self, like: Notification) -> int:
        """The last notification the call's stream holds (read once: after that, this is its one writer)."""
        if self._delivered is None:
            events = await self.log.read(self.partition, self._stream)
            if events:
                self._span[:] = [events[0].id, events[-1].id]
            self._delivered, self._answered, progress_missing = _count(events, self.call)
            if progress_missing:  # the last notification's log message made it, its progress did not
                await self._append(self._progress_json(_nth(like, self._delivered)))
        return self._delivered

    async def _write(self, notification: Notification) -> None:
        if self.call.logs:
            await self._append(log_json(notification.message))
        if self.call.progress_token is not None:
            await self._append(self._progress_json(notification))

    def _progress_json(self, notification: Notification) -> str:
        """As the SDK's `report_progress` writes it."""
        params = {
            "progressToken": self.call.progress_token,
            "progress": notification.index,
            "total": notification.count,
            "message": notification.message,
        }
        return f'{{"jsonrpc":"2.0","method":"{PROGRESS_METHOD}","params":{pydantic_core.to_json(params).decode()}}}'

    async def _append(self, text: str) -> None:
        event_id = await self.log.append(self.partition, self._stream, text.encode())
        self._span[:] = [self._span[0] if self._span else event_id, event_id]


def _nth(like: Notification, index: int) -> Notification:
    return Notification(like.job_id, index, like.count, like.caller)


def _count(events: Sequence[StoredEvent], call: McpCall) -> tuple[int, bool, bool]:
    """What a call's stream holds: its last notification, whether its response is there, and whether the progress
    notification of the last one is missing (the replica died between its two messages)."""
    logs = progress = 0
    answered = False
    for event in events:
        if event.data is None:
            continue  # a priming event
        message = pydantic_core.from_json(event.data)
        method = message.get("method")
        if method == LOG_METHOD:
            logs += 1
        elif method == PROGRESS_METHOD:
            progress = int(message["params"]["progress"])
        elif "result" in message or "error" in message:
            answered = True
    if not call.logs:
        return progress, answered, False
    return logs, answered, call.progress_token is not None and progress < logs
