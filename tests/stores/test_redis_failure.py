"""The Redis store when Redis fails under it: a real redis-server, made to forget and to drop its clients."""

from __future__ import annotations

import json
import os
import signal
from uuid import uuid4

import anyio
import pytest

from service.cluster.redis_server import RedisServer
from service.domain.jobs import JobOrigin, JobSpec, JobStatus
from service.jobs.engine import JobEngine, JobLimits
from service.stores.base import LOG_STREAM, Retention, StoredEvent, StoreError, job_partition
from service.stores.redis import RedisStorage

pytestmark = pytest.mark.anyio


async def test_a_redis_that_restarted_without_its_scripts_is_written_to_again(redis: RedisServer) -> None:
    """A restart forgets the scripts and drops every connection: the batch that meets it (NOSCRIPT, and a
    reload on a dead connection) goes again once Redis answers, and the store's writer keeps running."""
    partition = f"session:{uuid4().hex}"
    async with RedisStorage(
        redis.url, max_events_per_partition=100, retention=Retention(), prefix=f"t{uuid4().hex[:8]}"
    ) as storage:
        first = await storage.append(partition, "s", b"before")
        await storage.flush()
        redis.command("SCRIPT", "FLUSH")
        redis.command("CLIENT", "KILL", "TYPE", "normal")  # the store's connections, as a restart drops them
        second = await storage.append(partition, "s", b"after")
        with anyio.fail_after(10):
            while [event.id for event in await _durable(storage, partition)] != [first, second]:
                await anyio.sleep(0.1)
        third = await storage.append(partition, "s", b"later")  # the writer still writes on its own
        with anyio.fail_after(10):
            while len(await _durable(storage, partition)) < 3:
                await anyio.sleep(0.1)
        assert [event.data for event in await _durable(storage, partition)] == [b"before", b"after", b"later"]
        assert third > second


async def _durable(storage: RedisStorage, partition: str) -> list[StoredEvent]:
    try:
        return list(await storage.read(partition, "s"))
    except StoreError:  # Redis is still coming back: read again
        return []


async def test_a_running_job_waits_for_a_redis_that_stands_still_and_no_caller_waits_longer_than_a_second(
    redis: RedisServer,
) -> None:
    """Redis paused (SIGSTOP) for 2.5 s under a running job: a read is refused within about a second, the job
    waits rather than fail, and once Redis is back it completes with every notification in its log, once."""
    assert redis.proc is not None
    storage = RedisStorage(
        redis.url, max_events_per_partition=1000, retention=Retention(), prefix=f"t{uuid4().hex[:8]}", lease_ttl=5
    )
    async with storage:
        engine = JobEngine(storage, JobLimits(max_jobs=5, max_jobs_per_session=5), board=storage)
        async with engine.running():
            job = await engine.start(JobSpec(interval=0.05, count=40, caller="paused"), origin=JobOrigin.REST)
            await anyio.sleep(0.5)
            os.kill(redis.proc.pid, signal.SIGSTOP)
            try:
                await anyio.sleep(0.3)
                asked = anyio.current_time()
                with pytest.raises(StoreError, match="did not answer"):
                    await storage.get_job(uuid4().hex)
                assert anyio.current_time() - asked < 2.2  # a batch on its way (up to a second), then its own
                await anyio.sleep(2.5 - (anyio.current_time() - asked))
                running = await engine.get(job.id)
                assert running is not None
                assert running.status is JobStatus.RUNNING  # waiting, not failed
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
            with anyio.fail_after(20):
                while (seen := await engine.get(job.id)) is not None and not seen.status.is_final:
                    await anyio.sleep(0.05)
        assert seen is not None
        assert (seen.status, seen.sent) == (JobStatus.COMPLETED, 40)
        log = await storage.read(job_partition(job.id), LOG_STREAM)
        assert [json.loads(event.data or b"")["index"] for event in log if event.data] == list(range(1, 41))
