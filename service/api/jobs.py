"""REST routes to start, list, inspect, cancel and follow notification jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, status
from fastapi.responses import StreamingResponse

from service.api.deps import EngineDep, PrincipalDep, ServicesDep
from service.api.schemas import ErrorBody, JobCreate, JobPage
from service.jobs.engine import JobEngine, JobRejected
from service.jobs.models import JOB_ID_PATTERN, Job, JobOrigin, JobStatus
from service.mcp.sinks import SessionStreamSink
from service.stores.base import parse_event_id

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The job's id: 32 lowercase hex digits.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such job"}}


async def _job_or_404(engine: JobEngine, job_id: str, principal: str | None) -> Job:
    """The job, if it exists and the caller may see it: another principal's job is "not found" too."""
    job = await engine.get(job_id)
    if job is None or (principal is not None and job.owner != principal):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Job {job_id} not found")
    return job


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a notification job",
    responses={
        404: {"model": ErrorBody, "description": "`session_id` names no live MCP session"},
        429: {"model": ErrorBody, "description": "Too many jobs are running"},
    },
)
async def create_job(body: JobCreate, services: ServicesDep, principal: PrincipalDep) -> Job:
    """Start a job now and answer at once; follow it at `/jobs/{id}/events`.

    With `session_id`, its notifications are also pushed to that MCP session's standalone
    GET stream (as `notifications/message`).
    """
    sinks = []
    if body.session_id is not None:
        session = services.sessions.get(body.session_id, owner=principal)
        if session is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No live MCP session with id {body.session_id!r}")
        sinks.append(SessionStreamSink(session))
    try:
        return await services.engine.start(
            body, origin=JobOrigin.REST, session_id=body.session_id, owner=principal, sinks=sinks
        )
    except JobRejected as exc:
        code = status.HTTP_429_TOO_MANY_REQUESTS if exc.too_many else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise HTTPException(code, str(exc)) from None


@router.get("", summary="List jobs, newest first")
async def list_jobs(
    engine: EngineDep,
    principal: PrincipalDep,
    job_status: Annotated[JobStatus | None, Query(alias="status", description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    jobs = await engine.list(status=job_status, owner=principal, limit=limit + 1, offset=offset)
    return JobPage(items=jobs[:limit], next_offset=offset + limit if len(jobs) > limit else None)


@router.get("/{job_id}", summary="One job", responses=NOT_FOUND)
async def get_job(job_id: JobId, engine: EngineDep, principal: PrincipalDep) -> Job:
    return await _job_or_404(engine, job_id, principal)


@router.delete(
    "/{job_id}",
    summary="Cancel a job",
    responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "The job has already ended"}},
)
async def cancel_job(job_id: JobId, engine: EngineDep, principal: PrincipalDep) -> Job:
    """Stop a running job. An MCP client waiting on it gets a result saying it was cancelled after k of n."""
    job = await _job_or_404(engine, job_id, principal)
    if job.status.is_final:
        raise HTTPException(status.HTTP_409_CONFLICT, f"Job {job_id} has already ended ({job.status.value})")
    cancelled = await engine.cancel(job_id)
    assert cancelled is not None
    return cancelled


@router.get(
    "/{job_id}/events",
    summary="Follow a job's notifications (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One `notification` event per notification",
        },
        400: {"model": ErrorBody, "description": "Malformed or unknown Last-Event-ID"},
        **NOT_FOUND,
    },
)
async def job_events(
    job_id: JobId,
    engine: EngineDep,
    principal: PrincipalDep,
    last_event_id: Annotated[str | None, Header(description="Resume after this event id.")] = None,
) -> StreamingResponse:
    """Every notification of the job so far, then each new one as it is sent, then an `end`
    event carrying the final job. Reconnect with `Last-Event-ID` to get only what you missed."""
    await _job_or_404(engine, job_id, principal)
    after = 0
    if last_event_id is not None:
        parsed = parse_event_id(last_event_id)
        if parsed is None or not await engine.owns_event(job_id, parsed):
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"Last-Event-ID {last_event_id[:64]!r} is not an event of job {job_id}",
            )
        after = parsed

    async def stream() -> AsyncIterator[bytes]:
        async for event in engine.follow(job_id, after):
            if event is None:
                yield b": keep-alive\n\n"
            else:
                yield b"id: %d\nevent: notification\ndata: %s\n\n" % (event.id, event.data or b"")
        final = await engine.get(job_id)
        assert final is not None
        yield b"event: end\ndata: %s\n\n" % final.model_dump_json().encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
