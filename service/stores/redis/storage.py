"""The Redis store's event log and job records (`Storage`), and the store as its callers open it.

Retention: a session's stream expires `Retention.events` seconds after its last append
(every append renews it, and `end_partition` sets it), and is trimmed to
`max_events_per_partition` on every append. An ended stream of a live session is recorded in
the same script as the events it follows, with its expiry; the writer drops its events when
that comes (`DROP_ENDED`, in bounded steps), reading only its ids' range of the partition.
Finished jobs go in the purge, which every replica runs once a second: one script claims a
batch of expired (or over the cap) ids in `{jobs}`, then each job's keys are deleted in its
own slot. Records and logs also carry a late expiry of their own, in case a purge never
reaches them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

import anyio
from redis.asyncio.cluster import RedisCluster

from service.domain.jobs import JobRecord, JobStatus, new_runner_id
from service.domain.notifications import Notification
from service.stores.base import (
    JOB_LOG_PREFIX,
    Admission,
    Retention,
    Runner,
    SessionRecord,
    StoredEvent,
    StoreError,
    StoreStats,
)
from service.stores.redis import scripts
from service.stores.redis.board import RedisBoard
from service.stores.redis.keys import Keys
from service.stores.redis.relay import RedisRelay
from service.stores.redis.writer import Writer, micros
from service.stores.stream_ends import StreamEnd, queue_end

__all__ = ["RedisStorage"]

logger = logging.getLogger(__name__)

PURGE_INTERVAL = 1.0
PURGE_BATCH = 256
DROP_BUDGET = 1024
"""Events of ended streams one `DROP_ENDED` reads at most: Redis serves nothing else while a script runs."""


class RedisStorage:
    """`Storage` on one Redis (or Redis Cluster), shared by every replica, with this replica's board and relay.

    It is a `JobBoard` and a `SessionRelay` too, handing each call to `job_board` or
    `session_relay`, for a caller that holds the store alone (a test's engine); `create_stores`
    hands out those two.
    """

    leased = True

    def __init__(
        self,
        url: str,
        *,
        max_events_per_partition: int,
        retention: Retention,
        prefix: str = "mns",
        replica: str = "",
        runner: str = "",
        idle_horizon: float = 1800.0,
        lease_ttl: float = 3.0,
        flush_interval: float = 0.002,
        stats_cache: float = 5.0,
    ) -> None:
        self._retention = retention
        self.replica = replica
        self.runner = runner or new_runner_id()
        """The engine this store leases jobs to (`JobEngine.runner_id`)."""
        self._keys = keys = Keys(prefix)
        self._writer = writer = Writer(
            url,
            keys,
            max_events_per_partition=max_events_per_partition,
            retention=retention,
            open_ttl=round((retention.events + idle_horizon) * 1000),
            lease_ms=round(lease_ttl * 1000),
        )
        self._writes = writer.writes
        self._flush_interval = flush_interval
        self._stack = AsyncExitStack()
        self._stats: tuple[float, StoreStats] | None = None
        self._stats_cache = stats_cache
        """Seconds `stats` reuses its count: counting walks every stream, and health probes ask often."""
        self._ends_due: dict[str, float] = {}
        """When the next ended stream of each session written here expires (wall clock, seconds)."""
        sessions: set[str] = set()
        self.job_board = RedisBoard(
            writer, runner=self.runner, replica=replica, retention=retention, local_sessions=sessions
        )
        self.session_relay = RedisRelay(writer, self.job_board, replica=replica, sessions=sessions)

    # Lifecycle

    async def __aenter__(self) -> Self:
        await self._writer.connect()
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self._writer.aclose)
            task_group = await stack.enter_async_context(anyio.create_task_group())
            task_group.start_soon(self._flush_forever)
            stack.callback(task_group.cancel_scope.cancel)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            self.job_board.give_up_shares()
            try:
                await self._writer.retry()
            except StoreError as error:
                logger.error("Redis store closed with writes it could not make: %s", error)
        await self._stack.aclose()

    async def flush(self) -> None:
        """Send everything queued so far; raise `StoreError` if Redis refuses it (it stays queued)."""
        await self._writer.flush()

    async def _flush_forever(self) -> None:
        wake = self._writes.wake
        next_purge = time.monotonic() + PURGE_INTERVAL
        while True:
            with anyio.move_on_after(max(0.0, next_purge - time.monotonic())):
                await wake.wait()
                await anyio.sleep(self._flush_interval)  # let the writes of this moment join the batch
            wake.clear()
            try:
                await self._writer.retry()
            except StoreError:  # the latched failure makes appenders report it; retry, without spinning
                await anyio.sleep(0.5)
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + PURGE_INTERVAL
                try:
                    await self._purge_step()
                except StoreError as exc:
                    logger.warning("Redis store: purge failed: %s", exc)

    # EventLog

    async def append(self, partition: str, stream: str, data: bytes | None) -> int:
        queue = self._writes.queue()
        event_id = self._writer.next_id()
        queue.events.setdefault(partition, []).append((event_id, stream, data))
        return event_id

    async def stream_of(self, partition: str, event_id: int) -> str | None:
        await self.flush()
        entry = f"{event_id}-0"
        found = await self._writer.call(self._writer.redis.xrange(self._keys.events(partition), entry, entry))
        return found[0][1][b"s"].decode() if found else None

    async def read(self, partition: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        await self.flush()
        entries = await self._writer.call(self._writer.redis.xrange(self._keys.events(partition), f"({after}-0", "+"))
        if entries:
            self._writer.see(_event(*entries[-1]).id)
        wanted = stream.encode()
        return [_event(entry_id, fields) for entry_id, fields in entries if fields[b"s"] == wanted]

    async def end_stream(self, partition: str, stream: str, first: int, last: int) -> None:
        expires = time.time() + self._retention.streams
        queue_end(
            self._writes.queue().ends.setdefault(partition, []), StreamEnd(partition, stream, first, last, expires)
        )
        self._ends_due.setdefault(partition, expires)

    async def end_partition(self, partition: str) -> None:
        self._ends_due.pop(partition, None)  # its events all go with the partition's keys
        ttl = round(self._retention.events * 1000)
        self._writes.queue().commands += [
            ("PEXPIRE", self._keys.events(partition), ttl),
            ("PEXPIRE", self._keys.ends(partition), ttl),
        ]

    async def stored(self) -> None:
        await self._writer.stored()

    async def seal(self, partition: str) -> None:
        """Mark the end of a job's log, for followers on other replicas (with its final record, if queued)."""
        if partition.startswith(JOB_LOG_PREFIX):
            self._writes.queue().seals.add(partition.removeprefix(JOB_LOG_PREFIX))

    # JobStore

    async def save_job(self, job: JobRecord) -> None:
        self._writes.queue().jobs[job.id] = job.model_copy()

    async def get_job(self, job_id: str) -> JobRecord | None:
        for batch in (self._writes.queued, self._writes.writing):
            if job_id in batch.jobs:
                return batch.jobs[job_id].model_copy()
        return (await self._get_jobs([job_id]))[0]

    async def _get_jobs(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        if not job_ids:
            return []
        results = await self._writer.send([("GET", self._keys.job(job_id)) for job_id in job_ids])
        return [None if raw is None else JobRecord.model_validate_json(raw) for raw in results]

    async def delete_job(self, job_id: str) -> None:
        await self.flush()
        job = await self.get_job(job_id)
        await self._writer.send(self._writer.drop_commands(job_id, job))

    async def was_purged(self, job_id: str) -> bool:
        newest = await self._writer.call(self._writer.redis.get(self._keys.index("purged")))
        return newest is not None and job_id <= newest.decode()

    async def list_jobs(
        self, *, status: JobStatus | None, owner: str | None, limit: int, offset: int
    ) -> Sequence[JobRecord]:
        await self.flush()
        writer = self._writer
        index = self._keys.index(f"owner:{owner}") if owner is not None else self._keys.index("created")
        found: list[JobRecord] = []
        skip, start, chunk = offset if status is not None else 0, offset if status is None else 0, max(limit, 100)
        while len(found) < limit:
            ids = [raw.decode() for raw in await writer.call(writer.redis.zrevrange(index, start, start + chunk - 1))]
            if not ids:
                break
            start += len(ids)
            for job in await self._get_jobs(ids):
                if job is None:  # purged by retention, or deleted, under our feet
                    continue
                if status is not None and job.status is not status:
                    continue
                if skip:
                    skip -= 1
                    continue
                found.append(job)
        return found[:limit]

    async def unfinished_jobs(self) -> Sequence[JobRecord]:
        await self.flush()
        writer = self._writer
        ids = [raw.decode() for raw in await writer.call(writer.redis.zrange(self._keys.index("unfinished"), 0, -1))]
        return [job for job in await self._get_jobs(ids) if job is not None and not job.status.is_final]

    # Retention

    async def purge(self) -> int:
        await self.flush()
        removed = total = await self._purge_step()
        while removed:
            removed = await self._purge_step()
            total += removed
        return total

    async def _purge_step(self) -> int:
        return await self._drop_ended_streams() + await self._purge_jobs()

    async def _drop_ended_streams(self) -> int:
        """Drop the events of the streams ended here whose retention ran out, a bounded step per session."""
        now = time.time()
        due = [partition for partition, expires in self._ends_due.items() if expires <= now][:PURGE_BATCH]
        if not due:
            return 0
        await self.flush()  # the ends are written with the events they follow
        keys = self._keys
        drops = [scripts.DROP_ENDED.call([keys.events(p), keys.ends(p)], round(now * 1000), DROP_BUDGET) for p in due]
        dropped = 0
        for partition, (events, next_ms) in zip(due, await self._writer.send(drops), strict=True):
            dropped += int(events)
            # None left: an end queued since expires a retention from now at the soonest.
            next_due = int(next_ms) / 1000 if int(next_ms) >= 0 else now + self._retention.streams
            if partition in self._ends_due:  # not ended meanwhile
                self._ends_due[partition] = next_due
        return dropped

    async def _purge_jobs(self) -> int:
        writer = self._writer
        cutoff = micros() - round(self._retention.jobs * 1_000_000)
        cap = self._retention.max_jobs if self._retention.max_jobs is not None else -1
        keys = (self._keys.index("finished"), self._keys.index("created"), self._keys.index("purged"))
        (claimed,) = await writer.send([scripts.CLAIM_EXPIRED.call(keys, cutoff, cap, PURGE_BATCH)])
        ids = [raw.decode() for raw in claimed]
        if not ids:
            return 0
        jobs = await self._get_jobs(ids)
        drops = [
            command for job_id, job in zip(ids, jobs, strict=True) for command in writer.drop_commands(job_id, job)
        ]
        results = await writer.send(drops)
        return len(ids) + sum(int(events) for events in results[::2])

    async def stats(self) -> StoreStats:
        self._writes.raise_failure()  # the health probe says what is wrong, not the last figures it cached
        now = time.monotonic()
        if self._stats is not None and now - self._stats[0] < self._stats_cache:
            return self._stats[1]
        await self.flush()
        writer, redis = self._writer, self._writer.redis
        jobs = await writer.call(redis.zcard(self._keys.index("created")))
        keys = [key async for key in redis.scan_iter(match=f"{self._keys.prefix}:ev:*", count=1000)]
        events = sum(await writer.send([("XLEN", key) for key in keys]))
        if isinstance(redis, RedisCluster):
            by_node = await writer.call(redis.info("memory", target_nodes=RedisCluster.PRIMARIES))
            nodes = list(by_node.values())
        else:
            nodes = [await writer.call(redis.info("memory"))]
        stats = StoreStats(jobs=jobs, events=events, bytes=sum(int(node["used_memory"]) for node in nodes))
        self._stats = (now, stats)
        return stats

    # JobBoard and SessionRelay: this replica's, for a caller that holds the store alone

    async def admit(
        self, job: JobRecord, *, max_jobs: int, max_jobs_per_session: int, announce: bool = True
    ) -> Admission:
        return await self.job_board.admit(
            job, max_jobs=max_jobs, max_jobs_per_session=max_jobs_per_session, announce=announce
        )

    async def release(self, job: JobRecord) -> None:
        await self.job_board.release(job)

    async def request_cancel(self, job_id: str) -> None:
        await self.job_board.request_cancel(job_id)

    async def abandoned_jobs(self) -> Sequence[JobRecord]:
        return await self.job_board.abandoned_jobs()

    async def hand_over(self, job: JobRecord, *, leaving: bool) -> None:
        await self.job_board.hand_over(job, leaving=leaving)

    async def holds(self, job_id: str) -> bool:
        return await self.job_board.holds(job_id)

    async def watch(self, runner: Runner) -> None:
        await self.job_board.watch(runner)

    async def wait_for_events(self, job_id: str, after: int, within: float) -> None:
        await self.job_board.wait_for_events(job_id, after, within)

    def register_session(self, session_id: str, owner: str | None) -> None:
        self.session_relay.register_session(session_id, owner)

    def describe_session(self, session_id: str, protocol_version: str, client: str) -> None:
        self.session_relay.describe_session(session_id, protocol_version, client)

    def unregister_session(self, session_id: str) -> None:
        self.session_relay.unregister_session(session_id)

    def release_session(self, session_id: str) -> None:
        self.session_relay.release_session(session_id)

    async def find_session(self, session_id: str) -> SessionRecord | None:
        return await self.session_relay.find_session(session_id)

    async def adopt_session(self, session_id: str, *, wait: float) -> SessionRecord | None:
        return await self.session_relay.adopt_session(session_id, wait=wait)

    async def wait_for_session_events(self, partition: str, after: int, within: float) -> int:
        return await self.session_relay.wait_for_session_events(partition, after, within)

    async def relay(self, replica: str, session_id: str, notification: Notification) -> None:
        await self.session_relay.relay(replica, session_id, notification)

    async def serve_relayed(
        self, deliver: Callable[[str, Notification], Awaitable[None]], release: Callable[[str], Awaitable[None]]
    ) -> None:
        await self.session_relay.serve_relayed(deliver, release)


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> StoredEvent:
    return StoredEvent(int(entry_id.split(b"-", 1)[0]), fields.get(b"d"))
