"""Redis: the store that replicas share, with their job board and session relay (`SERVICE_STORE=redis`).

Keys (`<p>` is `SERVICE_REDIS_PREFIX`). What one job or one partition owns shares a hash
tag, so every script below touches one slot and works on Redis Cluster too:

    <p>:ev:{<partition>}       stream: the partition's events, id `<event id>-0`, fields s (stream), d (data)
    <p>:ends:{<partition>}     sorted set: a session's ended streams, `<from> <last id> <stream>` by expiry (ms)
    <p>:job:{job:<id>}         string: the job's record (JSON)
    <p>:lease:{job:<id>}       string: `<runner>:<epoch>` of the engine that runs it, expiring unless renewed
    <p>:cancel:{job:<id>}      string: someone asked for the job to stop
    <p>:{jobs}:created         sorted set: every job, by creation time (microseconds)
    <p>:{jobs}:owner:<name>    sorted set: one principal's jobs, likewise
    <p>:{jobs}:unfinished      sorted set: pending and running jobs, by admission time
    <p>:{jobs}:session:<id>    set: one MCP session's unfinished jobs
    <p>:{jobs}:finished        sorted set: finished jobs, by the time they finished
    <p>:{jobs}:purged          string: the newest job id that retention purged
    <p>:{jobs}:shares          hash: each engine's share of `SERVICE_MAX_JOBS` (`shares`)
    <p>:{jobs}:shares:<id>     hash: each engine's share of one MCP session's `SERVICE_MAX_JOBS_PER_SESSION`
    <p>:{jobs}:alive           sorted set: engines holding shares, by when they go unless renewed (ms)
    <p>:session:{<id>}         hash: a live MCP session's replica and owner
    <p>:inbox:{<replica>}      stream: notifications relayed to that replica's sessions

Writes are queued and sent together every `flush_interval` seconds, in one pipeline
(`redis_wire`: its own connection on a single Redis, redis-py's cluster pipeline on a cluster),
so a tool call costs less than one round trip however many events it writes. Admission
needs none either while this engine's shares of the limits have room (`shares`): Redis is
asked only for more. That is possible
because the store never has to ask Redis for an event id: a partition has one writer, and
its ids come from the writer's clock (microseconds, kept strictly increasing). Redis refuses
an explicit stream id that is not above the stream's top, which makes a retried write
harmless and refuses a writer whose ids went back in time. A job's events are also fenced by
its lease: the append script checks, in the same step, that the writer still holds it.

Retention: a session's stream expires `Retention.events` seconds after its last append
(every append renews it, and `end_partition` sets it), and is trimmed to
`max_events_per_partition` on every append. An ended stream of a live session is recorded in
the same script as the events it follows, with its expiry; the writer drops its events when
that comes (`_DROP_ENDED`, in bounded steps), reading only its ids' range of the partition.
Finished jobs go in the purge, which every replica runs once a second: one script claims a
batch of expired (or over the cap) ids in `{jobs}`, then each job's keys are deleted in its
own slot. Records and logs also carry a late expiry of their own, in case a purge never
reaches them.

Replication in Redis is asynchronous: a write acknowledged by a master can be lost if that
master fails before a replica has it. Run Redis with persistence and replicas for durability;
`WAIT` narrows the window, it does not close it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import anyio
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from service.domain.jobs import JobRecord, JobStatus, new_runner_id, utcnow
from service.domain.notifications import Notification
from service.stores.base import (
    JOB_LOG_PREFIX,
    LOG_STREAM,
    Admission,
    Retention,
    Runner,
    SessionRecord,
    StoredEvent,
    StoreError,
    StoreStats,
)
from service.stores.redis_wire import Command, PipelineWire, RespWire, Wire
from service.stores.shares import Share
from service.stores.stream_ends import StreamEnd, queue_end

__all__ = ["RedisStorage"]

logger = logging.getLogger(__name__)

Client = aioredis.Redis | RedisCluster

PURGE_INTERVAL = 1.0
PURGE_BATCH = 256
DROP_BUDGET = 1024
"""Events of ended streams one `_DROP_ENDED` reads at most: Redis serves nothing else while a script runs."""
SEAL = ""
"""The stream name of the entry `seal` writes: no reader's stream, but it wakes a follower."""
RELAY_BACKLOG = 100_000
"""Entries a replica's inbox keeps at most (approximately): a replica that is gone does not grow it forever."""


@dataclass(frozen=True, slots=True)
class _Script:
    """A Lua script, run by its SHA1 (EVALSHA): loaded on every master at open, and again if Redis forgot it."""

    body: str
    sha: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.body.encode()).hexdigest())

    def call(self, keys: Sequence[str], *args: str | bytes | int) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


# KEYS[1] the partition's stream; KEYS[2], for a job's log, its lease, for a session, its stream ends.
# ARGV: maxlen, ttl ms (0: leave the expiry alone), lease token ('': none), number of ends;
# then expiry (ms) and member per end; then id, stream, has data, data per event.
_APPEND = _Script("""
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return redis.error_reply('FENCED this engine no longer holds the lease of the job')
end
local first = 5 + 2 * tonumber(ARGV[4])
for i = 5, first - 1, 2 do redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1]) end
local written = 0
for i = first, #ARGV, 4 do
  local r
  if ARGV[i + 2] == '1' then
    r = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[1], ARGV[i] .. '-0', 's', ARGV[i + 1], 'd', ARGV[i + 3])
  else
    r = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[1], ARGV[i] .. '-0', 's', ARGV[i + 1])
  end
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'equal or smaller', 1, true) then return r end
  else
    written = written + 1
  end
end
if ARGV[2] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if #KEYS == 2 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
end
return written
""")

