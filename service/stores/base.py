"""The storage interface: append-only event logs and job records, kept for a bounded time.

A backend is one class that satisfies `Storage`, in a module of its own (Redis: a package).
Events live in *partitions* (an MCP session, or a job's own log, `job_partition(id)`); a
partition holds one or more *streams* (the SDK's per-request stream ids, `_GET_stream`, or
a job log's single stream).
Event ids are positive integers that increase within a partition and are never reused in
it (memory and SQLite draw them from one sequence per store, Redis from its writer's clock);
an id is only ever looked up inside the partition that asks for it, so one session can
neither read nor guess its way into another's events. A partition has one writer at a time:
the process that holds the session, or the engine that runs the job.

What is kept, and for how long (`Retention`), is part of the contract:
- a stream's events until `streams` seconds after `end_stream` (a request's stream once it has
  sent its response; the session's standalone stream after every event, so it is bounded by
  age), whether or not its session lives on;
- a session's events that no end reached while it lives and `events` seconds after
  `end_partition`; a session left open by a crash counts as ended when the store is next opened;
- at most `max_events_per_partition` events per partition, the oldest going first;
- a finished job and its log for `jobs` seconds after it finished, and at most `max_jobs`
  finished jobs, the oldest finished going first. A job that is still pending or running is
  never purged.
A backend purges on its own, off the request path, in bounded batches; `purge` runs one
full pass now.

Payloads are serialized bytes, never message objects: retaining millions of pydantic
objects costs the cyclic garbage collector dearly.

Replicas that share a store also share a `JobBoard` (who runs which job, the cluster-wide
limits, requests to stop a job) and a `SessionRelay` (which replica holds which MCP session,
and a way to reach it). One process alone has the local ones (`service.stores.local`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

from service.domain.jobs import JobRecord, JobStatus
from service.domain.notifications import Notification

__all__ = [
    "EVENT_ID_PATTERN",
    "JOB_LOG_PREFIX",
    "LOG_STREAM",
    "Admission",
    "EventLog",
    "JobBoard",
    "JobStore",
    "Retention",
    "Runner",
    "SessionBusy",
    "SessionRecord",
    "SessionRelay",
    "Storage",
    "StoreError",
    "StoreStats",
    "StoredEvent",
    "job_partition",
    "parse_event_id",
]

JOB_LOG_PREFIX = "job:"
LOG_STREAM = "log"
"""The one stream of a job's log partition."""


def job_partition(job_id: str) -> str:
    """The partition that holds one job's notifications: it lives and goes with the job."""
    return f"{JOB_LOG_PREFIX}{job_id}"


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a store keeps what it holds (`SERVICE_EVENT_RETENTION`, `SERVICE_JOB_RETENTION`...)."""

    events: float = 3600.0
    """Seconds an ended session's events are kept."""
    streams: float = 300.0
    """Seconds an ended stream's events are kept, though its session lives on."""
    jobs: float = 86400.0
    """Seconds a finished job and its log are kept."""
    max_jobs: int | None = None
    """Finished jobs kept at most (the oldest finished go first); None: no cap."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    jobs: int
    events: int
    bytes: int
    """The store's size: its files on disk, or the payloads it holds in memory."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    data: bytes | None
    """None for a priming event: it marks a position in the stream and carries nothing."""


EVENT_ID_PATTERN = r"^[0-9]{1,18}$"
"""What `parse_event_id` accepts (and the REST route's header declares)."""
_EVENT_ID = re.compile(EVENT_ID_PATTERN)


def parse_event_id(value: str) -> int | None:
    """Event ids travel as decimal strings (SSE `id:`, `Last-Event-ID`); anything else names no event."""
    return int(value) if _EVENT_ID.fullmatch(value) else None


class StoreError(Exception):
    """The backend failed (disk full, database locked...). Callers turn it into a clear error."""


