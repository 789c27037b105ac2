"""Durable storage in one SQLite file (WAL), the service's default.

`append` is awaited inline for every message the MCP transport sends, so it must not
touch the disk. It assigns the id and queues the row; a flusher task writes the queue
in one transaction every `flush_interval` seconds, on a worker thread. The durability
window is therefore `flush_interval`: a crash (not a clean shutdown, which flushes)
can lose the events of the last interval. A producer faster than the disk (a job with no
interval sends ~30,000 notifications a second, two rows each) would make the queue, the
window and what every read scans grow without bound: past `max_queued` rows, `append`
waits for the writer, so producers go at the disk's pace. Reads merge the rows still
queued with what the database returns, so they see every event appended before them and
never wait on a write.

If a write fails (disk full, database locked), the rows stay queued and are retried,
and `append` raises `StoreError` until a write succeeds again, so the failure reaches
the caller instead of growing memory (`service.stores.write_behind`, shared with Redis).

Retention runs on the same worker thread, between flushes: every `PURGE_INTERVAL` seconds
a step deletes at most `PURGE_BATCH` expired jobs (with their logs), `PURGE_BATCH` events of
expired sessions and `STREAM_PURGE_BATCH` events of the streams of live sessions that ended
(`end_stream`; their ends are kept in memory, as the sessions are), in one short
transaction, and the next step follows at the next flush while there is more. The cap on
finished jobs is checked every `CAP_INTERVAL` seconds, so the store may hold that many
seconds of jobs beyond it. Deleted pages go to SQLite's free list and are reused, so the
file stops growing once retention is reached. (Incremental auto-vacuum would give them back
to the file system, only for the file to grow again, at a cost on every write.)
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import anyio
import anyio.to_thread

from service.domain.jobs import JobRecord, JobStatus
from service.stores.base import JOB_LOG_PREFIX, Retention, StoredEvent, StoreError, StoreStats, job_partition
from service.stores.stream_ends import StreamEnd, queue_end
from service.stores.write_behind import WriteBehind

__all__ = ["SQLiteStorage"]

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partition TEXT NOT NULL,
    stream TEXT NOT NULL,
    data BLOB
);
CREATE INDEX IF NOT EXISTS events_by_partition ON events (partition, id);
CREATE TABLE IF NOT EXISTS ended_partitions (
    partition TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    owner TEXT,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Databases from before retention have no `finished` column: it is added, and filled from
# each job's body, at the next open.
FINISHED_COLUMN = """
ALTER TABLE jobs ADD COLUMN finished REAL;
UPDATE jobs SET finished = (julianday(json_extract(body, '$.finished_at')) - 2440587.5) * 86400.0
    WHERE status NOT IN ('pending', 'running');
