"""REST routes to start, list, inspect, cancel, delete and follow notification jobs.

`router` holds every route but the one that starts a job (`service.api.job_creation`), whose
body's model carries the configured limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, HTTPException, Path, Query, Response, status
from fastapi.responses import StreamingResponse

from service import sse
from service.api.deps import EngineDep, MetricsDep, PrincipalDep, SettingsDep
from service.api.responses import error_responses
from service.api.schemas import Job, JobPage
from service.domain.jobs import JOB_ID_PATTERN, JobRecord, JobStatus
from service.jobs.engine import JobEngine
from service.stores.base import EVENT_ID_PATTERN, parse_event_id

__all__ = ["JOB_ERRORS", "LINKS_FROM_A_JOB", "router"]

JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The job's id: 32 lowercase hex digits.")]
RESUME_PATTERN = f"^({EVENT_ID_PATTERN.strip('^$')})?$"
_JOB_ID = {"job_id": "$response.body#/id"}
LINKS_FROM_A_JOB = {
    name: {"operationId": name, "parameters": _JOB_ID} for name in ("get_job", "cancel_job", "delete_job", "job_events")
}
"""OpenAPI links: what a client (or a fuzzer) may do next with the job it just started."""
CHANGES_POLL = 0.5
"""Seconds between the reads of `/jobs/changes`."""
MAX_OFFSET = 1_000_000_000
"""Far beyond any store's job count, and well inside a 64-bit integer (SQLite's)."""


async def _job_or_404(engine: JobEngine, job_id: str, principal: str | None) -> JobRecord:
    """The job, if it exists and the caller may see it: another principal's job is "not found" too."""
    job = await engine.get(job_id)
    if job is not None and (principal is None or job.owner == principal):
        return job
    if job is None and await engine.was_purged(job_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"Job {job_id} not found: it is as old as jobs that have expired (finished jobs are kept for "
            "SERVICE_JOB_RETENTION seconds, and at most SERVICE_MAX_STORED_JOBS of them)",
        )
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"Job {job_id} not found")


JOB_ERRORS = error_responses(401, 413, 421, 431, 503)
"""What any job route may answer: authentication, the guards' limits, and a store that is unavailable."""

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=JOB_ERRORS)


@router.get("", summary="List jobs, newest first", operation_id="list_jobs")
async def list_jobs(
    engine: EngineDep,
    principal: PrincipalDep,
    job_status: Annotated[JobStatus | None, Query(alias="status", description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobPage:
    jobs = await engine.list_jobs(status=job_status, owner=principal, limit=limit + 1, offset=offset)
    return JobPage(
        items=[Job.of(job) for job in jobs[:limit]], next_offset=offset + limit if len(jobs) > limit else None
    )


@router.get(
    "/changes",
    summary="The caller's jobs as they change (SSE)",
    operation_id="job_changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "A `job` event per change"}},
)
async def job_changes(
    engine: EngineDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200, description="How many of the newest jobs to watch.")] = 50,
) -> StreamingResponse:
    """The newest `limit` jobs at once (a `job` event each, then `synced` with their number), then a `job`
    event whenever one starts, progresses or ends, on any replica, and `gone` (its id) when one is deleted
    or purged. It never ends by itself.

    Read from the store every half second: what a dashboard needs, without a stream per job."""
    ping = settings.sse_ping_interval

    async def stream() -> AsyncIterator[bytes]:
        seen: dict[str, tuple[JobStatus, int]] = {}
        quiet, synced = 0.0, False
        while True:
            jobs = await engine.list_jobs(owner=principal, limit=limit)
            frames = [sse.frame(job_id, event="gone") for job_id in seen.keys() - {job.id for job in jobs}]
            for job in jobs:
                if seen.get(job.id) != (job.status, job.sent):
                    frames.append(sse.frame(Job.of(job).model_dump_json(), event="job"))
            if not synced:  # after the first read: the list is complete, and the stream is live
                frames.append(sse.frame(str(len(jobs)), event="synced"))
                synced = True
            seen = {job.id: (job.status, job.sent) for job in jobs}
            quiet = 0.0 if frames else quiet + CHANGES_POLL
            if quiet >= ping:
                frames.append(sse.PING)
                quiet = 0.0
            if frames:
                yield b"".join(frames)
            await anyio.sleep(CHANGES_POLL)

    return StreamingResponse(stream(), headers=sse.HEADERS)


@router.get("/{job_id}", summary="One job", operation_id="get_job", responses=error_responses(404))
async def get_job(job_id: JobId, engine: EngineDep, principal: PrincipalDep) -> Job:
    return Job.of(await _job_or_404(engine, job_id, principal))


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a job",
    operation_id="cancel_job",
    responses={**error_responses(404), **error_responses(409, description="The job has already ended")},
)
async def cancel_job(job_id: JobId, engine: EngineDep, principal: PrincipalDep) -> Job:
    """Stop a running job and answer with it. An MCP client waiting on it gets a result saying
    it was cancelled after k of n. The job stays listed, as cancelled."""
    job = await _job_or_404(engine, job_id, principal)
    if job.status.is_final:
        raise HTTPException(status.HTTP_409_CONFLICT, f"Job {job_id} has already ended ({job.status.value})")
    cancelled = await engine.cancel(job_id)
    assert cancelled is not None
    return Job.of(cancelled)


@router.delete(
    "/{job_id}",
    summary="Delete a job",
    operation_id="delete_job",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
async def delete_job(job_id: JobId, engine: EngineDep, principal: PrincipalDep) -> Response:
    """Forget a job and its notifications, cancelling it first if it still runs; it answers 404 after."""
    await _job_or_404(engine, job_id, principal)
    await engine.delete(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{job_id}/events",
    summary="Follow a job's notifications (Server-Sent Events)",
    operation_id="job_events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One `notification` event per notification",
        },
        **error_responses(400, description="`Last-Event-ID` is not an event of this job"),
        **error_responses(404),
    },
)
async def job_events(
    job_id: JobId,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    principal: PrincipalDep,
    # Empty is absent, as in the SSE spec (an empty `id:` resets the client's last event id).
    last_event_id: Annotated[
        str, Header(pattern=RESUME_PATTERN, description="Resume after this event id (an `id:` of the stream).")
    ] = "",
) -> StreamingResponse:
    """Every notification of the job so far, then each new one as it is sent, then an `end`
    event carrying the final job. Reconnect with `Last-Event-ID` to get only what you missed."""
    await _job_or_404(engine, job_id, principal)
    after = 0
    if last_event_id:
        parsed = parse_event_id(last_event_id)
        if parsed is None or not await engine.owns_event(job_id, parsed):
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"Last-Event-ID {last_event_id[:64]!r} is not an event of job {job_id}",
            )
        after = parsed
        metrics.replayed("rest", 0)  # the events it resends are not told apart from live ones

    async def stream() -> AsyncIterator[bytes]:
        async for event in engine.follow(job_id, after, heartbeat=settings.sse_ping_interval):
            if event is None:
                yield sse.PING
            else:
                yield sse.frame((event.data or b"").decode(), event_id=str(event.id), event="notification")
        final = await engine.get(job_id)
        if final is not None:  # None: deleted while it was followed
            yield sse.frame(Job.of(final).model_dump_json(), event="end")

    return StreamingResponse(stream(), headers=sse.HEADERS)
