"""A `Storage` that measures the one it wraps: the latency of each call that waits for the backend, the failures
of every call, and, when tracing is configured, a span for each timed call."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

from service.domain.jobs import JobRecord, JobStatus
from service.stores.base import Storage, StoredEvent, StoreError, StoreStats
from service.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer  # the API, with the MCP SDK; spans only when tracing is configured

__all__ = ["MeasuredStorage"]

T = TypeVar("T")

TIMED = ("stream_of", "read", "get_job", "delete_job", "was_purged", "list_jobs", "unfinished_jobs", "purge", "stats")
"""The calls that wait for the backend. The writes (`append`, `save_job`, `seal`, `end_stream`, `end_partition`) are
queued by the SQLite and Redis stores and written behind, in batches: timing them would time a
queue, on the hot path (several per tool call); their failures are counted."""
QUEUED = ("append", "save_job", "seal", "end_stream", "end_partition")


class MeasuredStorage:
    """Delegates to `storage`; timed calls go to `store_operation_duration_seconds` (and get a span), failures
    of any call to `store_errors`."""

    def __init__(self, storage: Storage, metrics: Metrics, *, tracer: Tracer | None = None) -> None:
        self._storage = storage
        self._tracer = tracer
        self._backend = backend = metrics.backend
        # Children resolved once: `labels()` takes a lock and a lookup on every call.
        self._observe = {op: metrics.store_duration.labels(backend, op).observe for op in TIMED}
        self._failed = {op: metrics.store_errors.labels(backend, op).inc for op in (*TIMED, *QUEUED)}

    async def _measure(self, operation: str, call: Awaitable[T]) -> T:
        if self._tracer is None:
            return await self._timed(operation, call)
        attributes = {"db.system.name": self._backend, "db.operation.name": operation}
        with self._tracer.start_as_current_span(f"store {operation}", attributes=attributes):
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

    async def _queued(self, operation: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except StoreError:
            self._failed[operation]()
            raise

    async def append(self, partition: str, stream: str, data: bytes | None) -> int:
        return await self._queued("append", self._storage.append(partition, stream, data))

    async def stream_of(self, partition: str, event_id: int) -> str | None:
        return await self._measure("stream_of", self._storage.stream_of(partition, event_id))

    async def read(self, partition: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        return await self._measure("read", self._storage.read(partition, stream, after))

    async def end_stream(self, partition: str, stream: str, first: int, last: int) -> None:
        await self._queued("end_stream", self._storage.end_stream(partition, stream, first, last))

    async def end_partition(self, partition: str) -> None:
        await self._queued("end_partition", self._storage.end_partition(partition))

    async def seal(self, partition: str) -> None:
        await self._queued("seal", self._storage.seal(partition))

    async def stored(self) -> None:
        await self._storage.stored()

    async def save_job(self, job: JobRecord) -> None:
        await self._queued("save_job", self._storage.save_job(job))

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
