"""The job engine: runs notification jobs in its own task group and fans each notification out.

Every notification goes first to the job's own event log (durable, readable over REST
as an SSE stream) and then to the job's sinks: the MCP tool call's stream, or an MCP
session's standalone GET stream. Sinks are supplied by whoever starts the job, so the
engine knows nothing of MCP or HTTP.

Engines that share a store (replicas on Redis) answer for each other's jobs through the
store's `JobBoard`: a job is admitted against cluster-wide limits and leased to the engine
that runs it; a cancel reaches that engine wherever it is; a job's log is followed from any
replica. One process alone gets the `LocalBoard`, where all of that is in-process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from service.domain.jobs import (
    JobOrigin,
    JobRecord,
    JobSpec,
    JobStatus,
    McpCall,
    McpTask,
    new_job_id,
    new_runner_id,
    utcnow,
)
from service.domain.notifications import CallSink, Notification, Sink
from service.stores.base import (
    LOG_STREAM,
    Admission,
    JobBoard,
    Storage,
    StoredEvent,
    StoreError,
    StoreStats,
    job_partition,
)
from service.stores.local import LocalBoard
from service.telemetry import context
from service.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer  # the API, with the MCP SDK; spans only when tracing is configured

__all__ = ["LOG_STREAM", "Body", "JobEngine", "JobLimits", "TooManyJobs"]

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0
"""Seconds between saves of a running job's progress (`sent`): what other replicas, and a restart, see of it."""
CANCEL_WAIT = 5.0
"""Seconds a cancel waits for a job that runs elsewhere to stop (its engine checks within a second)."""
STALL = 1.0
"""Seconds a job may wake late before it asks the board whether it still runs it (`JobBoard.holds`)."""
STORE_OUTAGE = 60.0
"""Seconds a running job waits for its store to come back (Redis failing over or restarting) before it fails."""
STORE_RETRY = 0.5
Body = Callable[[], Awaitable[dict[str, Any]]]
"""A job's own work, instead of notifications: a tool run as a task (its answer becomes the job's `outcome`)."""
BURST = 64
"""A job that is due (an `interval` of 0, or behind) sends up to this many notifications between two trips
through the event loop: its stream's writer then sends them in one write, instead of one write (and one
wake-up) per notification. Other tasks still get the loop every `BURST` notifications."""


@dataclass(frozen=True, slots=True)
class JobLimits:
    """How many jobs may run at once. What a job may ask for is its spec's business (`spec_model`)."""

    max_jobs: int
    max_jobs_per_session: int


class TooManyJobs(Exception):
    """Refused for load, not for content: retry later. The message names the limit and its setting."""


@dataclass(eq=False)
class _LiveJob:
    job: JobRecord
    sinks: list[Sink]
    cancel_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    changed: anyio.Event | None = None
    """Set at the next change; created only when someone follows the job (it is on the hot path)."""
    cancel_status: JobStatus = JobStatus.CANCELLED
    """What a cancellation ends the job as: `shutdown` makes it interrupted."""
    handed_over: bool = False
    """Stopped by `shutdown` without ending: another engine goes on with it (`JobBoard.hand_over`)."""
    lost: bool = False
    """Stopped because another engine took it over meanwhile (`lose`): nothing more of it is written here."""
    call: CallSink | None = None
    """The stream of the MCP call the job answers, when this engine took the job over: it gets the result."""
    body: Body | None = None
    """The job's work, when it is a tool's own rather than notifications (`JobEngine.start`)."""

    def touch(self) -> None:
        """Wake whoever follows this job; the next follower arms a fresh event."""
        if self.changed is not None:
            self.changed.set()
            self.changed = None

    def next_change(self) -> anyio.Event:
        if self.changed is None:
            self.changed = anyio.Event()
        return self.changed


