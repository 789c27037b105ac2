"""The storage contract, run against every backend."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from uuid import uuid4

import anyio
import pytest

from service.domain.jobs import JobOrigin, JobRecord, JobSpec, JobStatus, new_job_id, utcnow
from service.stores.base import Retention, Storage, job_partition
from service.stores.memory import MemoryStorage
from service.stores.redis import RedisStorage
from service.stores.sqlite import SQLiteStorage
from service.stores.sqlite.statements import PURGE_BATCH, WRITE_CHUNK

pytestmark = [pytest.mark.anyio, pytest.mark.in_process]

Factory = Callable[..., Storage]
KEEP = Retention(events=60, jobs=60)


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    redis_url = None
    if request.param.startswith("redis"):
        node = request.getfixturevalue("redis" if request.param == "redis" else "redis_cluster_node")
        redis_url = node.url
    prefix = f"t{uuid4().hex[:12]}"  # each test its own keys: the server is shared

    def make(*, max_events: int = 1000, retention: Retention = KEEP) -> Storage:
        if request.param == "memory":
            return MemoryStorage(max_events_per_partition=max_events, retention=retention)
        if redis_url is not None:
            return RedisStorage(
                redis_url, max_events_per_partition=max_events, retention=retention, prefix=prefix, stats_cache=0
            )
        return SQLiteStorage(
            tmp_path / "store.db", max_events_per_partition=max_events, retention=retention, flush_interval=0.01
        )

    return make


@pytest.fixture
async def storage(make_storage: Factory) -> AsyncIterator[Storage]:
    async with make_storage() as opened:
        yield opened


def a_job(caller: str = "tester", status: JobStatus = JobStatus.PENDING) -> JobRecord:
    job = JobRecord.new(new_job_id(), JobSpec(interval=0.1, count=3, caller=caller), JobOrigin.REST, None, None, "test")
    job.status = status
    return job


async def test_events_come_back_in_order_per_stream(storage: Storage) -> None:
    ids = [await storage.append("s1", "0", f"a{i}".encode()) for i in range(5)]
    other = await storage.append("s1", "1", b"other stream")
    more = await storage.append("s1", "0", b"a5")
    assert ids == sorted(ids)
    assert ids[-1] < other < more
    events = await storage.read("s1", "0")
    assert [e.data for e in events] == [b"a0", b"a1", b"a2", b"a3", b"a4", b"a5"]
    assert [e.data for e in await storage.read("s1", "0", after=ids[2])] == [b"a3", b"a4", b"a5"]
    assert await storage.stream_of("s1", other) == "1"


async def test_priming_events_are_kept_without_payload(storage: Storage) -> None:
    priming = await storage.append("s", "0", None)
    data = await storage.append("s", "0", b"x")
    assert [(e.id, e.data) for e in await storage.read("s", "0")] == [(priming, None), (data, b"x")]
    assert await storage.stream_of("s", priming) == "0"


async def test_scopes_are_isolated(storage: Storage) -> None:
    mine = await storage.append("session-a", "0", b"mine")
    await storage.append("session-b", "0", b"theirs")
    assert await storage.stream_of("session-b", mine) is None
    assert [e.data for e in await storage.read("session-b", "0")] == [b"theirs"]
    assert await storage.stream_of("session-a", 999_999) is None


async def test_the_per_scope_cap_evicts_the_oldest(make_storage: Factory) -> None:
    async with make_storage(max_events=100) as storage:
        ids = [await storage.append("s", "0", b"%d" % i) for i in range(150)]
        await storage.append("t", "0", b"unaffected")
        if isinstance(storage, SQLiteStorage):
            await storage.flush()
        kept = await storage.read("s", "0")
        assert [e.id for e in kept] == ids[-100:]
        assert await storage.stream_of("s", ids[0]) is None
        assert len(await storage.read("t", "0")) == 1


async def test_an_ended_scope_is_dropped_after_the_retention(make_storage: Factory) -> None:
    async with make_storage(retention=Retention(events=0)) as storage:
        first = await storage.append("gone", "0", b"x")
        kept = await storage.append("open", "0", b"y")
        await storage.end_partition("gone")
        await storage.purge()
        assert await storage.stream_of("gone", first) is None
        assert await storage.stream_of("open", kept) == "0"


async def test_the_cap_evicts_the_oldest_across_streams(make_storage: Factory) -> None:
    async with make_storage(max_events=100) as storage:
        ids = [await storage.append("s", str(i % 3), b"%d" % i) for i in range(150)]
        if isinstance(storage, SQLiteStorage):
            await storage.flush()
        kept = sorted([e.id for stream in "012" for e in await storage.read("s", stream)])
        assert kept == ids[-100:]


async def test_an_ended_stream_goes_after_its_retention_while_its_session_lives(make_storage: Factory) -> None:
    async with make_storage(retention=Retention(events=60, streams=0)) as storage:
        finished = [await storage.append("s", "0", b"%d" % i) for i in range(5)]
        running = [await storage.append("s", "1", b"running")]
        await storage.end_stream("s", "0", finished[0], finished[-1])
        reused = await storage.append("s", "0", b"a later request with the same id")
        running.append(await storage.append("s", "1", b"running"))
        await storage.purge()
        assert await storage.stream_of("s", finished[0]) is None
        assert [e.id for e in await storage.read("s", "0")] == [reused]
        assert [e.id for e in await storage.read("s", "1")] == running
        assert await storage.stream_of("s", running[0]) == "1"
        assert (await storage.stats()).events == 3


async def test_an_ended_stream_stays_resumable_within_its_retention(make_storage: Factory) -> None:
    async with make_storage(retention=Retention(events=60, streams=60)) as storage:
        ids = [await storage.append("s", "0", b"%d" % i) for i in range(3)]
        await storage.end_stream("s", "0", ids[0], ids[-1])
        await storage.purge()
        assert [e.id for e in await storage.read("s", "0")] == ids


async def test_a_stream_ended_after_every_event_is_bounded_by_age(make_storage: Factory) -> None:
    """The session's standalone stream: each event goes a retention after it was written."""
    async with make_storage(retention=Retention(events=60, streams=1.0)) as storage:
        old = await storage.append("s", "_GET_stream", b"old")
        await storage.end_stream("s", "_GET_stream", old, old)
        await anyio.sleep(1.2)
        new = await storage.append("s", "_GET_stream", b"new")
        await storage.end_stream("s", "_GET_stream", new, new)
        await storage.purge()
        assert await storage.stream_of("s", old) is None
        assert [e.id for e in await storage.read("s", "_GET_stream")] == [new]