class EventLog(Protocol):
    async def append(self, partition: str, stream: str, data: bytes | None) -> int:
        """Record one event and return its id. Must be fast: it is awaited for every outbound message."""
        ...

    async def stream_of(self, partition: str, event_id: int) -> str | None:
        """The stream `event_id` belongs to, or None when the partition holds no such event (unknown or evicted)."""
        ...

    async def read(self, partition: str, stream: str, after: int = 0) -> Sequence[StoredEvent]:
        """Every event of `stream` with an id greater than `after`, in order."""
        ...

    async def end_stream(self, partition: str, stream: str, first: int, last: int) -> None:
        """The events of `stream` from id `first` to `last` are kept `Retention.streams` seconds more, then dropped.

        Its writer names the ids it appended since the stream's last end: events appended to
        the same stream later are not covered (a client may reuse a finished request's id; the
        standalone stream is ended after every event).
        """
        ...

    async def end_partition(self, partition: str) -> None:
        """The partition's owner is gone: keep its events for `Retention.events` seconds, then drop them."""
        ...

    async def seal(self, partition: str) -> None:
        """Nothing more will be appended to the partition: forget its bookkeeping, keep its events."""
        ...

    async def stored(self) -> None:
        """Return once every event appended so far is where another process finds it, or raise `StoreError`.

        A store written behind answers `append` before the event is stored. Where another
        replica may serve the event's stream next (a shared store), a stream's writer waits for
        this before it sends: a client that saw an event can then resume after it anywhere, and
        whoever goes on with its stream counts it as sent. A store of one process returns at once.
        """
        ...


class JobStore(Protocol):
    async def save_job(self, job: JobRecord) -> None: ...

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def delete_job(self, job_id: str) -> None:
        """Forget a job that has ended, and its log; an unknown id is no error."""
        ...

    async def was_purged(self, job_id: str) -> bool:
        """Whether an id that is not found is as old as a job retention purged: it may have existed.

        Job ids are time-ordered (`service.domain.jobs.new_job_id`), so the newest id purged is all a store keeps.
        """
        ...

    async def list_jobs(
        self, *, status: JobStatus | None, owner: str | None, limit: int, offset: int
    ) -> Sequence[JobRecord]:
        """Newest first. `owner=None` lists every owner's jobs."""
        ...

    async def unfinished_jobs(self) -> Sequence[JobRecord]:
        """Jobs still pending or running: at start-up, the ones a previous process left behind."""
        ...


class Storage(EventLog, JobStore, Protocol):
    """A backend: opened and closed by the app's lifespan."""

    async def purge(self) -> int:
        """Drop now, in bounded batches, what retention lets go; return how many jobs and events went."""
        ...

    async def stats(self) -> StoreStats: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Admission(StrEnum):
    """What the board says to one more job."""

    ADMITTED = "admitted"
    TOO_MANY_JOBS = "too many jobs"
    TOO_MANY_IN_SESSION = "too many jobs in the session"


class Runner(Protocol):
    """The engine, as the board sees it: the jobs it runs, and a way to stop one."""

    def running_job_ids(self) -> Collection[str]: ...

    def stop(self, job_id: str, status: JobStatus) -> None:
        """Cancel a job this engine runs; it ends as `status`."""
        ...

    def lose(self, job_id: str) -> None:
        """Another engine runs the job now (this one stood still past its lease): stop it here, and write nothing
        more of it, not even its end (its call's client gets the rest, and the result, from the other one)."""
        ...

    def abandoned(self, job: JobRecord) -> None:
        """A job found without its engine (its lease expired), as `abandoned_jobs` left it: running, and leased to
        this engine, which goes on with it from its next notification; or recorded as interrupted."""
        ...


