"""`SQLiteStorage`: the write-behind queue, the reads that merge it, retention steps, on a worker thread."""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import anyio
import anyio.to_thread

from service.domain.jobs import JobRecord, JobStatus
from service.stores.base import Retention, StoredEvent, StoreError, StoreStats, job_partition
from service.stores.sqlite import schema, statements
from service.stores.stream_ends import StreamEnd, queue_end
from service.stores.write_behind import WriteBehind

__all__ = ["SQLiteStorage"]

T = TypeVar("T")

_Row = tuple[int, str, str, bytes | None]

PURGE_INTERVAL = 1.0
"""Seconds between purge steps while there is nothing left to purge."""
CAP_INTERVAL = 10.0
"""Seconds between checks of `Retention.max_jobs`: counting the finished jobs walks an index."""
MAX_QUEUED = 20_000
"""Rows queued at most before `append` waits for the writer: a few tenths of a second of writing."""


@dataclass(slots=True)
class _Queued:
    """Writes waiting for the next flush."""

    rows: list[_Row] = field(default_factory=list)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    """Partitions whose owner is gone, with when their events go."""
    over_cap: set[str] = field(default_factory=set)
    """Partitions past `max_events_per_partition`: the batch trims them."""

    def __bool__(self) -> bool:
        return bool(self.rows or self.jobs or self.ended)

    def take(self, later: _Queued) -> None:
        self.rows += later.rows
        self.jobs.update(later.jobs)
        self.ended.update(later.ended)
        self.over_cap |= later.over_cap


