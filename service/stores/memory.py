"""In-process storage: fast, bounded, and gone when the process exits.

It has no task of its own: what retention lets go is dropped as new things arrive, a few
at a time (each call does a bounded amount), so memory stays flat under a steady load.
"""

from __future__ import annotations

import heapq
import itertools
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict, deque
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from service.domain.jobs import JobRecord, JobStatus
from service.stores.base import Retention, StoredEvent, StoreStats, job_partition
from service.stores.stream_ends import StreamEnd, queue_end

__all__ = ["MemoryStorage"]

PURGE_STEP = 16
"""Expired things dropped at most per call that adds one: more than it adds, so the purge keeps up."""


class _StreamLog:
    """One stream's events in id order, in parallel lists; dropped entries sit before `start`."""

    __slots__ = ("data", "ids", "start")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.data: list[bytes | None] = []
        self.start = 0

    def __len__(self) -> int:
        return len(self.ids) - self.start

    def drop_first(self) -> int:
        """Drop the oldest event; return its payload's size."""
        size = len(self.data[self.start] or b"")
        self.start += 1
        if self.start > 1024 and self.start * 2 > len(self.ids):
            del self.ids[: self.start], self.data[: self.start]
            self.start = 0
        return size


class _PartitionLog:
    """One partition's streams, and which is oldest (for the cap), found in O(log streams)."""

    __slots__ = ("count", "oldest", "size", "streams")

    def __init__(self) -> None:
        self.streams: dict[str, _StreamLog] = {}
        self.oldest: list[tuple[int, str]] = []
        """A heap of (first id, stream); an entry whose stream no longer starts there is skipped."""
        self.count = 0
        self.size = 0
        """Payload bytes held."""

    def append(self, stream: str, event_id: int, data: bytes | None) -> None:
        log = self.streams.get(stream)
        if log is None:
            log = self.streams[stream] = _StreamLog()
            heapq.heappush(self.oldest, (event_id, stream))
            if len(self.oldest) > 2 * len(self.streams) + 16:  # many streams dropped since: forget their entries
                self.oldest = [(s.ids[s.start], name) for name, s in self.streams.items() if len(s)]
                heapq.heapify(self.oldest)
        log.ids.append(event_id)
        log.data.append(data)
        self.count += 1
        self.size += len(data or b"")

    def evict_oldest(self) -> None:
        while self.oldest:
            first, stream = heapq.heappop(self.oldest)
            log = self.streams.get(stream)
            if log is None or not len(log) or log.ids[log.start] != first:
                continue
            self._drop(stream, log)
            if len(log):
                heapq.heappush(self.oldest, (log.ids[log.start], stream))
            return

    def drop_through(self, stream: str, last: int) -> int:
        """Drop the stream's events up to id `last`; return how many went."""
        log = self.streams.get(stream)
        dropped = 0
        while log is not None and len(log) and log.ids[log.start] <= last:
            self._drop(stream, log)
            dropped += 1
        return dropped

    def _drop(self, stream: str, log: _StreamLog) -> None:
        self.size -= log.drop_first()
        self.count -= 1
        if not len(log):
            del self.streams[stream]


class MemoryStorage:
    """Keeps what `Retention` says, for the life of the process: use SQLite where a restart matters."""

    def __init__(self, *, max_events_per_partition: int, retention: Retention) -> None:
        self._max_events = max_events_per_partition
        self._retention = retention
        self._ids = itertools.count(1)
        self._partitions: dict[str, _PartitionLog] = {}
        self._ended: deque[tuple[float, str]] = deque()
        self._stream_ends: deque[StreamEnd] = deque()
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
        log.append(stream, event_id, data)
        self._events += 1
        self._bytes += len(data or b"")
        if log.count > self._max_events:
            size = log.size
            log.evict_oldest()
            self._events -= 1
            self._bytes -= size - log.size
        return event_id

    async def stream_of(self, partition: str, event_id: int) -> str | None:
        log = self._partitions.get(partition)
        if log is None:
            return None
        for stream, events in log.streams.items():
            if events.ids[events.start] <= event_id <= events.ids[-1]:
                i = bisect_left(events.ids, event_id, lo=events.start)
                if events.ids[i] == event_id:
                    return stream
        return None

    async def read(self, partition: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        log = self._partitions.get(partition)
        events = None if log is None else log.streams.get(stream)
        if events is None:
            return []
        first = bisect_right(events.ids, after, lo=events.start)
        return [StoredEvent(events.ids[i], events.data[i]) for i in range(first, len(events.ids))]

    async def end_stream(self, partition: str, stream: str, first: int, last: int) -> None:
        now = time.monotonic()
        queue_end(self._stream_ends, StreamEnd(partition, stream, first, last, now + self._retention.streams))
        self._purge_step(now, PURGE_STEP)

    async def end_partition(self, partition: str) -> None:
        now = time.monotonic()
        self._ended.append((now + self._retention.events, partition))
        self._purge_step(now, PURGE_STEP)

    async def seal(self, partition: str) -> None:
        return None  # nothing is kept about a partition besides its events

    async def stored(self) -> None:
        return None  # one process: its streams die with it

    # JobStore

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
        stream_ends = self._stream_ends
        while budget != 0 and stream_ends and stream_ends[0].expires <= now:
            removed += self._drop_stream(stream_ends.popleft())
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

    def _drop_stream(self, end: StreamEnd) -> int:
        log = self._partitions.get(end.partition)
        if log is None:
            return 0
        size = log.size
        dropped = log.drop_through(end.stream, end.last)
        self._events -= dropped
        self._bytes -= size - log.size
        if not log.count:
            del self._partitions[end.partition]
        return dropped

    def _drop_scope(self, partition: str) -> int:
        log = self._partitions.pop(partition, None)
        if log is None:
            return 0
        self._events -= log.count
        self._bytes -= log.size
        return log.count
