"""The storage interface: append-only event logs and job records.

A backend is one class in one file that satisfies `Storage`. Events live in *scopes*
(an MCP session, or a job's own log); a scope holds one or more *streams* (the SDK's
per-request stream ids, `_GET_stream`, or a job log's single stream). Event ids are
integers from one sequence per store, so ids sort in store order; they are never
reused, and an id is only ever looked up inside the scope that asks for it, so one
session can neither read nor guess its way into another's events.

Payloads are serialized bytes, never message objects: retaining millions of pydantic
objects costs the cyclic garbage collector dearly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from service.jobs.models import Job, JobStatus


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    data: bytes | None
    """None for a priming event: it marks a position in the stream and carries nothing."""


EVENT_ID_PATTERN = r"^[0-9]{1,18}$"
"""What `parse_event_id` accepts."""


def parse_event_id(value: str) -> int | None:
    """Event ids travel as decimal strings (SSE `id:`, `Last-Event-ID`); anything else names no event."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


class StoreError(Exception):
    """The backend failed (disk full, database locked...). Callers turn it into a clear error."""


class EventLog(Protocol):
    async def append(self, scope: str, stream: str, data: bytes | None) -> int:
        """Record one event and return its id. Must be fast: it is awaited for every outbound message."""
        ...

    async def stream_of(self, scope: str, event_id: int) -> str | None:
        """The stream `event_id` belongs to, or None when the scope holds no such event (unknown or evicted)."""
        ...

    async def read(self, scope: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        """Every event of `stream` with an id greater than `after`, in order."""
        ...

    async def end_scope(self, scope: str) -> None:
        """The scope's owner is gone: keep its events for the retention period, then drop them."""
        ...

    async def seal(self, scope: str) -> None:
        """Nothing more will be appended to the scope: forget its bookkeeping, keep its events."""
        ...

    async def drop_scope(self, scope: str) -> None:
        """Forget the scope's events now (its owner was deleted); nothing is appended to it after."""
        ...


class JobStore(Protocol):
    async def save_job(self, job: Job) -> None: ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def delete_job(self, job_id: str) -> None:
        """Forget a job that has ended; an unknown id is no error."""
        ...

    async def list_jobs(self, *, status: JobStatus | None, owner: str | None, limit: int, offset: int) -> Sequence[Job]:
        """Newest first. `owner=None` lists every owner's jobs."""
        ...

    async def unfinished_jobs(self) -> Sequence[Job]:
        """Jobs still pending or running: at start-up, the ones a previous process left behind."""
        ...


class Storage(EventLog, JobStore, Protocol):
    """A backend: opened and closed by the app's lifespan."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