# KEYS: a session's stream, its stream ends. ARGV: now (ms), entries to read at most.
# Drops the events of the ends that expired, oldest first. An end whose range was not read
# to its last id stays, from where the reading stopped. Returns the events dropped and when
# the next end expires (ms; -1: none left).
_DROP_ENDED = _Script("""
local budget = tonumber(ARGV[2])
local dropped = 0
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, 64)
for i = 1, #due, 2 do
  local from, last, stream = string.match(due[i], '^(%S+) (%d+) (.*)$')
  local entries = redis.call('XRANGE', KEYS[1], from, last .. '-0', 'COUNT', budget)
  local ids = {}
  for _, entry in ipairs(entries) do
    if entry[2][2] == stream then ids[#ids + 1] = entry[1] end
  end
  if #ids > 0 then dropped = dropped + redis.call('XDEL', KEYS[1], unpack(ids)) end
  redis.call('ZREM', KEYS[2], due[i])
  if #entries == budget then
    redis.call('ZADD', KEYS[2], due[i + 1], '(' .. entries[#entries][1] .. ' ' .. last .. ' ' .. stream)
    break
  end
  budget = budget - #entries
end
local next = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #next == 0 then return {dropped, -1} end
return {dropped, next[2]}
""")

# KEYS: record, log, lease. ARGV: record JSON, ttl ms of a finished job (0 while it runs),
# the lease token to release ('' for none), '1' to seal the log.
# A finished job's record, its log's seal and its lease's release are one step: a follower
# woken by the seal finds the record final.
_SAVE_JOB = _Script("""
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[4] == '1' then redis.call('XADD', KEYS[2], '*', 's', '') end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[3] ~= '' and redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
return 1
""")

# The indexes' scripts take the owner's and the session's keys only when the job has them
# (`_optional_keys`): ARGV[1] and ARGV[2] say which of the two follow the fixed keys.
_OPTIONAL_KEYS = """
local owner, session, k = nil, nil, FIXED + 1
if ARGV[1] == '1' then owner = KEYS[k]; k = k + 1 end
if ARGV[2] == '1' then session = KEYS[k] end
"""

# KEYS: created, unfinished, finished, [owner], [session].
# ARGV: has owner, has session, id, created (us), admitted or finished time (us), '1' if finished, ttl ms.
_INDEX = _Script(
    "local FIXED = 3"
    + _OPTIONAL_KEYS
    + """
redis.call('ZADD', KEYS[1], 'NX', ARGV[4], ARGV[3])
if owner then redis.call('ZADD', owner, 'NX', ARGV[4], ARGV[3]) end
if ARGV[6] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[3])
  if session then redis.call('SREM', session, ARGV[3]) end
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
else
  redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[3])
  if session then
    redis.call('SADD', session, ARGV[3])
    redis.call('PEXPIRE', session, ARGV[7])
  end
end
return 1
"""
)

# KEYS: shares, alive, [the session's shares].
# ARGV: runner, now (ms), alive until (ms), then need, want and limit for max jobs, [and for the session, its ttl ms].
# Returns {verdict, share of max jobs, share of the session}: 0 granted at least `need` (at most `want`), 1 no room
# in max jobs, 2 none in the session; a refusal changes nothing. A runner not renewed in `alive` loses its shares.
_GRANT = _Script("""
local runner = ARGV[1]
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], runner)
local function room(key, limit)
  local left = tonumber(limit)
  local shares = redis.call('HGETALL', key)
  for i = 1, #shares, 2 do
    if shares[i] ~= runner then
      if redis.call('ZSCORE', KEYS[2], shares[i]) then left = left - tonumber(shares[i + 1])
      else redis.call('HDEL', key, shares[i]) end
    end
  end
  return left
end
local jobs = room(KEYS[1], ARGV[6])
if jobs < tonumber(ARGV[4]) then return {1, 0, 0} end
local session = 0
if #KEYS == 3 then
  session = room(KEYS[3], ARGV[9])
  if session < tonumber(ARGV[7]) then return {2, 0, 0} end
  session = math.min(session, tonumber(ARGV[8]))
  redis.call('HSET', KEYS[3], runner, session)
  redis.call('PEXPIRE', KEYS[3], ARGV[10])
end
jobs = math.min(jobs, tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], runner, jobs)
return {0, jobs, session}
""")

# KEYS: created, unfinished, finished, [owner], [session]. ARGV: has owner, has session, id.
_UNINDEX = _Script(
    "local FIXED = 3"
    + _OPTIONAL_KEYS
    + """
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
if owner then redis.call('ZREM', owner, ARGV[3]) end
if session then redis.call('SREM', session, ARGV[3]) end
return 1
"""
)