class JobEngine:
    """Runs jobs and answers for them; `runner_id` names this engine in the records of the jobs it runs."""

    def __init__(
        self,
        storage: Storage,
        limits: JobLimits,
        *,
        board: JobBoard | None = None,
        runner_id: str | None = None,
        replica: str | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        call_sink: Callable[[JobRecord], CallSink | None] = lambda job: None,
    ) -> None:
        """`call_sink`: the stream of the MCP call a job taken over answers (`JobRecord.call`), if it has one."""
        self._storage = storage
        self._call_sink = call_sink
        self._board = board if board is not None else LocalBoard(storage)
        self._limits = limits
        self.runner_id = runner_id or new_runner_id()
        self.replica = replica or self.runner_id
        self._metrics = metrics if metrics is not None else Metrics(backend="unnamed")
        self._tracer = tracer
        # Children resolved once (`labels()` validates and locks): these counters are on every job's path.
        self._sent = {origin: self._metrics.notifications.labels(origin.value) for origin in JobOrigin}
        self._started = {origin: self._metrics.jobs_started.labels(origin.value) for origin in JobOrigin}
        self._ended = {
            (origin, status): self._metrics.jobs_ended.labels(origin.value, status.value)
            for origin in JobOrigin
            for status in JobStatus
            if status.is_final
        }
        self._live: dict[str, _LiveJob] = {}
        self._task_group: TaskGroup | None = None
        self._leaving = False
        """Set by `shutdown`: the jobs handed over from now on are this process's last."""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[JobEngine]:
        """Run jobs until the block exits; then cancel the ones still running and record them."""
        async with anyio.create_task_group() as watching:
            try:
                async with anyio.create_task_group() as task_group:
                    self._task_group = task_group
                    for job in await self._board.abandoned_jobs():
                        self.abandoned(job)
                    watching.start_soon(self._board.watch, self, name="job board")
                    try:
                        yield self
                    finally:
                        self.shutdown()
                        self._task_group = None
            finally:  # every job has ended and been recorded: nothing is left to watch
                watching.cancel_scope.cancel()

    def shutdown(self) -> None:
        """Stop every running job: handed over to another engine where the store is shared and the job can move
        (a rolling restart loses nothing), else recorded as interrupted. Idempotent."""
        self._leaving = True
        for job_id, live in self._live.items():
            live.handed_over = self._board.leased and live.job.movable
            self.stop(job_id, JobStatus.INTERRUPTED)

    async def hand_over_session(self, session_id: str) -> None:
        """Hand over the jobs of an MCP session's calls, and wait until they have stopped: the session moves to
        another replica (`SessionManager.release`), whose engines go on with them."""
        moving = [live for live in self._live.values() if live.job.session_id == session_id and live.job.movable]
        for live in moving:
            live.handed_over = self._board.leased
            self.stop(live.job.id, JobStatus.INTERRUPTED)
        with anyio.CancelScope(shield=True):
            for live in moving:
                await live.done.wait()

    # The board's view of this engine (`Runner`)

    def running_job_ids(self) -> Collection[str]:
        return self._live.keys()

    def stop(self, job_id: str, status: JobStatus) -> None:
        live = self._live.get(job_id)
        if live is not None:
            live.cancel_status = status
            live.cancel_scope.cancel()

    def lose(self, job_id: str) -> None:
        live = self._live.get(job_id)
        if live is not None:
            live.lost = True
            live.cancel_scope.cancel()

    def abandoned(self, job: JobRecord) -> None:
        self._metrics.leases_expired.inc()
        if job.status is JobStatus.RUNNING and job.runner == self.runner_id and self._task_group is not None:
            logger.warning(
                "job %s lost its engine (its lease expired, or its process is gone): taken over here after "
                "%d of %d notifications (takeover %d)",
                job.id,
                job.sent,
                job.count,
                job.takeovers,
                extra={"job_id": job.id},
            )
            call = self._call_sink(job)
            live = self._live[job.id] = _LiveJob(job, [] if call is None else [call], call=call)
            self._task_group.start_soon(self._run, live, name=f"job {job.id}")
            return
        logger.warning(
            "job %s lost its engine %s (its lease expired, or its process is gone): recorded interrupted after "
            "%d of %d notifications",
            job.id,
            job.runner or "unknown",
            job.sent,
            job.count,
            extra={"job_id": job.id},
        )

    # Commands

    async def _admit(self, job: JobRecord, *, announce: bool) -> None:
        """Count the job against the limits (cluster-wide on a shared store); `TooManyJobs` if it breaks one."""
        limits = self._limits
        verdict = await self._board.admit(
            job, max_jobs=limits.max_jobs, max_jobs_per_session=limits.max_jobs_per_session, announce=announce
        )
        if verdict is Admission.ADMITTED:
            if self._board.leased:
                self._metrics.leases_taken.inc()
            return
        if verdict is Admission.TOO_MANY_JOBS:
            raise TooManyJobs(f"too many running jobs: the limit is {limits.max_jobs} (SERVICE_MAX_JOBS)")
        if verdict is Admission.TOO_MANY_IN_SESSION:
            raise TooManyJobs(
                f"too many running jobs in this session: the limit is {limits.max_jobs_per_session} "
                "(SERVICE_MAX_JOBS_PER_SESSION)"
            )

    async def start(
        self,
        spec: JobSpec,
        *,
        origin: JobOrigin,
        session_id: str | None = None,
        owner: str | None = None,
        sinks: Sequence[Sink] = (),
        task: McpTask | None = None,
        body: Body | None = None,
    ) -> JobRecord:
        """Check the load limits, record the job and start it in the engine's task group; return its first snapshot.

        On a shared store it is recorded there before this returns: its id may go to a client that asks another
        replica next (a REST job's, an MCP task's). `body`: the job's work, instead of sending notifications (a
        tool run as a task); what it returns is the job's `outcome`."""
        task_group = self._task_group
        if task_group is None:
            raise RuntimeError("the job engine is not running")
        job = JobRecord.new(new_job_id(), spec, origin, session_id, owner, self.runner_id, self.replica, task=task)
        await self._admit(job, announce=True)  # its id goes to a client that may ask another replica next
        await self._storage.save_job(job)
        live = self._live[job.id] = _LiveJob(job, list(sinks), body=body)
        task_group.start_soon(self._run, live, name=f"job {job.id}")
        return job.model_copy()

    async def run(
        self,
        spec: JobSpec,
        *,
        origin: JobOrigin,
        session_id: str | None = None,
        owner: str | None = None,
        sinks: Sequence[Sink] = (),
        call: McpCall | None = None,
    ) -> JobRecord:
        """Check the load limits and run the job in the caller's task; return its final state.

        For a caller that waits for the end anyway (an MCP tool call): no task of its own
        and no hand-off when it ends. Cancelling the caller cancels the job, recorded as
        cancelled; `shutdown` and `cancel` reach it as they reach any other job.
        """
        if self._task_group is None:
            raise RuntimeError("the job engine is not running")
        job = JobRecord.new(new_job_id(), spec, origin, session_id, owner, self.runner_id, self.replica, call)
        await self._admit(job, announce=False)  # other replicas see it within the store's next write
        live = self._live[job.id] = _LiveJob(job, list(sinks))
        if self._leaving and self._board.leased and job.movable:
            # A call that reached this process as it stops (the server still reads its last requests): another
            # engine runs it from the start, as it would have gone on with it.
            live.handed_over = True
            try:
                await self._end(live)
            finally:
                del self._live[job.id]
                live.done.set()
            return live.job
        await self._run(live)
        return live.job

    async def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a job and wait until it has stopped; a job that already ended is returned as is.

        A job another engine runs is asked to stop through the board, and waited for (up to
        `CANCEL_WAIT` seconds: then it is returned as it stands).
        """
        live = self._live.get(job_id)
        if live is not None:
            live.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await live.done.wait()
            return live.job.model_copy()
        job = await self._storage.get_job(job_id)
        if job is None or job.status.is_final:
            return job
        await self._board.request_cancel(job_id)
        with anyio.move_on_after(CANCEL_WAIT):
            while job is not None and not job.status.is_final:
                await anyio.sleep(0.02)
                job = await self._storage.get_job(job_id)
        return job

    async def delete(self, job_id: str) -> JobRecord | None:
        """Cancel the job if it runs, then forget it and its notifications; None if there was no such job."""
        job = await self.cancel(job_id)
        if job is not None:
            await self._storage.delete_job(job_id)
        return job

    # Queries

    @property
    def running_count(self) -> int:
        return len(self._live)

    async def get(self, job_id: str) -> JobRecord | None:
        live = self._live.get(job_id)
        if live is not None:
            return live.job.model_copy()
        return await self._storage.get_job(job_id)

    async def list_jobs(
        self, *, status: JobStatus | None = None, owner: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[JobRecord]:
        """Newest first, with running jobs showing their live progress."""
        jobs = await self._storage.list_jobs(status=status, owner=owner, limit=limit, offset=offset)
        return [self._live[job.id].job.model_copy() if job.id in self._live else job for job in jobs]

    async def follow(
        self, job_id: str, after: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncIterator[StoredEvent | None]:
        """The job's notifications after event `after`, live until the job ends.

        Yields None after `heartbeat` idle seconds, so that a streaming caller can keep
        its connection alive (and notice a client that has gone).
        """
        partition = job_partition(job_id)
        idle_since = anyio.current_time()
        while True:
            live = self._live.get(job_id)
            changed = live.next_change() if live is not None else None
            # Elsewhere: read the record before the log, so that a job seen ended has all its events written.
            elsewhere = None if live is not None else await self._storage.get_job(job_id)
            for event in await self._storage.read(partition, LOG_STREAM, after):
                yield event
                after, idle_since = event.id, anyio.current_time()
            if changed is None and (elsewhere is None or elsewhere.status.is_final):
                return
            remaining = heartbeat - (anyio.current_time() - idle_since)
            if remaining <= 0:
                yield None
                idle_since, remaining = anyio.current_time(), heartbeat
            if changed is not None:
                with anyio.move_on_after(remaining):
                    await changed.wait()
            else:  # another engine runs it: wait on the store
                await self._board.wait_for_events(job_id, after, remaining)

    async def store_stats(self) -> StoreStats:
        return await self._storage.stats()

    async def was_purged(self, job_id: str) -> bool:
        """Whether an unknown id is as old as a job that retention purged (see `Storage.was_purged`)."""
        return await self._storage.was_purged(job_id)

    async def owns_event(self, job_id: str, event_id: int) -> bool:
        return await self._storage.stream_of(job_partition(job_id), event_id) is not None

    # Running

    async def _run(self, live: _LiveJob) -> None:
        if self._tracer is None:
            await self._run_job(live)
            return
        job = live.job
        attributes = {"job.id": job.id, "job.origin": job.origin.value, "job.count": job.count}
        with self._tracer.start_as_current_span("job", attributes=attributes) as span:
            await self._run_job(live)
            span.set_attributes({"job.status": job.status.value, "job.sent": job.sent})

    async def _run_job(self, live: _LiveJob) -> None:
        job = live.job
        first = job.sent + 1  # a job taken over goes on from its next notification
        job.status, job.started_at = JobStatus.RUNNING, job.started_at or utcnow()
        partition = job_partition(job.id)
        sent = self._sent[job.origin]
        # `run` runs the job in its caller's task: the job's id leaves the logging context with the job.
        named = context.job_id.set(job.id)
        self._started[job.origin].inc()
        # At DEBUG: the line at the end says all of it (docs/performance.md has what a second line costs).
        logger.debug("job started: %d notifications every %gs, for %s", job.count, job.interval, job.origin.value)
        try:
            await self._storage.save_job(job)
            with live.cancel_scope:
                live.touch()
                if live.body is not None:  # a tool's own work, run as a task: its answer is the job's outcome
                    job.outcome = await live.body()
                else:
                    start = saved = anyio.current_time()
                    for index in range(first, job.count + 1):
                        # The first is due now; later ones wait for their time, or for every BURST-th turn. The
                        # clock is read only where the job may wait (a read costs a microsecond: anyio looks up
                        # its backend), and progress is saved after a wait.
                        due = start + (index - first) * job.interval
                        if index > first and (index % BURST == 0 or (job.interval and due > anyio.current_time())):
                            await anyio.sleep_until(due)
                            now = anyio.current_time()
                            if now - due > STALL and not await self._board.holds(job.id):
                                # This process stood still (a pause past its lease): another engine has the job now.
                                logger.warning(
                                    "job %s: taken over by another engine while this one stood still", job.id
                                )
                                self.lose(job.id)
                                await anyio.lowlevel.checkpoint()
                            if now - saved >= PROGRESS_INTERVAL:
                                saved = now
                                await self._written(partial(self._storage.save_job, job))
                        notification = Notification(job.id, index, job.count, job.caller)
                        data = notification.to_json()
                        try:
                            await self._storage.append(partition, LOG_STREAM, data)
                        except StoreError as exc:
                            await self._written(partial(self._storage.append, partition, LOG_STREAM, data), exc)
                        job.sent = index
                        sent.inc()
                        await self._deliver(live, notification)
                        live.touch()
            if not live.cancel_scope.cancelled_caught:
                job.status = JobStatus.COMPLETED
                if job.outcome is not None and "error" in job.outcome:  # a JSON-RPC error, not a tool error
                    job.status, job.error = JobStatus.FAILED, str(job.outcome["error"].get("message", ""))
            elif not (live.handed_over or live.lost):
                job.status = live.cancel_status
        except Exception as exc:
            logger.exception("job %s failed", job.id)
            job.status, job.error = JobStatus.FAILED, str(exc) or type(exc).__name__
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self._end(live)
                finally:
                    del self._live[job.id]
                    live.done.set()
                    live.touch()
                    context.job_id.reset(named)

    async def _written(self, write: Callable[[], Awaitable[object]], failed: StoreError | None = None) -> None:
        """A running job's write, tried again while a shared store fails, for up to `STORE_OUTAGE` seconds: the job
        waits (its notifications are due, and go out as soon as the store is back) rather than fail. Redis fails
        over and restarts; one process's own store failing (a disk full, a database locked) is reported at once."""
        if failed is None:
            try:
                await write()
                return
            except StoreError as exc:
                failed = exc
        if not self._board.leased:
            raise failed
        logger.warning("job waits for its store: %s", failed)
        with anyio.move_on_after(STORE_OUTAGE):
            while True:
                await anyio.sleep(STORE_RETRY)
                try:
                    await write()
                    logger.info("job goes on: its store is back")
                    return
                except StoreError as exc:
                    failed = exc
        raise failed

    async def _end(self, live: _LiveJob) -> None:
        """Record how the job ended, or hand it over to another engine, which goes on with it."""
        job = live.job
        if live.lost and not job.status.is_final:
            await self._board.release(job)  # its token and its share of the limits: the lease is another's
            logger.warning("job stopped after %d of %d notifications: another replica runs it now", job.sent, job.count)
            return
        if live.handed_over and not job.status.is_final:
            await self._storage.save_job(job)  # its progress, for whoever lists it meanwhile
            await self._board.hand_over(job, leaving=self._leaving)
            logger.info("job handed over after %d of %d notifications: another replica goes on", job.sent, job.count)
            return
        if not job.status.is_final:
            # Cancelled from outside: the caller of `run` gave up (cancelled), or the
            # task group is stopping, after `shutdown` (interrupted).
            job.status = live.cancel_status
        job.finished_at = utcnow()
        try:
            await self._storage.save_job(job)
            await self._storage.seal(job_partition(job.id))
            await self._board.release(job)
            if live.call is not None:
                await live.call.result(job)
        except StoreError as exc:  # shielded, as the engine may be stopping: no waiting for the store here
            logger.error("job ended %s, but its store failed to record it: %s", job.status.value, exc)
        finally:
            self._ended[(job.origin, job.status)].inc()
            took = (job.finished_at - job.started_at).total_seconds() if job.started_at else 0.0
            logger.info("job ended %s: %d of %d sent in %.3fs", job.status.value, job.sent, job.count, took)

    async def _deliver(self, live: _LiveJob, notification: Notification) -> None:
        for sink in tuple(live.sinks):
            try:
                await sink.send(notification)
            except Exception as exc:
                # One broken destination (a closed session, say) must not stop the job or the others.
                logger.warning("job %s: dropping sink %r: %s", live.job.id, sink, exc)
                live.sinks.remove(sink)