class SQLiteStorage:
    def __init__(
        self,
        path: Path,
        *,
        max_events_per_partition: int,
        retention: Retention,
        flush_interval: float = 0.05,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._path = path
        self._max_queued = max_queued
        self._max_events = max_events_per_partition
        self._retention = retention
        self._flush_interval = flush_interval
        # Two connections, each used by one thread at a time: WAL lets reads go on during a write.
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(1)
        self._next_id = 1
        self._writes = WriteBehind(_Queued)
        self._stream_ends: deque[StreamEnd] = deque()
        """Ended streams of live sessions, by expiry. In memory only, as the sessions are: a restart ends every
        session (`statements.end_orphaned_partitions`), and what they held goes `Retention.events` later."""
        self._counts: dict[str, int] = {}  # events appended per open partition, to enforce the cap
        self._stack = AsyncExitStack()
        self._purged_through = ""
        self._next_cap_check = 0.0
        self._stored_events = 0
        """Rows of the events table: counted once at open, then kept by the writer (a COUNT scans them all)."""

    async def __aenter__(self) -> Self:
        await self._run(self._open)
        try:
            async with AsyncExitStack() as stack:
                task_group = await stack.enter_async_context(anyio.create_task_group())
                task_group.start_soon(self._flush_forever)
                stack.callback(task_group.cancel_scope.cancel)
                self._stack = stack.pop_all()
        except BaseException:
            await self._run(self._close)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()
        with anyio.CancelScope(shield=True):
            try:
                await self.flush()
            finally:
                await self._run(self._close)

    # EventLog

    async def append(self, partition: str, stream: str, data: bytes | None) -> int:
        writes = self._writes
        if writes.failure is not None:
            raise writes.failure
        rows = writes.queued.rows
        event_id = self._next_id
        self._next_id += 1
        rows.append((event_id, partition, stream, data))
        count = self._counts[partition] = self._counts.get(partition, 0) + 1
        if count > self._max_events:
            writes.queued.over_cap.add(partition)
        if len(rows) >= self._max_queued:
            await self._write_queued()  # the queue is full: wait for the writer (the id is this row's already)
        return event_id

    async def stream_of(self, partition: str, event_id: int) -> str | None:
        for row_id, row_partition, row_stream, _ in self._pending():
            if row_id == event_id:
                return row_stream if row_partition == partition else None

        def query(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT stream FROM events WHERE id = ? AND partition = ?", (event_id, partition)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._read_db(query)

    async def read(self, partition: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        # Rows not yet written are taken from memory, so a read never waits for (or on) a write.
        # The snapshot comes first: a row written meanwhile is then found twice, and kept once.
        pending = [
            StoredEvent(row_id, data)
            for row_id, row_partition, row_stream, data in self._pending()
            if row_id > after and row_partition == partition and row_stream == stream
        ]

        def query(db: sqlite3.Connection) -> list[StoredEvent]:
            rows = db.execute(
                "SELECT id, data FROM events WHERE partition = ? AND id > ? AND stream = ? ORDER BY id",
                (partition, after, stream),
            )
            return [StoredEvent(event_id, data) for event_id, data in rows]

        stored = await self._read_db(query)
        if not pending:
            return stored
        written = {event.id for event in stored}
        return stored + [event for event in pending if event.id not in written]

    async def end_stream(self, partition: str, stream: str, first: int, last: int) -> None:
        queue_end(self._stream_ends, StreamEnd(partition, stream, first, last, time.time() + self._retention.streams))

    async def end_partition(self, partition: str) -> None:
        self._writes.queued.ended[partition] = time.time() + self._retention.events
        self._counts.pop(partition, None)

    async def seal(self, partition: str) -> None:
        self._counts.pop(partition, None)

    async def stored(self) -> None:
        return None  # one process: a stream it was serving is not resumed after it crashed (its session is gone)

    # JobStore

    async def save_job(self, job: JobRecord) -> None:
        self._writes.queued.jobs[job.id] = job.model_copy()

    async def get_job(self, job_id: str) -> JobRecord | None:
        if (job := self._writes.queued.jobs.get(job_id) or self._writes.writing.jobs.get(job_id)) is not None:
            return job.model_copy()

        def query(db: sqlite3.Connection) -> JobRecord | None:
            row = db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return None if row is None else JobRecord.model_validate_json(row[0])

        return await self._read_db(query)

    async def delete_job(self, job_id: str) -> None:
        # Rare (a DELETE over REST): written at once rather than through the queue.
        self._counts.pop(job_partition(job_id), None)
        await self.flush()
        self._stored_events -= await self._run_db(lambda db: statements.delete_job(db, job_id))

    async def was_purged(self, job_id: str) -> bool:
        return job_id <= self._purged_through

    async def list_jobs(
        self, *, status: JobStatus | None, owner: str | None, limit: int, offset: int
    ) -> Sequence[JobRecord]:
        await self.flush()
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        sql = "SELECT body FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"

        def query(db: sqlite3.Connection) -> list[JobRecord]:
            return [JobRecord.model_validate_json(body) for (body,) in db.execute(sql, (*params, limit, offset))]

        return await self._read_db(query)

    async def unfinished_jobs(self) -> Sequence[JobRecord]:
        await self.flush()

        def query(db: sqlite3.Connection) -> list[JobRecord]:
            rows = db.execute("SELECT body FROM jobs WHERE status IN ('pending', 'running')")
            return [JobRecord.model_validate_json(body) for (body,) in rows]

        return await self._read_db(query)

    # Writing

    def _pending(self) -> list[_Row]:
        return [*self._writes.writing.rows, *self._writes.queued.rows]

    async def flush(self) -> None:
        """Write everything queued so far; raise `StoreError` if the database refuses it.

        While writes are failing this raises at once rather than wait on the database again:
        the background flusher keeps retrying, and clears the failure when a write succeeds.
        """
        self._writes.raise_failure()
        await self._write_queued()

    async def _write_queued(self) -> None:
        await self._writes.write(self._write_batch, None)

    async def _write_batch(self, batch: _Queued) -> tuple[None, None]:
        rows, jobs, ended = batch.rows, batch.jobs, batch.ended
        trim = {partition: self._counts.get(partition, 0) for partition in batch.over_cap}

        def write(db: sqlite3.Connection) -> tuple[int, dict[str, int]]:
            with db:
                statements.execute_in_chunks(
                    db, "INSERT INTO events (id, partition, stream, data) VALUES (?, ?, ?, ?)", rows
                )
                statements.execute_in_chunks(
                    db,
                    "INSERT OR REPLACE INTO jobs (id, status, owner, created_at, body, finished)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        (
                            j.id,
                            j.status.value,
                            j.owner,
                            j.created_at.isoformat(),
                            j.model_dump_json(),
                            j.finished_at.timestamp() if j.finished_at and j.status.is_final else None,
                        )
                        for j in jobs.values()
                    ),
                )
                db.executemany(
                    "INSERT OR REPLACE INTO ended_partitions (partition, expires_at) VALUES (?, ?)", ended.items()
                )
                trimmed, counts = 0, dict[str, int]()
                for partition in trim:
                    trimmed += db.execute(
                        "DELETE FROM events WHERE partition = ? AND id <="
                        " (SELECT id FROM events WHERE partition = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (partition, partition, self._max_events),
                    ).rowcount
                    # Ended streams may have taken many of its events since: count what is left.
                    (counts[partition],) = db.execute(
                        "SELECT COUNT(*) FROM events WHERE partition = ?", (partition,)
                    ).fetchone()
            return len(rows) - trimmed, counts

        # A failure keeps the batch for the next attempt, ahead of anything queued meanwhile (`WriteBehind`).
        written, counts = await self._run_db(write)
        self._stored_events += written
        for partition, count in counts.items():
            if partition in self._counts:  # appended since the trim began: counted already
                self._counts[partition] += count - trim[partition]
        return None, None

    # Retention

    async def purge(self) -> int:
        await self.flush()
        removed = 0
        while step := await self._purge_step():
            removed += step
        return removed

    async def _purge_step(self) -> int:
        """One bounded transaction of purging; returns the jobs and events it removed (0: nothing left)."""
        retention = self._retention
        cap = None
        if retention.max_jobs is not None and time.monotonic() >= self._next_cap_check:
            cap = retention.max_jobs

        now = time.time()
        due: list[StreamEnd] = []
        while self._stream_ends and self._stream_ends[0].expires <= now and len(due) < statements.PURGE_BATCH:
            due.append(self._stream_ends.popleft())

        def purge(db: sqlite3.Connection) -> tuple[int, int, str, int]:
            with db:
                jobs, events, newest = statements.purge_jobs(db, before=now - retention.jobs, cap=cap)
                events += statements.purge_ended_partitions(db, now)
                dropped, done = statements.drop_ended_streams(db, due)
            return jobs, events + dropped, newest, done

        try:
            jobs, events, newest, done = await self._run_db(purge)
        except StoreError:
            self._stream_ends.extendleft(reversed(due))
            raise
        self._stream_ends.extendleft(reversed(due[done:]))  # the step's budget ran out before them
        if cap is not None and jobs < statements.PURGE_BATCH:  # under the cap again: the next check can wait
            self._next_cap_check = time.monotonic() + CAP_INTERVAL
        self._stored_events -= events
        self._purged_through = max(self._purged_through, newest)
        return jobs + events

    async def stats(self) -> StoreStats:
        def count_jobs(db: sqlite3.Connection) -> int:
            # Cheap: retention bounds the table (SERVICE_MAX_STORED_JOBS).
            (jobs,) = db.execute("SELECT COUNT(*) FROM jobs").fetchone()
            return int(jobs)

        stored_jobs = await self._read_db(count_jobs)
        files = (self._path, self._path.with_name(self._path.name + "-wal"))
        return StoreStats(
            jobs=stored_jobs,  # as of the last flush: a queued save may be a new job or an update
            events=self._stored_events + len(self._writes.writing.rows) + len(self._writes.queued.rows),
            bytes=sum(path.stat().st_size for path in files if path.exists()),
        )

    async def _flush_forever(self) -> None:
        next_purge = 0.0
        while True:
            await anyio.sleep(self._flush_interval)
            try:
                await self._write_queued()
                if time.monotonic() >= next_purge:
                    more = await self._purge_step()
                    # While there is more, a step follows each flush; then one a second.
                    next_purge = 0.0 if more else time.monotonic() + PURGE_INTERVAL
            except StoreError:
                continue  # the latched failure makes appenders report it; keep retrying.

    # Plumbing

    async def _run(self, func: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)

    async def _run_db(self, func: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(func, self._db, self._limiter)

    async def _read_db(self, func: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(func, self._reader, self._read_limiter)

    async def _call(
        self, func: Callable[[sqlite3.Connection], T], db: sqlite3.Connection | None, limiter: anyio.CapacityLimiter
    ) -> T:
        if db is None:
            raise StoreError("the SQLite store is not open")

        def call() -> T:
            try:
                return func(db)
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite: {exc}") from exc

        return await anyio.to_thread.run_sync(call, limiter=limiter)

    def _open(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA busy_timeout = 1000")
            schema.rename_scopes(db)
            db.executescript(schema.SCHEMA)
            schema.migrate(db)
            statements.end_orphaned_partitions(db, expires_at=time.time() + self._retention.events)
            purged = db.execute("SELECT value FROM meta WHERE key = 'purged_through'").fetchone()
            (events,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
            # sqlite_sequence remembers the largest id ever written, even once it was purged.
            (last,) = db.execute(
                "SELECT MAX(COALESCE((SELECT MAX(id) FROM events), 0),"
                " COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))"
            ).fetchone()
            reader = sqlite3.connect(self._path, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite store at {self._path}: {exc}") from exc
        self._db, self._reader = db, reader
        self._next_id = int(last) + 1
        self._purged_through = str(purged[0]) if purged else ""
        self._stored_events = int(events)

    def _close(self) -> None:
        for db in (self._db, self._reader):
            if db is not None:
                db.close()
        self._db = self._reader = None