# KEYS: finished, created, purged. ARGV: finished before (us), cap (-1: none), batch.
# Claims (removes from the indexes) a batch of jobs to purge, so two replicas never purge the same.
_CLAIM_EXPIRED = _Script("""
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local cap = tonumber(ARGV[2])
if cap >= 0 and #ids < tonumber(ARGV[3]) then
  local over = redis.call('ZCARD', KEYS[1]) - #ids - cap
  if over > 0 then
    local more = redis.call('ZRANGE', KEYS[1], #ids, #ids + math.min(over, tonumber(ARGV[3]) - #ids) - 1)
    for _, id in ipairs(more) do table.insert(ids, id) end
  end
end
local newest = redis.call('GET', KEYS[3]) or ''
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  if id > newest then newest = id end
end
if #ids > 0 then redis.call('SET', KEYS[3], newest) end
return ids
""")

# KEYS: record, log, lease, cancel. Returns the log's length before it went.
_DROP_JOB = _Script("""
local events = redis.call('XLEN', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return events
""")

# KEYS: lease, cancel. ARGV: token, ttl ms. 1: renewed, 2: renewed and asked to stop, 0: lost.
_RENEW = _Script("""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
return 1
""")

# KEYS: lease. ARGV: token.
_RELEASE = _Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
""")

# KEYS: record, lease, log. ARGV: finished_at, ttl ms, log stream name.
# An unfinished job without a lease: nobody runs it any more. Recorded as interrupted, log sealed.
# Returns the new record; 'gone' for a job admitted whose record was never written (its engine died first).
_REAP = _Script("""
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local raw = redis.call('GET', KEYS[1])
if not raw then return 'gone' end
local job = cjson.decode(raw)
if job.status ~= 'pending' and job.status ~= 'running' then return false end
local sent = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
  if entry[2][2] == ARGV[3] then sent = sent + 1 end
end
job.status = 'interrupted'
job.sent = sent
job.finished_at = ARGV[1]
local out = cjson.encode(job)
redis.call('SET', KEYS[1], out, 'PX', ARGV[2])
redis.call('XADD', KEYS[3], '*', 's', '')
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return out
""")


_SCRIPTS = (
    _APPEND,
    _DROP_ENDED,
    _SAVE_JOB,
    _INDEX,
    _GRANT,
    _UNINDEX,
    _CLAIM_EXPIRED,
    _DROP_JOB,
    _RENEW,
    _RELEASE,
    _REAP,
)


def _tag(name: str) -> str:
    """`name` as a hash tag: the part of a key Redis Cluster hashes. Braces inside would end it early."""
    return "{" + name.replace("{", "(").replace("}", ")") + "}"


class _Signal:
    """A settable, clearable flag to wait on, made before any event loop runs (as `create_app` does)."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._set = False

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def clear(self) -> None:
        self._set, self._event = False, None

    async def wait(self) -> None:
        if not self._set:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()


def _micros() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class _Queued:
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

    def take(self, later: _Queued) -> None:
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


