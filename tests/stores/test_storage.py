"""The storage contract, run against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from service.jobs.models import Job, JobOrigin, JobSpec, JobStatus
from service.stores.base import Storage
from service.stores.memory import MemoryStorage
from service.stores.sqlite import WRITE_CHUNK, SQLiteStorage

pytestmark = pytest.mark.anyio

Factory = Callable[..., Storage]


@pytest.fixture(params=["memory", "sqlite"])
def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    def make(*, max_events: int = 1000, retention: float = 60.0) -> Storage:
        if request.param == "memory":
            return MemoryStorage(max_events_per_scope=max_events, retention=retention)
        return SQLiteStorage(
            tmp_path / "store.db", max_events_per_scope=max_events, retention=retention, flush_interval=0.01
        )

    return make


@pytest.fixture
async def storage(make_storage: Factory) -> AsyncIterator[Storage]:
    async with make_storage() as opened:
        yield opened


def a_job(caller: str = "tester", status: JobStatus = JobStatus.PENDING) -> Job:
    job = Job.new(JobSpec(interval=0.1, count=3, caller=caller), JobOrigin.REST, None, None)
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
    async with make_storage(retention=0.0) as storage:
        first = await storage.append("gone", "0", b"x")
        await storage.end_scope("gone")
        await storage.end_scope("trigger")  # ending another scope purges what has expired
        if isinstance(storage, SQLiteStorage):
            await storage.purge_expired()  # its flusher does this once a minute
        assert await storage.stream_of("gone", first) is None


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
    async with SQLiteStorage(path, max_events_per_scope=100, retention=60) as storage:
        await storage.save_job(job)
        first = await storage.append("job:x", "log", b"one")
    async with SQLiteStorage(path, max_events_per_scope=100, retention=60) as storage:
        assert await storage.get_job(job.id) == job
        assert [e.data for e in await storage.read("job:x", "log")] == [b"one"]
        assert await storage.append("job:x", "log", b"two") > first


async def test_sqlite_writes_a_flush_larger_than_a_chunk_whole(tmp_path: Path) -> None:
    """A flush is written in chunks of `WRITE_CHUNK` rows: none is lost at a chunk's edge."""
    path = tmp_path / "chunks.db"
    payloads = [f"e{i}".encode() for i in range(2 * WRITE_CHUNK + 1)]
    jobs = [a_job(caller=f"c{i}") for i in range(WRITE_CHUNK + 1)]
    async with SQLiteStorage(path, max_events_per_scope=10_000, retention=60, flush_interval=5) as storage:
        for payload in payloads:
            await storage.append("job:x", "log", payload)
        for job in jobs:
            await storage.save_job(job)
        await storage.flush()  # one flush, well before the periodic one
    async with SQLiteStorage(path, max_events_per_scope=10_000, retention=60) as storage:
        assert [e.data for e in await storage.read("job:x", "log")] == payloads
        listed = await storage.list_jobs(status=None, owner=None, limit=len(jobs) + 1, offset=0)
        assert sorted(job.caller for job in listed) == sorted(job.caller for job in jobs)


async def test_a_deleted_job_and_its_dropped_log_are_gone(storage: Storage) -> None:
    kept, deleted = a_job("kept"), a_job("deleted")
    for job in (kept, deleted):
        await storage.save_job(job)
        await storage.append(f"job:{job.id}", "log", b"x")
    if isinstance(storage, SQLiteStorage):
        await storage.flush()  # written; one more event of the deleted job stays queued
    event = await storage.append(f"job:{deleted.id}", "log", b"queued")
    await storage.delete_job(deleted.id)
    await storage.drop_scope(f"job:{deleted.id}")
    await storage.delete_job("0" * 32)  # unknown: no error
    assert await storage.get_job(deleted.id) is None
    assert await storage.read(f"job:{deleted.id}", "log") == []
    assert await storage.stream_of(f"job:{deleted.id}", event) is None
    assert [j.id for j in await storage.list_jobs(status=None, owner=None, limit=10, offset=0)] == [kept.id]
    assert len(await storage.read(f"job:{kept.id}", "log")) == 1
