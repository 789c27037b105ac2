"""The job engine: runs notification jobs in its own task group and fans each notification out.

Every notification goes first to the job's own event log (durable, readable over REST
as an SSE stream) and then to the job's sinks: the MCP tool call's stream, or an MCP
session's standalone GET stream. Sinks are supplied by whoever starts the job, so the
engine knows nothing of MCP or HTTP.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from service.jobs.models import JobOrigin, JobRecord, JobSpec, JobStatus, utcnow
from service.jobs.sinks import Notification, Sink
from service.stores.base import Storage, StoredEvent, StoreStats, job_partition

__all__ = ["LOG_STREAM", "JobEngine", "JobLimits", "TooManyJobs", "new_runner_id"]

logger = logging.getLogger(__name__)

LOG_STREAM = "log"


def new_runner_id() -> str:
    """This process among its replicas: its host, its pid, and a random part (pids are reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


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

    def __init__(self, storage: Storage, limits: JobLimits, *, runner_id: str | None = None) -> None:
        self._storage = storage
        self._limits = limits
        self.runner_id = runner_id or new_runner_id()
        self._live: dict[str, _LiveJob] = {}
        self._task_group: TaskGroup | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[JobEngine]:
        """Run jobs until the block exits; then cancel the ones still running and record them."""
        await self._interrupt_leftovers()
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            try:
                yield self
            finally:
                self.shutdown()
                self._task_group = None

    def shutdown(self) -> None:
        """Stop every running job; each is recorded as interrupted. Idempotent."""
        for live in self._live.values():
            live.cancel_status = JobStatus.INTERRUPTED
            live.cancel_scope.cancel()

    # Commands

    def _check_load(self, session_id: str | None) -> None:
        """Raise `TooManyJobs` if one more job would break a configured limit."""
        limits = self._limits
        if len(self._live) >= limits.max_jobs:
            raise TooManyJobs(f"too many running jobs: the limit is {limits.max_jobs} (SERVICE_MAX_JOBS)")
        if session_id is not None:
            in_session = sum(1 for live in self._live.values() if live.job.session_id == session_id)
            if in_session >= limits.max_jobs_per_session:
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
    ) -> JobRecord:
        """Check the load limits, record the job and start it in the engine's task group; return its first snapshot."""
        task_group = self._task_group
        if task_group is None:
            raise RuntimeError("the job engine is not running")
        self._check_load(session_id)
        job = JobRecord.new(self._storage.new_job_id(), spec, origin, session_id, owner, self.runner_id)
        await self._storage.save_job(job)
        live = self._live[job.id] = _LiveJob(job, list(sinks))
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
    ) -> JobRecord:
        """Check the load limits and run the job in the caller's task; return its final state.

        For a caller that waits for the end anyway (an MCP tool call): no task of its own
        and no hand-off when it ends. Cancelling the caller cancels the job, recorded as
        cancelled; `shutdown` and `cancel` reach it as they reach any other job.
        """
        if self._task_group is None:
            raise RuntimeError("the job engine is not running")
        self._check_load(session_id)
        job = JobRecord.new(self._storage.new_job_id(), spec, origin, session_id, owner, self.runner_id)
        live = self._live[job.id] = _LiveJob(job, list(sinks))
        await self._run(live)
        return live.job

    async def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a job and wait until it has stopped; a job that already ended is returned as is."""
        live = self._live.get(job_id)
        if live is None:
            return await self._storage.get_job(job_id)
        live.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await live.done.wait()
        return live.job.model_copy()

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
        while True:
            live = self._live.get(job_id)
            changed = live.next_change() if live is not None else None
            for event in await self._storage.read(partition, LOG_STREAM, after):
                yield event
                after = event.id
            if changed is None:
                return
            with anyio.move_on_after(heartbeat) as idle:
                await changed.wait()
            if idle.cancelled_caught:
                yield None

    async def store_stats(self) -> StoreStats:
        return await self._storage.stats()

    async def was_purged(self, job_id: str) -> bool:
        """Whether an unknown id is as old as a job that retention purged (see `Storage.was_purged`)."""
        return await self._storage.was_purged(job_id)

    async def owns_event(self, job_id: str, event_id: int) -> bool:
        return await self._storage.stream_of(job_partition(job_id), event_id) is not None

    # Running

    async def _run(self, live: _LiveJob) -> None:
        job = live.job
        job.status, job.started_at = JobStatus.RUNNING, utcnow()
        partition = job_partition(job.id)
        try:
            await self._storage.save_job(job)
            with live.cancel_scope:
                live.touch()
                start = anyio.current_time()
                for index in range(1, job.count + 1):
                    if index > 1:  # the first is due now: no trip through the event loop for it
                        await anyio.sleep_until(start + (index - 1) * job.interval)
                    notification = Notification(job.id, index, job.count, job.caller)
                    await self._storage.append(partition, LOG_STREAM, notification.to_json())
                    job.sent = index
                    await self._deliver(live, notification)
                    live.touch()
            job.status = live.cancel_status if live.cancel_scope.cancelled_caught else JobStatus.COMPLETED
        except Exception as exc:
            logger.exception("job %s failed", job.id)
            job.status, job.error = JobStatus.FAILED, str(exc) or type(exc).__name__
        finally:
            with anyio.CancelScope(shield=True):
                if not job.status.is_final:
                    # Cancelled from outside: the caller of `run` gave up (cancelled), or the
                    # task group is stopping, after `shutdown` (interrupted).
                    job.status = live.cancel_status
                job.finished_at = utcnow()
                try:
                    await self._storage.save_job(job)
                    await self._storage.seal(partition)
                finally:
                    del self._live[job.id]
                    live.done.set()
                    live.touch()

    async def _deliver(self, live: _LiveJob, notification: Notification) -> None:
        for sink in tuple(live.sinks):
            try:
                await sink.send(notification)
            except Exception as exc:
                # One broken destination (a closed session, say) must not stop the job or the others.
                logger.warning("job %s: dropping sink %r: %s", live.job.id, sink, exc)
                live.sinks.remove(sink)

    async def _interrupt_leftovers(self) -> None:
        for job in await self._storage.unfinished_jobs():
            job.sent = sum(1 for _ in await self._storage.read(job_partition(job.id), LOG_STREAM))
            logger.warning("job %s was left %s by a previous run: marked interrupted", job.id, job.status)
            job.status, job.finished_at = JobStatus.INTERRUPTED, job.finished_at or utcnow()
            await self._storage.save_job(job)
