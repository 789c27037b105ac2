"""Where a job's notifications go besides its own log, and how the engine's callers find such places.

The engine knows nothing of MCP or HTTP: whoever starts a job hands it its sinks. A REST
call that names an MCP session asks the `SessionDirectory` (the MCP session manager) for
that session's sink; it never holds the session itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from service.domain.jobs import JobRecord

__all__ = ["CallSink", "Notification", "SessionDirectory", "Sink", "json_string"]


json_string = json.JSONEncoder(ensure_ascii=False).encode
"""A string as JSON. `json.dumps` with options builds an encoder per call; one per notification shows in profiles."""


@dataclass(frozen=True, slots=True)
class Notification:
    """The `index`-th (1-based) of a job's `count` notifications."""

    job_id: str
    index: int
    count: int
    caller: str

    @property
    def message(self) -> str:
        return f"Notification {self.index}/{self.count} for {self.caller}"

    def to_json(self) -> bytes:
        """`{"job_id":…,"index":…,"count":…,"message":…}`, compact: what the job's log stores."""
        job_id, message = json_string(self.job_id), json_string(self.message)
        return f'{{"job_id":{job_id},"index":{self.index},"count":{self.count},"message":{message}}}'.encode()


class Sink(Protocol):
    """Somewhere a job's notifications are delivered, besides its own event log."""

    async def send(self, notification: Notification) -> None: ...


class CallSink(Sink, Protocol):
    """The stream of a call whose job another engine took over: it carries the rest of the notifications, then
    the call's result (the engine that started the job answered the call itself)."""

    async def result(self, job: JobRecord) -> None:
        """Write the call's result: the job has ended (not handed over), with its final record saved."""
        ...


class SessionDirectory(Protocol):
    """The live MCP sessions, as places to deliver to."""

    async def sink_for(self, session_id: str, owner: str | None) -> Sink | None:
        """The session's GET stream, if the session is live and belongs to `owner` (None without authentication)."""
        ...

    def __len__(self) -> int: ...