async def test_a_long_ended_stream_goes_in_bounded_steps_and_leaves_its_neighbours(make_storage: Factory) -> None:
    async with make_storage(max_events=10_000, retention=Retention(events=60, streams=0)) as storage:
        neighbours, long = [], []
        for i in range(3000):
            long.append(await storage.append("s", "long", b"%d" % i))
            if i % 2:
                neighbours.append(await storage.append("s", "other", b"%d" % i))
        await storage.end_stream("s", "long", long[0], long[-1])
        await storage.purge()
        assert await storage.read("s", "long") == []
        assert (await storage.stats()).events == len(neighbours)
        assert [e.id for e in await storage.read("s", "other")] == neighbours


async def test_jobs_are_listed_newest_first_with_filters(storage: Storage) -> None:
    jobs = [a_job(f"c{i}", JobStatus.COMPLETED if i % 2 else JobStatus.RUNNING) for i in range(5)]
    for job in jobs:
        await storage.save_job(job)
        await anyio.sleep(0.001)
    listed = await storage.list_jobs(status=None, owner=None, limit=10, offset=0)
    assert [j.id for j in listed] == [j.id for j in reversed(jobs)]
    completed = await storage.list_jobs(status=JobStatus.COMPLETED, owner=None, limit=10, offset=0)
    assert [j.caller for j in completed] == ["c3", "c1"]
    page = await storage.list_jobs(status=None, owner=None, limit=2, offset=2)
    assert [j.caller for j in page] == ["c2", "c1"]
    assert {j.caller for j in await storage.unfinished_jobs()} == {"c0", "c2", "c4"}


async def test_a_saved_job_reads_back_equal(storage: Storage) -> None:
    job = a_job()
    await storage.save_job(job)
    job.status, job.sent = JobStatus.RUNNING, 2
    await storage.save_job(job)
    assert await storage.get_job(job.id) == job
    assert await storage.get_job("0" * 32) is None


async def test_sqlite_keeps_everything_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    job = a_job()
    async with SQLiteStorage(path, max_events_per_partition=100, retention=KEEP) as storage:
        await storage.save_job(job)
        first = await storage.append("job:x", "log", b"one")
    async with SQLiteStorage(path, max_events_per_partition=100, retention=KEEP) as storage:
        assert await storage.get_job(job.id) == job
        assert [e.data for e in await storage.read("job:x", "log")] == [b"one"]
        assert await storage.append("job:x", "log", b"two") > first


