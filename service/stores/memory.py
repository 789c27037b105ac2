"""In-process storage: fast, bounded, and gone when the process exits.

It has no task of its own: what retention lets go is dropped as new things arrive, a few
at a time (each call does a bounded amount), so memory stays flat under a steady load.
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict, deque
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from service.jobs.models import JobRecord, JobStatus, new_job_id
from service.stores.base import Retention, StoredEvent, StoreStats, job_partition

__all__ = ["MemoryStorage"]

PURGE_STEP = 16
"""Expired things dropped at most per call that adds one: more than it adds, so the purge keeps up."""


class _PartitionLog:
    """One partition's events in id order, in parallel lists; evicted entries sit before `start`."""

    __slots__ = ("data", "ids", "size", "start", "streams")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.streams: list[str] = []
        self.data: list[bytes | None] = []
        self.start = 0
        self.size = 0
        """Payload bytes held."""

    def __len__(self) -> int:
        return len(self.ids) - self.start

    def evict_oldest(self) -> None:
        self.size -= len(self.data[self.start] or b"")
        self.start += 1
        if self.start > 1024 and self.start * 2 > len(self.ids):
            del self.ids[: self.start], self.streams[: self.start], self.data[: self.start]
            self.start = 0


class MemoryStorage:
    """Keeps what `Retention` says, for the life of the process: use SQLite where a restart matters."""

    def __init__(self, *, max_events_per_partition: int, retention: Retention) -> None:
        self._max_events = max_events_per_partition
        self._retention = retention
        self._ids = itertools.count(1)
        self._partitions: dict[str, _PartitionLog] = {}
        self._ended: deque[tuple[float, str]] = deque()
        self._jobs: dict[str, JobRecord] = {}
        self._finished: OrderedDict[str, float] = OrderedDict()
        """Finished jobs in the order they finished, with the time they expire."""
        self._purged_through = ""
        self._events = 0
        self._bytes = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    # EventLog

    async def append(self, partition: str, stream: str, data: bytes | None) -> int:
        log = self._partitions.get(partition)
        if log is None:
            log = self._partitions[partition] = _PartitionLog()
        event_id = next(self._ids)
        log.ids.append(event_id)
        log.streams.append(stream)
        log.data.append(data)
        log.size += len(data or b"")
        self._events += 1
        self._bytes += len(data or b"")
        if len(log) > self._max_events:
            size = log.size
            log.evict_oldest()
            self._events -= 1
            self._bytes -= size - log.size
        return event_id

    async def stream_of(self, partition: str, event_id: int) -> str | None:
        log = self._partitions.get(partition)
        if log is None:
            return None
        i = bisect_left(log.ids, event_id, lo=log.start)
        if i < len(log.ids) and log.ids[i] == event_id:
            return log.streams[i]
        return None

    async def read(self, partition: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        log = self._partitions.get(partition)
        if log is None:
            return []
        first = bisect_right(log.ids, after, lo=log.start)
        return [StoredEvent(log.ids[i], log.data[i]) for i in range(first, len(log.ids)) if log.streams[i] == stream]

    async def end_partition(self, partition: str) -> None:
        now = time.monotonic()
        self._ended.append((now + self._retention.events, partition))
        self._purge_step(now, PURGE_STEP)

    async def seal(self, partition: str) -> None:
        return None  # nothing is kept about a partition besides its events

    # JobStore

    def new_job_id(self) -> str:
        return new_job_id()

    async def save_job(self, job: JobRecord) -> None:
        self._jobs[job.id] = job.model_copy()
        if job.status.is_final and job.id not in self._finished:
            now = time.monotonic()
            self._finished[job.id] = now + self._retention.jobs
            self._purge_step(now, PURGE_STEP)

    async def get_job(self, job_id: str) -> JobRecord | None:
        now = time.monotonic()
        self._purge_step(now, PURGE_STEP)  # a quiet service has nothing else to purge on
        expires = self._finished.get(job_id)
        if expires is not None and expires <= now:  # expired, not yet reached by the purge
            self._drop_job(job_id)
        job = self._jobs.get(job_id)
        return job.model_copy() if job is not None else None

    async def delete_job(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self._finished.pop(job_id, None)
        self._drop_scope(job_partition(job_id))

    async def was_purged(self, job_id: str) -> bool:
        return job_id <= self._purged_through

    async def list_jobs(
        self, *, status: JobStatus | None, owner: str | None, limit: int, offset: int
    ) -> Sequence[JobRecord]:
        now = time.monotonic()
        self._purge_step(now, PURGE_STEP)
        matching = [
            job
            for job in reversed(self._jobs.values())
            if (status is None or job.status is status)
            and (owner is None or job.owner == owner)
            and self._finished.get(job.id, now + 1) > now  # expired ones the purge has not reached yet
        ]
        return [job.model_copy() for job in matching[offset : offset + limit]]

    async def unfinished_jobs(self) -> Sequence[JobRecord]:
        return [job.model_copy() for job in self._jobs.values() if not job.status.is_final]

    # Retention

    async def purge(self) -> int:
        return self._purge_step(time.monotonic(), None)

    async def stats(self) -> StoreStats:
        return StoreStats(jobs=len(self._jobs), events=self._events, bytes=self._bytes)

    def _purge_step(self, now: float, limit: int | None) -> int:
        """Drop up to `limit` expired partitions and jobs (all if None); return how many events and jobs went."""
        removed = 0
        budget = limit if limit is not None else -1
        ended, finished, cap = self._ended, self._finished, self._retention.max_jobs
        while budget != 0 and ended and ended[0][0] <= now:
            removed += self._drop_scope(ended.popleft()[1])
            budget -= 1
        while budget != 0 and finished:
            job_id, expires = next(iter(finished.items()))
            if expires > now and (cap is None or len(finished) <= cap):
                break
            removed += self._drop_job(job_id)
            budget -= 1
        return removed

    def _drop_job(self, job_id: str) -> int:
        """Purge one finished job and its log; return how many things went."""
        del self._finished[job_id]
        self._jobs.pop(job_id, None)
        self._purged_through = max(self._purged_through, job_id)
        return 1 + self._drop_scope(job_partition(job_id))

    def _drop_scope(self, partition: str) -> int:
        log = self._partitions.pop(partition, None)
        if log is None:
            return 0
        self._events -= len(log)
        self._bytes -= log.size
        return len(log)