class JobBoard(Protocol):
    """What the engines that share a store agree on: how many jobs run, which engine runs each, who must stop.

    A job is admitted (counted against the limits, across every engine of the store, and
    leased to the engine that runs it), then released when its final record is saved.
    """

    leased: bool
    """Whether admission takes a lease (engines share the store) or only counts (one process)."""

    async def admit(
        self, job: JobRecord, *, max_jobs: int, max_jobs_per_session: int, announce: bool = True
    ) -> Admission:
        """Count the job in, or say which limit it would break.

        With `announce`, every engine of the store sees the job when this returns; without,
        within the store's next write (a caller that runs the job itself and waits for it).
        """
        ...

    async def release(self, job: JobRecord) -> None: ...

    async def request_cancel(self, job_id: str) -> None:
        """Ask whichever engine runs the job to cancel it: a durable request, not a message that may be lost."""
        ...

    async def abandoned_jobs(self) -> Sequence[JobRecord]:
        """Unfinished jobs that no engine runs any more (their engine crashed, or lost its lease).

        Each comes back as the board left it: taken over (running, leased to this engine, its
        `runner`, `replica` and `takeovers` updated) when this engine can go on with it, else
        recorded as interrupted.
        """
        ...

    async def hand_over(self, job: JobRecord, *, leaving: bool) -> None:
        """Give up a movable job this engine stops without ending it: its lease goes now, so that another engine
        takes it over at its next look instead of after the lease's expiry. `leaving`: this process is shutting
        down, and takes no job over any more (else its MCP session moves to another replica)."""
        ...

    async def holds(self, job_id: str) -> bool:
        """Whether this engine still runs the job: asked by one that stalled (a pause past its lease), before it
        sends anything more, since another engine may have taken the job over meanwhile."""
        ...

    async def watch(self, runner: Runner) -> None:
        """Run until cancelled: keep `runner`'s jobs leased, and stop the ones someone asked to cancel (or lost)."""
        ...

    async def wait_for_events(self, job_id: str, after: int, within: float) -> None:
        """Return when the job's log may hold events after `after`, or it was sealed, or `within` seconds passed."""
        ...


@dataclass(frozen=True, slots=True)
class SessionRecord:
    replica: str
    owner: str | None
    holder: str = ""
    """The process (`JobEngine.runner_id`) that holds the session; "" once released (its process stopped)."""
    protocol_version: str | None = None
    """What `initialize` agreed on, and the client's `initialize` params (JSON): what a replica that adopts the
    session gives its new connection, so that the client goes on without initializing again."""
    client: str | None = None


class SessionBusy(Exception):
    """The session is held by a replica that is alive: it cannot be adopted (yet)."""


class SessionRelay(Protocol):
    """Which replica holds each live MCP session, and a way to deliver a job's notifications to it."""

    shared: bool
    """Whether other processes may serve this one's sessions next (replicas of one store), or none ever will."""

    def register_session(self, session_id: str, owner: str | None) -> None:
        """Record that this replica holds the session (queued: the SDK admits sessions synchronously)."""
        ...

    def describe_session(self, session_id: str, protocol_version: str, client: str) -> None:
        """Record what the session's `initialize` agreed on (queued), for a replica that adopts it later."""
        ...

    def unregister_session(self, session_id: str) -> None:
        """The session ended (its client deleted it, or it idled out): forget it."""
        ...

    def release_session(self, session_id: str) -> None:
        """This replica stops without ending the session: another may adopt it at once (queued)."""
        ...

    async def find_session(self, session_id: str) -> SessionRecord | None: ...

    async def adopt_session(self, session_id: str, *, wait: float) -> SessionRecord | None:
        """Make this replica the session's holder; None if the store has no such session. The session's requests
        come here now (the balancer sends them to its home, back after a restart, or to the one survivor that
        stands in for it), so a holder that is alive is asked to release it (`serve_relayed`'s `release`); a
        crashed one's heartbeat lapses within a lease. Waits up to `wait` seconds for either, then raises
        `SessionBusy`. Of the replicas that adopt it at once, one wins."""
        ...

    async def wait_for_session_events(self, partition: str, after: int, within: float) -> int:
        """Return when a session's log (`partition`) holds events after `after` (with the newest id seen then), or
        `within` seconds passed (with `after`): how a replica follows a stream that another one writes."""
        ...

    async def relay(self, replica: str, session_id: str, notification: Notification) -> None:
        """Hand a notification to the replica that holds the session (it pushes it to its GET stream)."""
        ...

    async def serve_relayed(
        self, deliver: Callable[[str, Notification], Awaitable[None]], release: Callable[[str], Awaitable[None]]
    ) -> None:
        """Run until cancelled: pass every notification relayed to this replica to `deliver(session_id, ...)`, and
        every session another replica asks for to `release(session_id)`."""
        ...
