"""In-process storage: fast, bounded, and gone when the process exits."""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from service.jobs.models import Job, JobStatus
from service.stores.base import StoredEvent


class _ScopeLog:
    """One scope's events in id order, in parallel lists; evicted entries sit before `start`."""

    __slots__ = ("data", "ids", "start", "streams")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.streams: list[str] = []
        self.data: list[bytes | None] = []
        self.start = 0

    def __len__(self) -> int:
        return len(self.ids) - self.start

    def evict_oldest(self) -> None:
        self.start += 1
        if self.start > 1024 and self.start * 2 > len(self.ids):
            del self.ids[: self.start], self.streams[: self.start], self.data[: self.start]
            self.start = 0


class MemoryStorage:
    """Keeps each scope's events within `max_events_per_scope`, and an ended scope for `retention` seconds.

    Job records and job logs are kept for the life of the process: use SQLite where that matters.
    """

    def __init__(self, *, max_events_per_scope: int, retention: float) -> None:
        self._max_events = max_events_per_scope
        self._retention = retention
        self._ids = itertools.count(1)
        self._scopes: dict[str, _ScopeLog] = {}
        self._ended: deque[tuple[float, str]] = deque()
        self._jobs: dict[str, Job] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    # EventLog

    async def append(self, scope: str, stream: str, data: bytes | None) -> int:
        log = self._scopes.get(scope)
        if log is None:
            log = self._scopes[scope] = _ScopeLog()
        event_id = next(self._ids)
        log.ids.append(event_id)
        log.streams.append(stream)
        log.data.append(data)
        if len(log) > self._max_events:
            log.evict_oldest()
        return event_id

    async def stream_of(self, scope: str, event_id: int) -> str | None:
        log = self._scopes.get(scope)
        if log is None:
            return None
        i = bisect_left(log.ids, event_id, lo=log.start)
        if i < len(log.ids) and log.ids[i] == event_id:
            return log.streams[i]
        return None

    async def read(self, scope: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        log = self._scopes.get(scope)
        if log is None:
            return []
        first = bisect_right(log.ids, after, lo=log.start)
        return [StoredEvent(log.ids[i], log.data[i]) for i in range(first, len(log.ids)) if log.streams[i] == stream]

    async def end_scope(self, scope: str) -> None:
        now = time.monotonic()
        self._ended.append((now + self._retention, scope))
        while self._ended and self._ended[0][0] <= now:
            self._scopes.pop(self._ended.popleft()[1], None)

    async def seal(self, scope: str) -> None:
        return None  # nothing is kept about a scope besides its events

    async def drop_scope(self, scope: str) -> None:
        self._scopes.pop(scope, None)

    # JobStore

    async def save_job(self, job: Job) -> None:
        self._jobs[job.id] = job.model_copy()

    async def get_job(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job.model_copy() if job is not None else None

    async def delete_job(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    async def list_jobs(self, *, status: JobStatus | None, owner: str | None, limit: int, offset: int) -> Sequence[Job]:
        matching = [
            job
            for job in reversed(self._jobs.values())
            if (status is None or job.status is status) and (owner is None or job.owner == owner)
        ]
        return [job.model_copy() for job in matching[offset : offset + limit]]

    async def unfinished_jobs(self) -> Sequence[Job]:
        return [job.model_copy() for job in self._jobs.values() if not job.status.is_final]
