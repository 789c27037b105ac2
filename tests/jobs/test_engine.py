"""The job engine against the in-memory store: scheduling, cancellation, limits, fan-out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.lowlevel
import pytest
from typing_extensions import override

from service.domain.jobs import JobOrigin, JobRecord, JobSpec, JobStatus, new_job_id
from service.domain.notifications import Notification
from service.jobs.engine import BURST, JobEngine, JobLimits, TooManyJobs
from service.stores.base import Retention, job_partition
from service.stores.memory import MemoryStorage

pytestmark = [pytest.mark.anyio, pytest.mark.in_process]

LIMITS = JobLimits(max_jobs=3, max_jobs_per_session=2)


class ListSink:
    def __init__(self) -> None:
        self.received: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.received.append(notification)


class BrokenSink:
    async def send(self, notification: Notification) -> None:
        raise ConnectionError("stream closed")


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage(max_events_per_partition=10_000, retention=Retention(events=60))


@pytest.fixture
async def engine(storage: MemoryStorage) -> AsyncIterator[JobEngine]:
    engine = JobEngine(storage, LIMITS)
    async with engine.running():
        yield engine


def spec(count: int = 3, interval: float = 0.0, caller: str = "unit") -> JobSpec:
    return JobSpec(interval=interval, count=count, caller=caller)


async def test_a_job_sends_every_notification_then_completes(engine: JobEngine, storage: MemoryStorage) -> None:
    sink = ListSink()
    job = await engine.start(spec(count=4), origin=JobOrigin.REST, sinks=[sink])
    assert job.status is JobStatus.PENDING
    async for _ in engine.follow(job.id):
        pass
    final = await engine.get(job.id)
    assert final is not None
    assert (final.status, final.sent) == (JobStatus.COMPLETED, 4)
    assert final.started_at is not None
    assert final.finished_at is not None
    assert [n.index for n in sink.received] == [1, 2, 3, 4]
    logged = [json.loads(e.data or b"") for e in await storage.read(job_partition(job.id), "log")]
    assert [entry["message"] for entry in logged] == [n.message for n in sink.received]
    assert await storage.get_job(job.id) == final


async def test_cancel_stops_a_job_and_records_how_far_it_got(engine: JobEngine) -> None:
    sink = ListSink()
    job = await engine.start(spec(count=100, interval=0.01), origin=JobOrigin.REST, sinks=[sink])
    with anyio.fail_after(5):
        while len(sink.received) < 3:
            await anyio.sleep(0.005)
    cancelled = await engine.cancel(job.id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    assert 3 <= cancelled.sent < 100
    assert cancelled.sent == len(sink.received)


async def test_run_runs_the_job_in_the_callers_task_and_returns_its_final_state(
    engine: JobEngine, storage: MemoryStorage
) -> None:
    tasks: set[object] = set()

    class TaskSink(ListSink):
        @override
        async def send(self, notification: Notification) -> None:
            tasks.add(anyio.get_current_task().id)
            await super().send(notification)

    sink = TaskSink()
    final = await engine.run(spec(count=3), origin=JobOrigin.MCP, session_id="s", sinks=[sink])
    assert (final.status, final.sent, len(sink.received)) == (JobStatus.COMPLETED, 3, 3)
    assert final.runner == engine.runner_id  # the seam the replicas' leases hang on
    assert tasks == {anyio.get_current_task().id}
    assert await storage.get_job(final.id) == final
    assert engine.running_count == 0


async def _run_until_second_notification(engine: JobEngine, on_second: Callable[[str], None]) -> JobRecord:
    """Run a long job; call `on_second(job_id)` from its sink at the second notification."""

    class Trigger:
        async def send(self, notification: Notification) -> None:
            if notification.index == 2:
                on_second(notification.job_id)

    with anyio.fail_after(5):
        return await engine.run(spec(count=100, interval=0.01), origin=JobOrigin.MCP, sinks=[Trigger()])


async def test_cancelling_the_caller_of_run_records_the_job_as_cancelled(
    engine: JobEngine, storage: MemoryStorage
) -> None:
    job_ids: list[str] = []
    with anyio.CancelScope() as caller:

        def give_up(job_id: str) -> None:
            job_ids.append(job_id)
            caller.cancel()

        await _run_until_second_notification(engine, give_up)
    assert caller.cancelled_caught
    saved = await storage.get_job(job_ids[0])
    assert saved is not None
    assert (saved.status, saved.sent) == (JobStatus.CANCELLED, 2)
    assert engine.running_count == 0


async def test_cancel_and_shutdown_reach_a_job_run_in_its_callers_task(engine: JobEngine) -> None:
    async with anyio.create_task_group() as task_group:

        def cancel(job_id: str) -> None:
            task_group.start_soon(engine.cancel, job_id)

        cancelled = await _run_until_second_notification(engine, cancel)
    interrupted = await _run_until_second_notification(engine, lambda _: engine.shutdown())
    assert (cancelled.status, interrupted.status) == (JobStatus.CANCELLED, JobStatus.INTERRUPTED)
    assert 2 <= cancelled.sent < 100
    assert interrupted.sent == 2


async def test_load_limits_are_enforced_with_messages_that_name_them(engine: JobEngine) -> None:
    for _ in range(2):
        await engine.start(spec(count=5, interval=1), origin=JobOrigin.MCP, session_id="s")
    with pytest.raises(TooManyJobs, match="SERVICE_MAX_JOBS_PER_SESSION"):
        await engine.start(spec(), origin=JobOrigin.MCP, session_id="s")
    with pytest.raises(TooManyJobs, match="SERVICE_MAX_JOBS_PER_SESSION"):
        await engine.run(spec(), origin=JobOrigin.MCP, session_id="s")
    await engine.start(spec(count=5, interval=1), origin=JobOrigin.REST)
    with pytest.raises(TooManyJobs, match=r"SERVICE_MAX_JOBS\)"):
        await engine.start(spec(), origin=JobOrigin.REST)


async def test_delete_cancels_a_running_job_and_forgets_it(engine: JobEngine, storage: MemoryStorage) -> None:
    job = await engine.start(spec(count=100, interval=0.01), origin=JobOrigin.REST)
    deleted = await engine.delete(job.id)
    assert deleted is not None
    assert deleted.status is JobStatus.CANCELLED
    assert await engine.get(job.id) is None
    assert await storage.read(job_partition(job.id), "log") == []
    assert await engine.delete(job.id) is None


async def test_a_broken_sink_does_not_stop_the_job_or_other_sinks(engine: JobEngine) -> None:
    good = ListSink()
    final = await engine.run(spec(count=3), origin=JobOrigin.REST, sinks=[BrokenSink(), good])
    assert final.status is JobStatus.COMPLETED
    assert len(good.received) == 3


async def test_shutdown_records_running_jobs_as_interrupted(storage: MemoryStorage) -> None:
    engine = JobEngine(storage, LIMITS)
    async with engine.running():
        job = await engine.start(spec(count=100, interval=0.05), origin=JobOrigin.REST)
        await anyio.sleep(0.12)
    saved = await storage.get_job(job.id)
    assert saved is not None
    assert saved.status is JobStatus.INTERRUPTED
    assert 1 <= saved.sent < 100


async def test_jobs_left_running_by_a_previous_process_are_marked_interrupted(storage: MemoryStorage) -> None:
    leftover = JobRecord.new(new_job_id(), spec(count=5), JobOrigin.REST, None, None, "a-crashed-process")
    leftover.status = JobStatus.RUNNING
    await storage.save_job(leftover)
    await storage.append(job_partition(leftover.id), "log", b"{}")
    async with JobEngine(storage, LIMITS).running():
        saved = await storage.get_job(leftover.id)
    assert saved is not None
    assert (saved.status, saved.sent) == (JobStatus.INTERRUPTED, 1)


async def test_follow_streams_live_until_the_job_ends(engine: JobEngine) -> None:
    job = await engine.start(spec(count=5, interval=0.01), origin=JobOrigin.REST)
    seen = [event.id async for event in engine.follow(job.id) if event is not None]
    assert len(seen) == 5
    assert seen == sorted(seen)
    resumed = [event.id async for event in engine.follow(job.id, after=seen[1]) if event is not None]
    assert resumed == seen[2:]


async def test_notifications_keep_to_the_schedule(engine: JobEngine) -> None:
    """Each send is due at start + i * interval: slow sinks do not push the later ones back."""
    times: list[float] = []

    class SlowSink:
        async def send(self, notification: Notification) -> None:
            times.append(anyio.current_time())
            await anyio.sleep(0.04)

    await engine.run(spec(count=6, interval=0.05), origin=JobOrigin.REST, sinks=[SlowSink()])
    # On schedule the last send is due 5 * 0.05 = 0.25 s after the first; had each delay
    # accumulated, it would come 5 * (0.05 + 0.04) = 0.45 s after it.
    assert times[-1] - times[0] < 0.40, times


async def test_a_due_job_sends_in_bursts_and_still_lets_other_tasks_run(engine: JobEngine) -> None:
    """An `interval` of 0: BURST notifications between two trips through the event loop, never all of them."""
    turns = 0
    seen: list[int] = []  # how many turns another task had had when each notification was sent

    class TurnSink:
        async def send(self, notification: Notification) -> None:
            seen.append(turns)

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(other_task)
        await anyio.lowlevel.checkpoint()
        job = await engine.run(spec(count=4 * BURST), origin=JobOrigin.MCP, sinks=[TurnSink()])
        tasks.cancel_scope.cancel()
    assert job.sent == 4 * BURST
    bursts = [len([turn for turn in seen if turn == value]) for value in sorted(set(seen))]
    assert len(bursts) >= 4  # the other task ran between bursts...
    assert max(bursts) <= BURST  # ...at least every BURST notifications
    assert min(bursts[1:-1], default=BURST) > 1  # and not between every two of them