async def test_sqlite_writes_a_flush_larger_than_a_chunk_whole(tmp_path: Path) -> None:
    """A flush is written in chunks of `WRITE_CHUNK` rows: none is lost at a chunk's edge."""
    path = tmp_path / "chunks.db"
    payloads = [f"e{i}".encode() for i in range(2 * WRITE_CHUNK + 1)]
    jobs = [a_job(caller=f"c{i}") for i in range(WRITE_CHUNK + 1)]
    async with SQLiteStorage(path, max_events_per_partition=10_000, retention=KEEP, flush_interval=5) as storage:
        for payload in payloads:
            await storage.append("job:x", "log", payload)
        for job in jobs:
            await storage.save_job(job)
        await storage.flush()  # one flush, well before the periodic one
    async with SQLiteStorage(path, max_events_per_partition=10_000, retention=KEEP) as storage:
        assert [e.data for e in await storage.read("job:x", "log")] == payloads
        listed = await storage.list_jobs(status=None, owner=None, limit=len(jobs) + 1, offset=0)
        assert sorted(job.caller for job in listed) == sorted(job.caller for job in jobs)


async def test_sqlite_holds_a_producer_to_the_disks_pace(tmp_path: Path) -> None:
    """Past `max_queued` rows, `append` writes the queue before it returns: the queue stays bounded."""
    async with SQLiteStorage(
        tmp_path / "s.db", max_events_per_partition=10_000, retention=KEEP, flush_interval=60, max_queued=100
    ) as storage:
        queued = []
        for n in range(1000):
            await storage.append("p", "s", b"%d" % n)
            queued.append(len(storage._writes.queued.rows))
        assert max(queued) < 100  # with no flush due for a minute, only the bound wrote them
        assert [event.data for event in await storage.read("p", "s")] == [b"%d" % n for n in range(1000)]
    async with SQLiteStorage(tmp_path / "s.db", max_events_per_partition=10_000, retention=KEEP) as reopened:
        assert len(await reopened.read("p", "s")) == 1000


async def test_a_deleted_job_and_its_dropped_log_are_gone(storage: Storage) -> None:
    kept, deleted = a_job("kept"), a_job("deleted")
    for job in (kept, deleted):
        await storage.save_job(job)
        await storage.append(job_partition(job.id), "log", b"x")
    if isinstance(storage, SQLiteStorage):
        await storage.flush()  # written; one more event of the deleted job stays queued
    event = await storage.append(job_partition(deleted.id), "log", b"queued")
    await storage.delete_job(deleted.id)
    await storage.delete_job("0" * 32)  # unknown: no error
    assert await storage.get_job(deleted.id) is None
    assert await storage.read(job_partition(deleted.id), "log") == []
    assert await storage.stream_of(job_partition(deleted.id), event) is None
    assert [j.id for j in await storage.list_jobs(status=None, owner=None, limit=10, offset=0)] == [kept.id]
    assert len(await storage.read(job_partition(kept.id), "log")) == 1


def finished_job(caller: str, status: JobStatus = JobStatus.COMPLETED) -> JobRecord:
    job = a_job(caller, status)
    job.finished_at = utcnow()
    return job


async def test_finished_jobs_and_their_logs_expire_running_ones_never(make_storage: Factory) -> None:
    async with make_storage(retention=Retention(events=60, jobs=0)) as storage:
        done, running = finished_job("done"), a_job("running", JobStatus.RUNNING)
        for job in (done, running):
            await storage.append(job_partition(job.id), "log", b"x")
            await storage.save_job(job)
        await storage.purge()
        assert await storage.get_job(done.id) is None
        assert await storage.read(job_partition(done.id), "log") == []
        assert await storage.get_job(running.id) == running
        assert len(await storage.read(job_partition(running.id), "log")) == 1
        assert await storage.was_purged(done.id)
        await anyio.sleep(0.002)  # ids are ordered by the millisecond
        assert not await storage.was_purged(new_job_id())  # newer than anything purged: it never existed