"""
FINISHED_INDEX = "CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs (finished) WHERE finished IS NOT NULL"

_Row = tuple[int, str, str, bytes | None]

WRITE_CHUNK = 32
"""Rows per `executemany` call in a flush (see `_execute_in_chunks`)."""
PURGE_INTERVAL = 1.0
"""Seconds between purge steps while there is nothing left to purge."""
PURGE_BATCH = 256
"""Jobs, and session events, deleted at most by one purge step (one transaction)."""
STREAM_PURGE_BATCH = 1024
"""Events of ended streams deleted at most by one purge step: a busy session ends a stream per call."""
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
        session (`_end_orphaned_partitions`), and what they held goes `Retention.events` later."""
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
        self._stored_events -= await self._run_db(lambda db: _delete_job(db, job_id))

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
                _execute_in_chunks(db, "INSERT INTO events (id, partition, stream, data) VALUES (?, ?, ?, ?)", rows)
                _execute_in_chunks(
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
        while self._stream_ends and self._stream_ends[0].expires <= now and len(due) < PURGE_BATCH:
            due.append(self._stream_ends.popleft())

        def purge(db: sqlite3.Connection) -> tuple[int, int, str, int]:
            with db:
                jobs, events, newest = _purge_jobs(db, before=now - retention.jobs, cap=cap)
                events += _purge_ended_partitions(db, now)
                dropped, done = _drop_ended_streams(db, due)
            return jobs, events + dropped, newest, done

        try:
            jobs, events, newest, done = await self._run_db(purge)
        except StoreError:
            self._stream_ends.extendleft(reversed(due))
            raise
        self._stream_ends.extendleft(reversed(due[done:]))  # the step's budget ran out before them
        if cap is not None and jobs < PURGE_BATCH:  # under the cap again: the next check can wait
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
            _rename_scopes(db)
            db.executescript(SCHEMA)
            _migrate(db)
            _end_orphaned_partitions(db, expires_at=time.time() + self._retention.events)
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


def _execute_in_chunks(db: sqlite3.Connection, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
    """`executemany` in chunks, offering the core (and the GIL) to the event loop's thread between them.

    Where the loop and this thread share one core, a flush written in one go delays the
    request in flight by all of it (about 1.5 ms at 800 calls/s): that was the p99 of a
    lightly loaded server. In chunks, the loop takes its turn between them when it has
    work, and the flush goes straight on when it has none.
    """
    remaining = iter(rows)
    while chunk := list(itertools.islice(remaining, WRITE_CHUNK)):
        db.executemany(sql, chunk)
        if hasattr(os, "sched_yield"):
            os.sched_yield()


def _rename_scopes(db: sqlite3.Connection) -> None:
    """Databases from before partitions had their name called them scopes: rename, in place."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    if "scope" not in columns:
        return
    with db:
        db.execute("ALTER TABLE events RENAME COLUMN scope TO partition")
        db.execute("DROP INDEX IF EXISTS events_by_scope")  # SCHEMA builds events_by_partition
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ended_scopes'").fetchone():
            db.execute("ALTER TABLE ended_scopes RENAME TO ended_partitions")
            db.execute("ALTER TABLE ended_partitions RENAME COLUMN scope TO partition")


def _migrate(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "finished" not in columns:
        with db:
            for statement in FINISHED_COLUMN.strip().split(";\n"):
                db.execute(statement)
    db.execute(FINISHED_INDEX)


def _end_orphaned_partitions(db: sqlite3.Connection, *, expires_at: float) -> None:
    """Sessions live in one process: any session partition found at open was left by one that crashed."""
    with db:
        db.execute(
            "INSERT OR IGNORE INTO ended_partitions (partition, expires_at)"
            " SELECT DISTINCT partition, ? FROM events WHERE partition NOT LIKE ? || '%'",
            (expires_at, JOB_LOG_PREFIX),
        )


def _delete_job(db: sqlite3.Connection, job_id: str) -> int:
    """Delete one job and its log; return the events deleted."""
    with db:
        events = db.execute("DELETE FROM events WHERE partition = ?", (job_partition(job_id),)).rowcount
        db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    return events


# The jobs one purge step takes: the oldest finished, expired ones (or, beyond the cap, the oldest
# at all). Each statement below runs whole inside SQLite, in one call that releases the GIL once:
# deleting job by job (`executemany`) handed the GIL back and forth with the event loop's thread
# hundreds of times a step, and that cost the loop more than the deletes cost the writer.
_EXPIRED = "SELECT id FROM jobs WHERE finished IS NOT NULL AND finished <= :before ORDER BY finished LIMIT :limit"
_OLDEST = "SELECT id FROM jobs WHERE finished IS NOT NULL ORDER BY finished LIMIT :limit"


def _purge_jobs(db: sqlite3.Connection, *, before: float, cap: int | None) -> tuple[int, int, str]:
    """Up to `PURGE_BATCH` finished jobs that expired, or are the oldest beyond the cap, with their logs.

    Returns the jobs and the events deleted, and the newest id among the jobs.
    """
    taken, batch = _EXPIRED, {"before": before, "limit": PURGE_BATCH}
    if cap is not None:
        (finished,) = db.execute("SELECT COUNT(*) FROM jobs WHERE finished IS NOT NULL").fetchone()
        if finished > cap:  # the oldest beyond the cap go, expired or not (the expired are older still)
            taken, batch = _OLDEST, {"limit": min(PURGE_BATCH, finished - cap)}
    (newest,) = db.execute(f"SELECT max(id) FROM ({taken})", batch).fetchone()
    if newest is None:
        return 0, 0, ""
    events = db.execute(
        f"DELETE FROM events WHERE partition IN (SELECT '{JOB_LOG_PREFIX}' || id FROM ({taken}))", batch
    ).rowcount
    jobs = db.execute(f"DELETE FROM jobs WHERE id IN ({taken})", batch).rowcount
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('purged_through', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        (newest,),
    )
    return jobs, events, str(newest)


def _purge_ended_partitions(db: sqlite3.Connection, now: float) -> int:
    """Up to `PURGE_BATCH` events of sessions whose retention ran out; a partition is forgotten once it is empty."""
    # CROSS JOIN makes the (few) ended partitions the outer loop: left to itself, SQLite scanned
    # the whole events index for ended partitions, at every step.
    removed = db.execute(
        "DELETE FROM events WHERE id IN (SELECT events.id FROM ended_partitions CROSS JOIN events"
        " ON events.partition = ended_partitions.partition WHERE ended_partitions.expires_at <= ? LIMIT ?)",
        (now, PURGE_BATCH),
    ).rowcount
    if removed < PURGE_BATCH:
        db.execute(
            "DELETE FROM ended_partitions WHERE expires_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM events WHERE events.partition = ended_partitions.partition)",
            (now,),
        )
    return removed


def _drop_ended_streams(db: sqlite3.Connection, ends: Sequence[StreamEnd]) -> tuple[int, int]:
    """Up to `STREAM_PURGE_BATCH` events of these ended streams; returns them, and how many ends went whole.

    Each end names its stream's first and last id, so a delete reads that range of its
    partition's index, never the whole partition (a long job's stream may sit beside it).
    """
    budget = STREAM_PURGE_BATCH
    for done, end in enumerate(ends):
        budget -= db.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM events"
            " WHERE partition = ? AND id BETWEEN ? AND ? AND stream = ? LIMIT ?)",
            (end.partition, end.first, end.last, end.stream, budget),
        ).rowcount
        if budget == 0:
            return STREAM_PURGE_BATCH, done  # this one may have more: it goes again
    return STREAM_PURGE_BATCH - budget, len(ends)
