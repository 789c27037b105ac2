"""The Redis store's connection and its queue of writes, which its event log, board and relay share.

Writes are queued and sent together every `flush_interval` seconds, in one pipeline
(`wire`: its own connection on a single Redis, redis-py's cluster pipeline on a cluster),
so a tool call costs less than one round trip however many events it writes. That is possible
because the store never has to ask Redis for an event id: a partition has one writer, and
its ids come from the writer's clock (microseconds, kept strictly increasing; a writer that
takes a partition over from another process first sees its top id, `see`, so that two clocks
apart cannot put its ids below the other's). Redis refuses
an explicit stream id that is not above the stream's top, which makes a retried write
harmless and refuses a writer whose ids went back in time. A job's events and records are also fenced
by its owner's token: the scripts check, in the same step, that no other engine took it over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from service.domain.jobs import JobRecord
from service.stores.base import JOB_LOG_PREFIX, Retention, StoreError
from service.stores.redis import scripts
from service.stores.redis.keys import Keys
from service.stores.redis.wire import Client, Command, PipelineWire, RespWire, Wire
from service.stores.stream_ends import StreamEnd
from service.stores.write_behind import WriteBehind

__all__ = ["ANSWER_TIMEOUT", "SEAL", "Batch", "Writer", "micros"]

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT = 1.0
"""Seconds anyone waits for Redis: then it is taken as unavailable. A request gets 503 with `Retry-After`, a
batch stays queued (every write is idempotent), a running job waits (`JobEngine`): Redis standing still (a
failover, a pause) must not hold requests, nor the event loop's writers, for longer.
"""
SEAL = ""
"""The stream name of the entry `seal` writes: no reader's stream, but it wakes a follower."""


def micros() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class Batch:
    """Writes waiting for the next flush."""

    leases: dict[str, str] = field(default_factory=dict)
    """Jobs admitted here, with their lease's token (written first: their log's appends are fenced by it)."""
    events: dict[str, list[tuple[int, str, bytes | None]]] = field(default_factory=dict)
    ends: dict[str, list[StreamEnd]] = field(default_factory=dict)
    """Each session's ended streams, written with its events."""
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    seals: set[str] = field(default_factory=set)
    """Jobs whose log to seal (with their final record, when it is in the same batch)."""
    releases: dict[str, str] = field(default_factory=dict)
    """Jobs whose lease to give up, with the token that holds it."""
    commands: list[tuple[Any, ...]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.leases or self.events or self.ends or self.jobs or self.seals or self.releases or self.commands
        )

    def take(self, later: Batch) -> None:
        """Add what was queued after this batch (which failed, and goes again first)."""
        self.leases.update(later.leases)
        for partition, events in later.events.items():
            self.events.setdefault(partition, []).extend(events)
        for partition, ends in later.ends.items():
            self.ends.setdefault(partition, []).extend(ends)
        self.jobs.update(later.jobs)
        self.seals |= later.seals
        self.releases.update(later.releases)
        self.commands.extend(later.commands)