async def test_the_cap_keeps_the_newest_finished_jobs(make_storage: Factory) -> None:
    async with make_storage(retention=Retention(events=60, jobs=3600, max_jobs=3)) as storage:
        jobs = []
        for index in range(5):
            jobs.append(finished_job(f"c{index}"))  # each finished after the one before: no tie to break
            await storage.save_job(jobs[-1])
            await anyio.sleep(0.002)
        running = a_job("running", JobStatus.RUNNING)
        await storage.save_job(running)
        await storage.purge()
        listed = await storage.list_jobs(status=None, owner=None, limit=10, offset=0)
        assert {job.caller for job in listed} == {"c2", "c3", "c4", "running"}
        assert await storage.was_purged(jobs[1].id)


async def test_stats_count_what_is_stored(storage: Storage) -> None:
    before = await storage.stats()
    await storage.save_job(a_job())
    for _ in range(3):
        await storage.append("s", "0", b"12345")
    if isinstance(storage, SQLiteStorage):
        await storage.flush()  # jobs are counted as of the last flush
    after = await storage.stats()
    assert (after.jobs - before.jobs, after.events - before.events) == (1, 3)
    assert after.bytes >= 15


async def test_sqlite_purges_in_bounded_batches(tmp_path: Path) -> None:
    async with SQLiteStorage(
        tmp_path / "batches.db",
        max_events_per_partition=10_000,
        retention=Retention(events=0, jobs=0),
        flush_interval=5,
    ) as storage:
        jobs = [finished_job(f"c{i}") for i in range(2 * PURGE_BATCH + 1)]
        for job in jobs:
            await storage.append(job_partition(job.id), "log", b"x")
            await storage.save_job(job)
        for i in range(PURGE_BATCH + 1):
            await storage.append("session", "0", b"%d" % i)
        await storage.end_partition("session")
        await storage.flush()
        first = await storage._purge_step()
        assert 0 < first <= 2 * PURGE_BATCH + PURGE_BATCH  # one batch of jobs (and their logs) and one of events
        assert await storage.purge() + first == 2 * len(jobs) + PURGE_BATCH + 1
        assert (await storage.stats()).jobs == 0


async def test_sqlite_expires_the_sessions_a_crash_left_open(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    async with SQLiteStorage(path, max_events_per_partition=100, retention=KEEP) as storage:
        event = await storage.append("session-of-a-crashed-process", "0", b"x")
        job_event = await storage.append(job_partition("a" * 32), "log", b"y")
    # No end_partition: that process died with its session open. The next one ends it.
    async with SQLiteStorage(path, max_events_per_partition=100, retention=Retention(events=0)) as storage:
        await storage.purge()
        assert await storage.stream_of("session-of-a-crashed-process", event) is None
        assert await storage.stream_of(job_partition("a" * 32), job_event) == "log"  # the job's retention rules it


async def test_sqlite_from_before_retention_is_migrated(tmp_path: Path) -> None:
    """A database written before jobs had a `finished` column: its finished jobs expire too."""
    path = tmp_path / "old.db"
    old, running = finished_job("old"), a_job("running", JobStatus.RUNNING)
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, owner TEXT, created_at TEXT NOT NULL,"
        " body TEXT NOT NULL)"
    )
    for job in (old, running):
        row = (job.id, job.status.value, None, job.created_at.isoformat(), job.model_dump_json())
        db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?)", row)
    db.commit()
    db.close()
    async with SQLiteStorage(path, max_events_per_partition=100, retention=Retention(jobs=0)) as storage:
        await storage.purge()
        assert await storage.get_job(old.id) is None
        assert await storage.get_job(running.id) == running


async def test_sqlite_from_before_partitions_were_named_is_migrated(tmp_path: Path) -> None:
    """A database whose events lived in `scope`s: the same events, found by partition."""
    path = tmp_path / "scopes.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, stream TEXT NOT NULL,"
        " data BLOB);"
        "CREATE INDEX events_by_scope ON events (scope, id);"
        "CREATE TABLE ended_scopes (scope TEXT PRIMARY KEY, expires_at REAL NOT NULL);"
        "INSERT INTO events (scope, stream, data) VALUES ('job:x', 'log', x'7b7d');"
        "INSERT INTO ended_scopes VALUES ('mcp:gone', 0);"
    )
    db.commit()
    db.close()
    async with SQLiteStorage(path, max_events_per_partition=100, retention=Retention()) as storage:
        assert [event.data for event in await storage.read("job:x", "log")] == [b"{}"]
        assert await storage.stream_of("job:x", 1) == "log"
    db = sqlite3.connect(path)
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert {"events_by_partition", "ended_partitions"} <= names
    assert not {"events_by_scope", "ended_scopes"} & names
