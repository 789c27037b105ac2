"""A `Storage` that times every operation of the one it wraps, for the store latency metrics (and traces it,
when tracing is configured)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import Self, TypeVar

from opentelemetry.trace import Tracer

from service.jobs.models import JobRecord, JobStatus
from service.stores.base import Storage, StoredEvent, StoreError, StoreStats
from service.telemetry.metrics import Metrics

__all__ = ["MeasuredStorage"]

T = TypeVar("T")

OPERATIONS = (
    "append",
    "stream_of",
    "read",
    "end_partition",
    "seal",
    "save_job",
    "get_job",
    "delete_job",
    "was_purged",
    "list_jobs",
    "unfinished_jobs",
    "purge",
    "stats",
)


UNTRACED = frozenset({"append"})
"""One per event: a span each would outnumber everything else in a trace (the job's span counts them)."""


class MeasuredStorage:
    """Delegates to `storage`; each call's time goes to `store_operation_duration_seconds`, each failure to
    `store_errors`. A write-behind store's writes are timed as the store sees them: the time to queue."""

    def __init__(self, storage: Storage, metrics: Metrics, *, tracer: Tracer | None = None) -> None:
        self._storage = storage
        self._tracer = tracer
        self._backend = metrics.backend
        backend = metrics.backend
        # Children resolved once: `labels()` takes a lock and a lookup on every call.
        self._observe = {op: metrics.store_duration.labels(backend, op).observe for op in OPERATIONS}
        self._failed = {op: metrics.store_errors.labels(backend, op).inc for op in OPERATIONS}

    async def _measure(self, operation: str, call: Awaitable[T]) -> T:
        if self._tracer is not None and operation not in UNTRACED:
            attributes = {"db.system.name": self._backend, "db.operation.name": operation}
            with self._tracer.start_as_current_span(f"store {operation}", attributes=attributes):
                return await self._timed(operation, call)
        return await self._timed(operation, call)

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        start = time.perf_counter()
        try:
            return await call
        except StoreError:
            self._failed[operation]()
            raise
        finally:
            self._observe[operation](time.perf_counter() - start)

    async def append(self, partition: str, stream: str, data: bytes | None) -> int:
        return await self._measure("append", self._storage.append(partition, stream, data))

    async def stream_of(self, partition: str, event_id: int) -> str | None:
        return await self._measure("stream_of", self._storage.stream_of(partition, event_id))

    async def read(self, partition: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        return await self._measure("read", self._storage.read(partition, stream, after))

    async def end_partition(self, partition: str) -> None:
        await self._measure("end_partition", self._storage.end_partition(partition))

    async def seal(self, partition: str) -> None:
        await self._measure("seal", self._storage.seal(partition))

    def new_job_id(self) -> str:
        return self._storage.new_job_id()

    async def save_job(self, job: JobRecord) -> None:
        await self._measure("save_job", self._storage.save_job(job))

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self._measure("get_job", self._storage.get_job(job_id))

    async def delete_job(self, job_id: str) -> None:
        await self._measure("delete_job", self._storage.delete_job(job_id))

    async def was_purged(self, job_id: str) -> bool:
        return await self._measure("was_purged", self._storage.was_purged(job_id))

    async def list_jobs(
        self, *, status: JobStatus | None, owner: str | None, limit: int, offset: int
    ) -> Sequence[JobRecord]:
        listed = self._storage.list_jobs(status=status, owner=owner, limit=limit, offset=offset)
        return await self._measure("list_jobs", listed)

    async def unfinished_jobs(self) -> Sequence[JobRecord]:
        return await self._measure("unfinished_jobs", self._storage.unfinished_jobs())

    async def purge(self) -> int:
        return await self._measure("purge", self._storage.purge())

    async def stats(self) -> StoreStats:
        return await self._measure("stats", self._storage.stats())

    async def __aenter__(self) -> Self:
        await self._storage.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._storage.__aexit__(exc_type, exc, tb)