class RedisStorage:
    """`Storage`, `JobBoard` and `SessionRelay` on one Redis (or Redis Cluster), shared by every replica."""

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
        self._url = url
        self._max_events = max_events_per_partition
        self._retention = retention
        self._prefix = prefix
        self.replica = replica
        self.runner = runner or new_runner_id()
        """The engine this store leases jobs to (`JobEngine.runner_id`)."""
        self._open_ttl = round((retention.events + idle_horizon) * 1000)
        self._lease_ms = round(lease_ttl * 1000)
        self._flush_interval = flush_interval
        self._client: Client | None = None
        self._wire: Wire | None = None
        self._queued = _Queued()
        self._writing = _Queued()
        self._wake = _Signal()
        self._flush_lock = anyio.Lock()
        self._failure: StoreError | None = None
        self._last_id = 0
        self._tokens: dict[str, str] = {}
        """The lease token of every job this engine runs (its log's appends are fenced by it)."""
        self._stack = AsyncExitStack()
        self._stats: tuple[float, StoreStats] | None = None
        self._stats_cache = stats_cache
        """Seconds `stats` reuses its count: counting walks every stream, and health probes ask often."""
        self._local_sessions: set[str] = set()
        self._ends_due: dict[str, float] = {}
        """When the next ended stream of each session written here expires (wall clock, seconds)."""
        self._jobs_share = Share(limit=0)
        self._session_shares: dict[str, Share] = {}

    # Keys

    def _events_key(self, partition: str) -> str:
        return f"{self._prefix}:ev:{_tag(partition)}"

    def _ends_key(self, partition: str) -> str:
        return f"{self._prefix}:ends:{_tag(partition)}"

    def _job_key(self, job_id: str, kind: str = "job") -> str:
        """One of a job's keys, all in its log's slot: `ev` is its log."""
        return f"{self._prefix}:{kind}:{_tag(JOB_LOG_PREFIX + job_id)}"

    def _index(self, name: str) -> str:
        return f"{self._prefix}:{{jobs}}:{name}"

    def _session_key(self, session_id: str) -> str:
        return f"{self._prefix}:session:{_tag(session_id)}"

    def _inbox(self, replica: str) -> str:
        return f"{self._prefix}:inbox:{_tag(replica)}"

    @property
    def _redis(self) -> Client:
        if self._client is None:
            raise StoreError("the Redis store is not open")
        return self._client

    def _wire_of(self) -> Wire:
        if self._wire is None:
            raise StoreError("the Redis store is not open")
        return self._wire

    # Lifecycle

    async def __aenter__(self) -> Self:
        try:
            client: Client = aioredis.Redis.from_url(self._url)
            info = await client.info("cluster")
            if info.get("cluster_enabled"):
                await client.aclose()
                client = RedisCluster.from_url(self._url)
                await client.initialize()
            await self._load_scripts(client)
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot reach Redis at {self._url}: {exc}") from exc
        self._client = client
        wire = None if isinstance(client, RedisCluster) else RespWire.for_url(self._url)
        self._wire = wire or PipelineWire(client)
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self._close_client)
            stack.push_async_callback(self._wire.aclose)
            task_group = await stack.enter_async_context(anyio.create_task_group())
            task_group.start_soon(self._flush_forever)
            stack.callback(task_group.cancel_scope.cancel)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            self._give_up_shares()
            try:
                await self.flush()
            except StoreError as error:
                logger.error("Redis store closed with writes it could not make: %s", error)
        await self._stack.aclose()

    @staticmethod
    async def _load_scripts(client: Client) -> None:
        for script in _SCRIPTS:
            await client.script_load(script.body)

    async def _close_client(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # Writing

    def _next_id(self) -> int:
        self._last_id = max(_micros(), self._last_id + 1)
        return self._last_id

    def _queue(self) -> _Queued:
        if self._failure is not None:
            raise self._failure
        self._wake.set()
        return self._queued

    async def flush(self) -> None:
        """Send everything queued so far; raise `StoreError` if Redis refuses it (it stays queued)."""
        await self._write()
        if self._failure is not None:
            raise self._failure

    async def _write(self, extra: Sequence[Command] = ()) -> list[Any]:
        """Send the queued writes, then the `extra` commands, in one pipeline; return what `extra` answered.
        A caller that must ask Redis something anyway (`admit`, `_renew`) takes the queue along: one round
        trip, and its commands see every write queued before them (a lease queued by `admit`, say)."""
        async with self._flush_lock:
            batch, self._queued = self._queued, _Queued()
            if not batch and not extra:
                return []
            self._writing = batch
            commands = self._batch_commands(batch)
            written = len(commands)
            try:
                results = await self._wire_of().send([*commands, *extra])
            except (RedisError, OSError) as exc:
                self._failed(batch, exc)
                raise self._failure or StoreError(str(exc)) from exc
            finally:
                self._writing = _Queued()
            errors = [result for result in results[:written] if isinstance(result, Exception)]
            fenced = [error for error in errors if "FENCED" in str(error)]
            for error in fenced:
                logger.error("Redis store: %s; its events were dropped", error)
            if len(errors) > len(fenced):
                if any("NOSCRIPT" in str(error) for error in errors):  # Redis restarted, or its scripts were flushed
                    await self._load_scripts(self._redis)
                self._failed(batch, errors[0])
            else:
                self._failure = None
            answers = results[written:]
            for answer in answers:
                if isinstance(answer, Exception):
                    raise StoreError(f"Redis refused: {answer}")
            return answers

    def _batch_commands(self, batch: _Queued) -> list[Command]:
        # Leases, events, then records: whoever sees a job ended (its record) finds all of its events.
        commands: list[Command] = [
            ("SET", self._job_key(job_id, "lease"), token, "NX", "PX", self._lease_ms)
            for job_id, token in batch.leases.items()
        ]
        commands += [
            self._append_command(partition, batch.events.get(partition, ()), batch.ends.get(partition, ()))
            for partition in batch.events.keys() | batch.ends.keys()
        ]
        for job in batch.jobs.values():
            seal, release = job.id in batch.seals, batch.releases.get(job.id, "")
            commands += self._job_commands(job, seal=seal, release=release, admitted=job.id in batch.leases)
        for job_id in batch.seals - batch.jobs.keys():
            commands.append(("XADD", self._job_key(job_id, "ev"), "*", "s", SEAL))
        for job_id, token in batch.releases.items():
            if job_id not in batch.jobs:
                commands.append(_RELEASE.call([self._job_key(job_id, "lease")], token))
        commands += batch.commands
        return commands

    def _failed(self, batch: _Queued, exc: BaseException) -> None:
        """Keep the batch for the next flush (every write is idempotent) and make appenders say so."""
        batch.take(self._queued)
        self._queued = batch
        self._failure = StoreError(f"Redis: {exc}")
        self._wake.set()

    def _append_command(
        self, partition: str, events: Sequence[tuple[int, str, bytes | None]], ends: Sequence[StreamEnd]
    ) -> Command:
        is_job = partition.startswith(JOB_LOG_PREFIX)
        keys = [self._events_key(partition)]
        token = ""
        if is_job:
            job_id = partition.removeprefix(JOB_LOG_PREFIX)
            token = self._tokens.get(job_id, "")
            if token:
                keys.append(self._job_key(job_id, "lease"))
        else:
            keys.append(self._ends_key(partition))
        # A job's log has room for its seal besides its events; a session's expires after its last event.
        maxlen = self._max_events + 1 if is_job else self._max_events
        args: list[str | bytes | int] = [maxlen, 0 if is_job else self._open_ttl, token, len(ends)]
        for end in ends:
            args += [round(end.expires * 1000), f"{end.first}-0 {end.last} {end.stream}"]
        for event_id, stream, data in events:
            args += [event_id, stream, "0" if data is None else "1", data or b""]
        return _APPEND.call(keys, *args)

    def _job_commands(self, job: JobRecord, *, seal: bool, release: str, admitted: bool) -> list[Command]:
        final = job.status.is_final
        ttl = round((self._retention.jobs * 2 + 3600) * 1000) if final else 0
        keys = [self._job_key(job.id, kind) for kind in ("job", "ev", "lease")]
        save = _SAVE_JOB.call(keys, job.model_dump_json(), ttl, release, "1" if seal else "0")
        if not final and job.id in self._tokens and not admitted:
            return [save]  # running here, indexed with the batch that admitted it
        created = round(job.created_at.timestamp() * 1_000_000)
        when = round(job.finished_at.timestamp() * 1_000_000) if final and job.finished_at else _micros()
        fixed = (self._index("created"), self._index("unfinished"), self._index("finished"))
        keys, flags = self._optional_keys(job.owner, job.session_id)
        args = (job.id, created, when, "1" if final else "0", self._open_ttl)
        return [save, _INDEX.call([*fixed, *keys], *flags, *args)]

    def _optional_keys(self, owner: str | None, session_id: str | None) -> tuple[list[str], tuple[str, str]]:
        """The index keys of a job's owner and session, and the flags that tell `_OPTIONAL_KEYS` which are there."""
        keys = []
        if owner is not None:
            keys.append(self._index(f"owner:{owner}"))
        if session_id is not None:
            keys.append(self._index(f"session:{session_id}"))
        return keys, ("0" if owner is None else "1", "0" if session_id is None else "1")

    async def _flush_forever(self) -> None:
        next_purge = time.monotonic() + PURGE_INTERVAL
        while True:
            with anyio.move_on_after(max(0.0, next_purge - time.monotonic())):
                await self._wake.wait()
                await anyio.sleep(self._flush_interval)  # let the writes of this moment join the batch
            self._wake.clear()
            try:
                await self.flush()
            except StoreError:  # `_failure` makes appenders report it; retry, without spinning
                await anyio.sleep(0.5)
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + PURGE_INTERVAL
                try:
                    await self._purge_step()
                except StoreError as exc:
                    logger.warning("Redis store: purge failed: %s", exc)

    # EventLog

    async def append(self, partition: str, stream: str, data: bytes | None) -> int:
        queue = self._queue()
        event_id = self._next_id()
        queue.events.setdefault(partition, []).append((event_id, stream, data))
        return event_id

    async def stream_of(self, partition: str, event_id: int) -> str | None:
        await self.flush()
        entry = f"{event_id}-0"
        found = await self._call(self._redis.xrange(self._events_key(partition), entry, entry))
        return found[0][1][b"s"].decode() if found else None

    async def read(self, partition: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        await self.flush()
        entries = await self._call(self._redis.xrange(self._events_key(partition), f"({after}-0", "+"))
        wanted = stream.encode()
        return [_event(entry_id, fields) for entry_id, fields in entries if fields[b"s"] == wanted]

    async def end_stream(self, partition: str, stream: str, first: int, last: int) -> None:
        expires = time.time() + self._retention.streams
        queue_end(self._queue().ends.setdefault(partition, []), StreamEnd(partition, stream, first, last, expires))
        self._ends_due.setdefault(partition, expires)

    async def end_partition(self, partition: str) -> None:
        self._ends_due.pop(partition, None)  # its events all go with the partition's keys
        ttl = round(self._retention.events * 1000)
        self._queue().commands += [
            ("PEXPIRE", self._events_key(partition), ttl),
            ("PEXPIRE", self._ends_key(partition), ttl),
        ]

    async def seal(self, partition: str) -> None:
        """Mark the end of a job's log, for followers on other replicas (with its final record, if queued)."""
        if partition.startswith(JOB_LOG_PREFIX):
            self._queue().seals.add(partition.removeprefix(JOB_LOG_PREFIX))

    # JobStore

    async def save_job(self, job: JobRecord) -> None:
        self._queue().jobs[job.id] = job.model_copy()

    async def get_job(self, job_id: str) -> JobRecord | None:
        for batch in (self._queued, self._writing):
            if job_id in batch.jobs:
                return batch.jobs[job_id].model_copy()
        return (await self._get_jobs([job_id]))[0]

    async def _get_jobs(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        if not job_ids:
            return []
        results = await self._send([("GET", self._job_key(job_id)) for job_id in job_ids])
        return [None if raw is None else JobRecord.model_validate_json(raw) for raw in results]

    async def delete_job(self, job_id: str) -> None:
        await self.flush()
        job = await self.get_job(job_id)
        await self._send(self._drop_commands(job_id, job))

    def _drop_commands(self, job_id: str, job: JobRecord | None) -> list[Command]:
        """A job's keys deleted (the first command answers its log's length), then its index entries."""
        fixed = (self._index("created"), self._index("unfinished"), self._index("finished"))
        keys, flags = self._optional_keys(job.owner, job.session_id) if job is not None else ([], ("0", "0"))
        return [
            _DROP_JOB.call([self._job_key(job_id, kind) for kind in ("job", "ev", "lease", "cancel")]),
            _UNINDEX.call([*fixed, *keys], *flags, job_id),
        ]

    async def was_purged(self, job_id: str) -> bool:
        newest = await self._call(self._redis.get(self._index("purged")))
        return newest is not None and job_id <= newest.decode()

    async def list_jobs(
        self, *, status: JobStatus | None, owner: str | None, limit: int, offset: int
    ) -> Sequence[JobRecord]:
        await self.flush()
        index = self._index(f"owner:{owner}") if owner is not None else self._index("created")
        found: list[JobRecord] = []
        skip, start, chunk = offset if status is not None else 0, offset if status is None else 0, max(limit, 100)
        while len(found) < limit:
            ids = [raw.decode() for raw in await self._call(self._redis.zrevrange(index, start, start + chunk - 1))]
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
        ids = [raw.decode() for raw in await self._call(self._redis.zrange(self._index("unfinished"), 0, -1))]
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
        scripts = [
            _DROP_ENDED.call([self._events_key(p), self._ends_key(p)], round(now * 1000), DROP_BUDGET) for p in due
        ]
        dropped = 0
        for partition, (events, next_ms) in zip(due, await self._send(scripts), strict=True):
            dropped += int(events)
            # None left: an end queued since expires a retention from now at the soonest.
            next_due = int(next_ms) / 1000 if int(next_ms) >= 0 else now + self._retention.streams
            if partition in self._ends_due:  # not ended meanwhile
                self._ends_due[partition] = next_due
        return dropped

    async def _purge_jobs(self) -> int:
        cutoff = _micros() - round(self._retention.jobs * 1_000_000)
        cap = self._retention.max_jobs if self._retention.max_jobs is not None else -1
        keys = (self._index("finished"), self._index("created"), self._index("purged"))
        (claimed,) = await self._send([_CLAIM_EXPIRED.call(keys, cutoff, cap, PURGE_BATCH)])
        ids = [raw.decode() for raw in claimed]
        if not ids:
            return 0
        jobs = await self._get_jobs(ids)
        drops = [command for job_id, job in zip(ids, jobs, strict=True) for command in self._drop_commands(job_id, job)]
        results = await self._send(drops)
        return len(ids) + sum(int(events) for events in results[::2])

    async def stats(self) -> StoreStats:
        now = time.monotonic()
        if self._stats is not None and now - self._stats[0] < self._stats_cache:
            return self._stats[1]
        await self.flush()
        jobs = await self._call(self._redis.zcard(self._index("created")))
        keys = [key async for key in self._redis.scan_iter(match=f"{self._prefix}:ev:*", count=1000)]
        events = sum(await self._send([("XLEN", key) for key in keys]))
        if isinstance(self._redis, RedisCluster):
            by_node = await self._call(self._redis.info("memory", target_nodes=RedisCluster.PRIMARIES))
            nodes = list(by_node.values())
        else:
            nodes = [await self._call(self._redis.info("memory"))]
        stats = StoreStats(jobs=jobs, events=events, bytes=sum(int(node["used_memory"]) for node in nodes))
        self._stats = (now, stats)
        return stats

    # JobBoard

    async def admit(
        self, job: JobRecord, *, max_jobs: int, max_jobs_per_session: int, announce: bool = True
    ) -> Admission:
        """Against this engine's shares of the limits: no round trip while they have room, one to ask for more.

        The job's lease, record and indexes go with the next batch; `announce` sends it at
        once, so that every replica lists the job when this returns (a REST job's id goes to a
        client that may ask any of them next).
        """
        jobs = self._jobs_share
        jobs.limit = max_jobs
        session = self._session_share(job.session_id, max_jobs_per_session)
        try:
            while not (jobs.has_room and (session is None or session.has_room)):
                verdict = await self._ask_for_shares(jobs, job.session_id, session)
                if verdict is not Admission.ADMITTED:
                    return verdict
            queue = self._queue()
            jobs.take()
            if session is not None:
                session.take()
            self._trim(job.session_id)  # jobs that ended while Redis was asked left more than the spare
        finally:
            self._forget_if_idle(job.session_id)  # a share made for a job refused
        token = self._tokens[job.id] = f"{self.runner}:1"  # epoch 1: the first engine to run the job
        queue.leases[job.id] = token
        queue.jobs[job.id] = job.model_copy()
        if announce:
            try:
                await self.flush()
            except StoreError:
                self._withdraw(job)
                raise
        return Admission.ADMITTED

    def _session_share(self, session_id: str | None, limit: int) -> Share | None:
        if session_id is None:
            return None
        share = self._session_shares.get(session_id)
        if share is None:
            share = self._session_shares[session_id] = Share(limit)
        share.limit = limit  # the settings of the engine asking (each admission passes them)
        return share

    async def _ask_for_shares(self, jobs: Share, session_id: str | None, session: Share | None) -> Admission:
        """One round trip (with whatever is queued) for shares with room for one more job."""
        now = _micros() // 1000
        keys = [self._shares_key(None), self._index("alive")]
        args: list[str | int] = [self.runner, now, now + self._lease_ms, jobs.needed, jobs.wanted, jobs.limit]
        if session is not None:
            keys.append(self._shares_key(session_id))
            args += [session.needed, session.wanted, session.limit, self._open_ttl]
        shares = [jobs] if session is None else [jobs, session]
        for share in shares:
            share.asking += 1
        try:
            verdict, *granted = (await self._write([_GRANT.call(keys, *args)]))[0]
        finally:
            for share in shares:
                share.asking -= 1
        if verdict == 0:
            for share, slots in zip(shares, granted, strict=False):
                share.granted = slots
        return (Admission.ADMITTED, Admission.TOO_MANY_JOBS, Admission.TOO_MANY_IN_SESSION)[verdict]

    def _shares_key(self, session_id: str | None) -> str:
        return self._index("shares" if session_id is None else f"shares:{session_id}")

    def _write_share(self, session_id: str | None, granted: int) -> None:
        key = self._shares_key(session_id)
        command = ("HSET", key, self.runner, granted) if granted else ("HDEL", key, self.runner)
        self._queued.commands.append(command)
        self._wake.set()

    def _forget_if_idle(self, session_id: str | None) -> None:
        """Give a session's share back once none of its jobs runs here, unless its MCP session lives here."""
        if session_id is None or session_id in self._local_sessions:
            return
        share = self._session_shares.get(session_id)
        if share is None or share.running:
            return
        del self._session_shares[session_id]
        if share.granted:
            self._write_share(session_id, 0)

    def _withdraw(self, job: JobRecord) -> None:
        """Undo an admission whose batch Redis refused (it would be written later, with nobody to run it)."""
        self._queued.leases.pop(job.id, None)
        self._queued.jobs.pop(job.id, None)
        self._tokens.pop(job.id, None)
        self._give_back(job.session_id)

    def _give_back(self, session_id: str | None) -> None:
        self._jobs_share.running -= 1
        share = self._session_shares.get(session_id) if session_id is not None else None
        if share is not None:
            share.running -= 1
        self._forget_if_idle(session_id)
        self._trim(session_id)

    def _trim(self, session_id: str | None) -> None:
        trimmed = self._jobs_share.trim()
        if trimmed is not None:
            self._write_share(None, trimmed)
        share = self._session_shares.get(session_id) if session_id is not None else None
        if share is not None and (trimmed := share.trim()) is not None:
            self._write_share(session_id, trimmed)

    def _give_up_shares(self) -> None:
        """At close: the shares go back to the other engines at once, not when this one's `alive` expires."""
        if self._jobs_share.granted:
            self._write_share(None, 0)
        for session_id, share in self._session_shares.items():
            if share.granted:
                self._write_share(session_id, 0)
        self._session_shares.clear()
        self._jobs_share = Share(limit=0)
        self._queued.commands.append(("ZREM", self._index("alive"), self.runner))

    async def release(self, job: JobRecord) -> None:
        """The lease goes with the final record (queued); the job's place is free once it is written."""
        token = self._tokens.pop(job.id, None)
        if token is not None:
            self._queue().releases[job.id] = token
            self._give_back(job.session_id)

    async def request_cancel(self, job_id: str) -> None:
        flag = ("SET", self._job_key(job_id, "cancel"), "1", "PX", round(max(self._retention.jobs, 60) * 1000))
        await self._send([flag, ("PUBLISH", f"{self._prefix}:cancel", job_id)])

    async def abandoned_jobs(self) -> Sequence[JobRecord]:
        """Record as interrupted every unfinished job whose lease has expired, and return them."""
        await self.flush()
        cutoff = _micros() - self._lease_ms * 1000  # younger ones may still be taking their lease
        ids = [
            raw.decode()
            for raw in await self._call(self._redis.zrangebyscore(self._index("unfinished"), "-inf", cutoff))
            if raw.decode() not in self._tokens
        ]
        if not ids:
            return []
        finished_at = utcnow().isoformat().replace("+00:00", "Z")
        ttl = round((self._retention.jobs * 2 + 3600) * 1000)
        commands = [
            _REAP.call(
                [self._job_key(job_id), self._job_key(job_id, "lease"), self._events_key(JOB_LOG_PREFIX + job_id)],
                finished_at,
                ttl,
                LOG_STREAM,
            )
            for job_id in ids
        ]
        reaped = []
        for job_id, raw in zip(ids, await self._send(commands), strict=True):
            if raw == b"gone":
                self._queued.commands.append(("ZREM", self._index("unfinished"), job_id))
            elif raw:
                job = JobRecord.model_validate_json(raw)
                self._queued.jobs[job.id] = job  # indexed as finished at the next flush
                reaped.append(job)
        self._wake.set()
        return reaped

    async def watch(self, runner: Runner) -> None:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self._listen_for_cancels, runner)
            while True:
                await anyio.sleep(self._lease_ms / 3000)
                try:
                    await self._renew(runner)
                    for job in await self.abandoned_jobs():
                        runner.lost(job)
                except StoreError as exc:
                    logger.warning("Redis store: lease renewal failed: %s", exc)

    async def _renew(self, runner: Runner) -> None:
        """The running jobs' leases and, if it holds shares, this engine's entry in `alive`: one round trip."""
        ids = [job_id for job_id in runner.running_job_ids() if job_id in self._tokens]
        holds_shares = bool(self._jobs_share.granted or self._session_shares)
        if not (ids or holds_shares):
            return
        keys = {job_id: [self._job_key(job_id, "lease"), self._job_key(job_id, "cancel")] for job_id in ids}
        commands: list[Command] = [_RENEW.call(keys[job_id], self._tokens[job_id], self._lease_ms) for job_id in ids]
        if holds_shares:
            commands.append(("ZADD", self._index("alive"), _micros() // 1000 + self._lease_ms, self.runner))
        # Behind the queued writes: a job admitted since the last flush has its lease only in the queue.
        verdicts = await self._write(commands)
        if holds_shares and verdicts.pop():  # added: taken for gone (stalled past a lease), its shares dropped
            for share in (self._jobs_share, *self._session_shares.values()):
                share.granted = 0
        for job_id, verdict in zip(ids, verdicts, strict=True):
            if verdict == 2:
                runner.stop(job_id, JobStatus.CANCELLED)
            elif verdict == 0:
                logger.error("job %s: this engine lost its lease; stopping it", job_id)
                self._tokens.pop(job_id, None)
                runner.stop(job_id, JobStatus.INTERRUPTED)

    async def _listen_for_cancels(self, runner: Runner) -> None:
        """The quick path of a cancel request; the durable flag, read at every renewal, is the sure one."""
        while True:
            try:
                pubsub = self._redis.pubsub()
                async with pubsub:
                    await pubsub.subscribe(f"{self._prefix}:cancel")
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            job_id = message["data"].decode()
                            if job_id in runner.running_job_ids():
                                runner.stop(job_id, JobStatus.CANCELLED)
            except (RedisError, OSError) as exc:
                logger.warning("Redis store: cancel subscription lost (%s); resubscribing", exc)
                await anyio.sleep(1)

    async def wait_for_events(self, job_id: str, after: int, within: float) -> None:
        key = self._events_key(JOB_LOG_PREFIX + job_id)
        with anyio.move_on_after(within + 1):
            await self._call(self._redis.xread({key: f"{after}-0"}, count=1, block=max(1, round(within * 1000))))

    # SessionRelay

    def register_session(self, session_id: str, owner: str | None) -> None:
        self._local_sessions.add(session_id)
        key = self._session_key(session_id)
        authenticated = "0" if owner is None else "1"
        commands = self._queued.commands
        commands.append(("HSET", key, "replica", self.replica, "owner", owner or "", "authenticated", authenticated))
        commands.append(("PEXPIRE", key, self._open_ttl))
        self._wake.set()

    def unregister_session(self, session_id: str) -> None:
        self._local_sessions.discard(session_id)
        self._forget_if_idle(session_id)
        self._queued.commands.append(("DEL", self._session_key(session_id)))
        self._wake.set()

    async def find_session(self, session_id: str) -> SessionRecord | None:
        await self.flush()
        found = await self._call(self._redis.hgetall(self._session_key(session_id)))
        if not found:
            return None
        owner = found[b"owner"].decode() if found.get(b"authenticated") == b"1" else None
        return SessionRecord(replica=found[b"replica"].decode(), owner=owner)

    async def relay(self, replica: str, session_id: str, notification: Notification) -> None:
        fields = {
            "session": session_id,
            "job": notification.job_id,
            "index": notification.index,
            "count": notification.count,
            "caller": notification.caller,
        }
        args = [item for pair in fields.items() for item in pair]
        command = ("XADD", self._inbox(replica), "MAXLEN", "~", RELAY_BACKLOG, "*", *args)
        self._queue().commands.append(command)

    async def serve_relayed(self, deliver: Callable[[str, Notification], Awaitable[None]]) -> None:
        inbox = self._inbox(self.replica)
        # From the inbox's top as it is now: what was relayed to a replica of this name before
        # this process started was for sessions that died with that replica.
        top = await self._call(self._redis.xrevrange(inbox, count=1))
        last = top[0][0].decode() if top else "0-0"
        renewed = time.monotonic()
        while True:
            try:
                found: Any = await self._redis.xread({inbox: last}, block=5000)
            except (RedisError, OSError) as exc:
                logger.warning("Redis store: relay inbox unreadable (%s); retrying", exc)
                await anyio.sleep(1)
                continue
            for _, entries in found or []:
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    text = {key.decode(): value.decode() for key, value in fields.items()}
                    notification = Notification(text["job"], int(text["index"]), int(text["count"]), text["caller"])
                    await deliver(text["session"], notification)
            # The live sessions' records expire unless renewed: a replica that crashed leaves none for long.
            if time.monotonic() - renewed > self._open_ttl / 4000:
                renewed = time.monotonic()
                for session_id in self._local_sessions:
                    self._queued.commands.append(("PEXPIRE", self._session_key(session_id), self._open_ttl))
                self._wake.set()

    # Calls

    async def _send(self, commands: Sequence[Command]) -> list[Any]:
        """Their replies, in one round trip; `StoreError` if Redis refused any of them."""
        replies: list[Any] = await self._call(self._wire_of().send(commands))
        for reply in replies:
            if isinstance(reply, Exception):
                raise StoreError(f"Redis refused: {reply}")
        return replies

    async def _call(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except ResponseError as exc:
            raise StoreError(f"Redis refused: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from exc


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> StoredEvent:
    return StoredEvent(int(entry_id.split(b"-", 1)[0]), fields.get(b"d"))
