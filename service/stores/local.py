"""The board and relay of a store that one process has to itself (memory, SQLite): nothing to agree on.

Limits count this process's jobs, every job left unfinished in the store was left by an
earlier run of this process, and every live session is held here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import anyio

from service.domain.jobs import JobRecord, JobStatus, utcnow
from service.domain.notifications import Notification
from service.stores.base import LOG_STREAM, Admission, Runner, SessionRecord, Storage, job_partition

__all__ = ["LocalBoard", "LocalRelay"]


class LocalBoard:
    leased = False

    def __init__(self, store: Storage) -> None:
        self._store = store
        self._admitted: set[str] = set()
        self._per_session: Counter[str] = Counter()

    async def admit(
        self, job: JobRecord, *, max_jobs: int, max_jobs_per_session: int, announce: bool = True
    ) -> Admission:
        if len(self._admitted) >= max_jobs:
            return Admission.TOO_MANY_JOBS
        if job.session_id is not None:
            if self._per_session[job.session_id] >= max_jobs_per_session:
                return Admission.TOO_MANY_IN_SESSION
            self._per_session[job.session_id] += 1
        self._admitted.add(job.id)
        return Admission.ADMITTED

    async def release(self, job: JobRecord) -> None:
        if job.id in self._admitted:
            self._admitted.discard(job.id)
            if job.session_id is not None:
                self._per_session[job.session_id] -= 1
                if self._per_session[job.session_id] <= 0:
                    del self._per_session[job.session_id]

    async def request_cancel(self, job_id: str) -> None:
        return None  # a job of this store runs in this process: the engine cancels it itself

    async def abandoned_jobs(self) -> Sequence[JobRecord]:
        """At start-up: every unfinished job, left by a previous run of this process. Recorded as interrupted."""
        abandoned = [job for job in await self._store.unfinished_jobs() if job.id not in self._admitted]
        for job in abandoned:
            job.sent = len(await self._store.read(job_partition(job.id), LOG_STREAM))
            job.status, job.finished_at = JobStatus.INTERRUPTED, job.finished_at or utcnow()
            await self._store.save_job(job)
        return abandoned

    async def hand_over(self, job: JobRecord, *, leaving: bool) -> None:
        raise NotImplementedError("one process: nobody could take a job over (`leased` is False)")

    async def holds(self, job_id: str) -> bool:
        return True  # one process: nobody else could have taken it over

    async def watch(self, runner: Runner) -> None:
        await anyio.sleep_forever()

    async def wait_for_events(self, job_id: str, after: int, within: float) -> None:
        await anyio.sleep(within)  # only this process writes: its engine wakes its own followers


class LocalRelay:
    shared = False

    def register_session(self, session_id: str, owner: str | None) -> None:
        return None

    def describe_session(self, session_id: str, protocol_version: str, client: str) -> None:
        return None

    def unregister_session(self, session_id: str) -> None:
        return None

    def release_session(self, session_id: str) -> None:
        return None

    async def find_session(self, session_id: str) -> SessionRecord | None:
        return None  # every live session is in this process's session manager

    async def adopt_session(self, session_id: str, *, wait: float) -> SessionRecord | None:
        return None  # a session outlives no process here

    async def wait_for_session_events(self, partition: str, after: int, within: float) -> int:
        await anyio.sleep(within)  # never asked: a session's streams are all written in this process
        return after

    async def relay(self, replica: str, session_id: str, notification: Notification) -> None:
        raise LookupError(f"no replica {replica!r}: this store has one process")

    async def serve_relayed(
        self, deliver: Callable[[str, Notification], Awaitable[None]], release: Callable[[str], Awaitable[None]]
    ) -> None:
        await anyio.sleep_forever()