class Writer:
    """One Redis client and wire, the writes queued for them, and what turns a batch into commands."""

    def __init__(
        self, url: str, keys: Keys, *, max_events_per_partition: int, retention: Retention, open_ttl: int, lease_ms: int
    ) -> None:
        self.url = url
        self.keys = keys
        self.open_ttl = open_ttl
        """Milliseconds a live session's keys are kept unless renewed: its retention and its idle horizon."""
        self.lease_ms = lease_ms
        self.finished_ttl = round((retention.jobs * 2 + 3600) * 1000)
        """Milliseconds a finished job's record and log carry, in case a purge never reaches them."""
        self.writes = WriteBehind(Batch)
        self._last_id = 0
        self.tokens: dict[str, str] = {}
        """The lease token of every job this engine runs (its log's appends are fenced by it)."""
        self._max_events = max_events_per_partition
        self._client: Client | None = None
        self._wire: Wire | None = None

    # Connection

    async def connect(self) -> None:
        """The client (a cluster's, if Redis is one) with the scripts loaded, and the wire for the batches."""
        try:
            client: Client = aioredis.Redis.from_url(self.url)
            info = await client.info("cluster")
            if info.get("cluster_enabled"):
                await client.aclose()
                client = RedisCluster.from_url(self.url)
                await client.initialize()
            await scripts.load(client)
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._client = client
        wire = None if isinstance(client, RedisCluster) else RespWire.for_url(self.url)
        self._wire = wire or PipelineWire(client)

    async def aclose(self) -> None:
        try:
            if self._wire is not None:
                await self._wire.aclose()
        finally:
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    @property
    def redis(self) -> Client:
        if self._client is None:
            raise StoreError("the Redis store is not open")
        return self._client

    def _wire_of(self) -> Wire:
        if self._wire is None:
            raise StoreError("the Redis store is not open")
        return self._wire

    # Writing

    def next_id(self) -> int:
        """An event id: this process's clock in microseconds, above every id it wrote or saw (`see`)."""
        self._last_id = event_id = max(micros(), self._last_id + 1)
        return event_id

    def see(self, event_id: int) -> None:
        """An id another process wrote in a partition this one may write next (a job taken over, a session
        adopted): its ids go above it, whatever the two clocks say (Redis would refuse, and skip, ones below)."""
        self._last_id = max(self._last_id, event_id)

    def send_later(self, *commands: Command) -> None:
        """Commands for the next batch, even while writes fail: bookkeeping whose caller could not handle an error."""
        self.writes.queued.commands.extend(commands)
        self.writes.wake.set()

    async def flush(self) -> None:
        """Send everything queued so far; raise `StoreError` if Redis refuses it (it stays queued), at once if it
        failed already: a request does not wait for Redis to come back (`retry` does, the store's flusher's)."""
        self.writes.raise_failure()
        try:
            with anyio.fail_after(ANSWER_TIMEOUT):  # a batch on its way included
                await self.retry()
        except TimeoutError as exc:
            raise StoreError(f"Redis did not answer within {ANSWER_TIMEOUT:g} s") from exc

    async def stored(self) -> None:
        """Wait, a second at most, until what was queued is written: now, if no batch is on its way (one round
        trip); else by the batches that go anyway (under load, many waiters share one)."""
        self.writes.raise_failure()  # Redis already failed: the flusher retries on its own, a writer does not
        try:
            with anyio.fail_after(ANSWER_TIMEOUT):
                if self.writes.busy:
                    await self.writes.written()
                else:
                    await self.retry()
        except TimeoutError as exc:
            raise StoreError(f"Redis did not answer within {ANSWER_TIMEOUT:g} s") from exc

    async def retry(self) -> None:
        """Send everything queued so far, a batch that failed included; raise `StoreError` if it fails again."""
        await self.write()
        self.writes.raise_failure()

    async def write(self, extra: Sequence[Command] = ()) -> list[Any]:
        """Send the queued writes, then the `extra` commands, in one pipeline; return what `extra` answered.
        A caller that must ask Redis something anyway (`admit`, `_renew`) takes the queue along: one round
        trip, and its commands see every write queued before them (a lease queued by `admit`, say)."""
        nothing: list[Any] = []
        try:
            # A caller that asks something (`admit`) waits a second at most, a batch on its way included.
            with anyio.fail_after(ANSWER_TIMEOUT if extra else None):
                answers = await self.writes.write(lambda batch: self._send(batch, extra), nothing, always=bool(extra))
        except TimeoutError as exc:
            raise StoreError(f"Redis did not answer within {ANSWER_TIMEOUT:g} s") from exc
        for answer in answers:
            if isinstance(answer, Exception):
                raise StoreError(f"Redis refused: {answer}")
        return answers

    async def _send(self, batch: Batch, extra: Sequence[Command]) -> tuple[list[Any], StoreError | None]:
        """What `extra` answered, and why Redis refused the batch, if it did (every write is idempotent: it goes
        again whole)."""
        commands = self._batch_commands(batch)
        written = len(commands)
        try:
            with anyio.fail_after(ANSWER_TIMEOUT):
                results = await self._wire_of().send([*commands, *extra])
        except TimeoutError as exc:  # the wire keeps the batch's place: if Redis runs it later, it goes twice
            raise StoreError(f"Redis did not answer within {ANSWER_TIMEOUT:g} s") from exc
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from exc
        errors = [result for result in results[:written] if isinstance(result, Exception)]
        fenced = [error for error in errors if "FENCED" in str(error)]
        for error in fenced:
            logger.error("Redis store: %s; its events were dropped", error)
        refused = None
        if len(errors) > len(fenced):
            if any("NOSCRIPT" in str(error) for error in errors):  # Redis restarted, or its scripts were flushed
                try:
                    await scripts.load(self.redis)
                except (RedisError, OSError) as exc:  # a restart drops the connections too: the next try loads them
                    logger.warning("Redis store: reloading the scripts failed (%s); the batch goes again", exc)
            refused = StoreError(f"Redis: {errors[0]}")
        return results[written:], refused

    def _batch_commands(self, batch: Batch) -> list[Command]:
        # Leases, events, then records: whoever sees a job ended (its record) finds all of its events.
        keys = self.keys
        commands: list[Command] = []
        for job_id, token in batch.leases.items():  # a new job: its first engine is its owner
            commands += [("SET", keys.job(job_id, "lease"), token, "NX", "PX", self.lease_ms)]
            commands += [("SET", keys.job(job_id, "owner"), token, "NX")]
        commands += [
            self._append_command(partition, batch.events.get(partition, ()), batch.ends.get(partition, ()), batch)
            for partition in batch.events.keys() | batch.ends.keys()
        ]
        for job in batch.jobs.values():
            seal, release = job.id in batch.seals, batch.releases.get(job.id, "")
            fence, admitted = self._fence(job.id, batch), job.id in batch.leases
            commands += self._job_commands(job, seal=seal, release=release, fence=fence, admitted=admitted)
        for job_id in batch.seals - batch.jobs.keys():
            fence = self._fence(job_id, batch)
            commands.append(scripts.SEAL_LOG.call([keys.job(job_id, "ev"), keys.job(job_id, "owner")], fence))
        for job_id, token in batch.releases.items():  # with a final record, SAVE_JOB releases it
            if job_id not in batch.jobs or not batch.jobs[job_id].status.is_final:
                commands.append(scripts.RELEASE.call([keys.job(job_id, "lease")], token))
        commands += batch.commands
        return commands

    def _fence(self, job_id: str, batch: Batch) -> str:
        """The token a job's writes in `batch` are fenced with: its engine's, which `release` takes from
        `tokens` when the job ends, perhaps before this batch goes (and the release goes with it)."""
        return batch.releases.get(job_id) or self.tokens.get(job_id, "")

    def _append_command(
        self,
        partition: str,
        events: Sequence[tuple[int, str, bytes | None]],
        ends: Sequence[StreamEnd],
        batch: Batch,
    ) -> Command:
        is_job = partition.startswith(JOB_LOG_PREFIX)
        keys = [self.keys.events(partition)]
        token = ""
        if is_job:
            job_id = partition.removeprefix(JOB_LOG_PREFIX)
            token = self._fence(job_id, batch)
            if token:
                keys.append(self.keys.job(job_id, "owner"))
        else:
            keys.append(self.keys.ends(partition))
        # A job's log has room for its seal besides its events; a session's expires after its last event.
        maxlen = self._max_events + 1 if is_job else self._max_events
        args: list[str | bytes | int] = [maxlen, 0 if is_job else self.open_ttl, token, len(ends)]
        for end in ends:
            args += [round(end.expires * 1000), f"{end.first}-0 {end.last} {end.stream}"]
        for event_id, stream, data in events:
            args += [event_id, stream, "0" if data is None else "1", data or b""]
        return scripts.APPEND.call(keys, *args)

    def _job_commands(self, job: JobRecord, *, seal: bool, release: str, fence: str, admitted: bool) -> list[Command]:
        final = job.status.is_final
        ttl = self.finished_ttl if final else 0
        keys = [self.keys.job(job.id, kind) for kind in ("job", "ev", "lease", "owner")]
        save = scripts.SAVE_JOB.call(keys, job.model_dump_json(), ttl, release, "1" if seal else "0", fence)
        if not final and job.id in self.tokens and not admitted:
            return [save]  # running here, indexed with the batch that admitted it
        created = round(job.created_at.timestamp() * 1_000_000)
        when = round(job.finished_at.timestamp() * 1_000_000) if final and job.finished_at else micros()
        keys, flags = self.keys.optional(job.owner, job.session_id)
        args = (job.id, created, when, "1" if final else "0", self.open_ttl)
        return [save, scripts.INDEX.call([*self.keys.job_indexes, *keys], *flags, *args)]

    def drop_commands(self, job_id: str, job: JobRecord | None) -> list[Command]:
        """A job's keys deleted (the first command answers its log's length), then its index entries."""
        keys, flags = self.keys.optional(job.owner, job.session_id) if job is not None else ([], ("0", "0"))
        return [
            scripts.DROP_JOB.call([self.keys.job(job_id, kind) for kind in ("job", "ev", "lease", "cancel", "owner")]),
            scripts.UNINDEX.call([*self.keys.job_indexes, *keys], *flags, job_id),
        ]

    # Calls

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        """Their replies, in one round trip; `StoreError` if Redis refused any of them."""
        replies: list[Any] = await self.call(self._wire_of().send(commands))
        for reply in replies:
            if isinstance(reply, Exception):
                raise StoreError(f"Redis refused: {reply}")
        return replies

    async def call(self, call: Awaitable[Any], *, blocking: bool = False) -> Any:
        """What Redis answered, within `ANSWER_TIMEOUT` (`blocking`: a read that waits, bounded by its caller)."""
        timeout = None if blocking else ANSWER_TIMEOUT
        try:
            with anyio.fail_after(timeout):
                return await call
        except TimeoutError as exc:  # an OSError: first
            raise StoreError(f"Redis did not answer within {ANSWER_TIMEOUT:g} s") from exc
        except ResponseError as exc:
            raise StoreError(f"Redis refused: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from exc
